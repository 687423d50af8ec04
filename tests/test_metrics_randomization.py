"""Tests of keras_brnpa.metrics.model_randomization (Adebayo et al. 2018)."""

import warnings

import keras
import numpy as np
import pytest
from scipy import ndimage
from scipy import stats

import keras_brnpa
from keras_brnpa._warnings import BRNPAWarning
from keras_brnpa.metrics import randomization


def nested_model():
    """A functional classifier around a nested Sequential feature extractor."""
    keras.utils.set_random_seed(0)
    features = keras.Sequential(
        [keras.Input((32, 32, 3)),
         keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
         keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="c2")],
        name="features")
    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(features(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, name="d")(pooled))


def images(n=4):
    return np.random.default_rng(0).random((n, 32, 32, 3), "float32")


LAYERS = ["d", "features/c2", "features/c1"]


def kernels(model):
    """The kernels of the layers of LAYERS, as NumPy arrays."""
    features = model.get_layer("features")
    layers = [model.get_layer("d"), features.get_layer("c2"), features.get_layer("c1")]
    return [keras.ops.convert_to_numpy(layer.kernel) for layer in layers]


def test_grad_cam_falls_apart_and_equals_scipy_on_the_returned_maps():
    model = nested_model()
    x = images()
    before = [w.copy() for w in model.get_weights()]
    result = keras_brnpa.metrics.model_randomization(model, x, "gradcam", return_maps=True)
    # The user's model (its nested model included) is untouched.
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert result["layers"] == LAYERS and result["order"] == "cascading"
    # The original maps are Grad-CAM's of the model, for its predicted class.
    classes = np.asarray(model.predict_on_batch(x)).argmax(-1)
    original = result["maps"]["original"]
    np.testing.assert_allclose(
        original, keras_brnpa.explain.grad_cam(model, x, class_index=classes), atol=1e-6)
    for path in LAYERS:
        expected = [stats.spearmanr(original[b].ravel(), result["maps"][path][b].ravel())[0]
                    for b in range(len(x))]
        np.testing.assert_allclose(result["similarity"][path], expected, atol=1e-12)
    # Fully randomised, Grad-CAM's maps no longer resemble the original ones.
    assert np.mean(result["similarity"]["features/c1"]) < 0.5
    assert not result["flagged"].any()


@pytest.mark.parametrize("order", ["cascading", "independent"])
def test_a_map_of_the_image_alone_stays_at_one_and_the_stages_randomise_the_right_layers(
    order,
):
    model = nested_model()
    x = images(2)
    original = kernels(model)
    seen = []

    def edges(model, images):  # ignores the model's weights (records them)
        seen.append(kernels(model))
        grey = images.mean(axis=-1)
        return np.hypot(ndimage.sobel(grey, axis=1), ndimage.sobel(grey, axis=2))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = keras_brnpa.metrics.model_randomization(
            model, x, edges, order=order, similarity="ssim")
    for path in LAYERS:
        np.testing.assert_allclose(result["similarity"][path], 1.0, atol=1e-9)
    assert result["flagged"].all()
    assert any(issubclass(w.category, BRNPAWarning) and "2 of 2 images" in str(w.message)
               for w in caught)
    # Stage 0 explains the original model; stage k changes layer k (and, in
    # cascading order, every layer before it) and no other.
    assert len(seen) == 1 + len(LAYERS)
    for kernel, value in zip(original, seen[0]):
        np.testing.assert_array_equal(kernel, value)
    for stage, weights in enumerate(seen[1:]):
        for index, (kernel, value) in enumerate(zip(original, weights)):
            changed = index == stage or (order == "cascading" and index < stage)
            assert (not np.allclose(kernel, value)) == changed, (stage, index)


def test_ssim_and_spearman_equal_a_transcription_of_their_definitions():
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 9, 7)), rng.random((2, 9, 7))
    a[1] = 3.0  # a constant map: Spearman undefined, SSIM of an all-0 map
    radius = 5
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / 1.5) ** 2)
    window = np.outer(taps, taps) / np.outer(taps, taps).sum()

    def unit(m):
        span = m.max() - m.min()
        return (m - m.min()) / span if span > 0 else np.zeros_like(m)

    expected = []
    for p, q in zip(a, b):
        p, q = unit(p), unit(q)
        pp = np.pad(p, radius, mode="symmetric")
        qq = np.pad(q, radius, mode="symmetric")
        values = []
        for i in range(p.shape[0]):
            for j in range(p.shape[1]):
                u = pp[i : i + 2 * radius + 1, j : j + 2 * radius + 1]
                v = qq[i : i + 2 * radius + 1, j : j + 2 * radius + 1]
                mu, mv = (window * u).sum(), (window * v).sum()
                su = (window * u * u).sum() - mu**2
                sv = (window * v * v).sum() - mv**2
                cov = (window * u * v).sum() - mu * mv
                values.append((2 * mu * mv + 1e-4) * (2 * cov + 9e-4)
                              / ((mu**2 + mv**2 + 1e-4) * (su + sv + 9e-4)))
        expected.append(np.mean(values))
    np.testing.assert_allclose(randomization._ssim(a, b), expected, atol=1e-10)
    np.testing.assert_allclose(randomization._ssim(b, b), 1.0, atol=1e-12)
    rho = randomization._spearman(a, b)
    assert np.isnan(rho[1])
    np.testing.assert_allclose(rho[0], stats.spearmanr(a[0].ravel(), b[0].ravel())[0])


def test_errors():
    model = nested_model()
    x = images(1)
    check = keras_brnpa.metrics.model_randomization
    for kwargs, name in (
        ({"order": "bottom_up"}, "order"),
        ({"similarity": "pearson"}, "similarity"),
        ({"seed": -1}, "seed"),
        ({"layers": ["nope"]}, "layers"),
        ({"threshold": "high"}, "threshold"),
    ):
        with pytest.raises(ValueError, match=f"argument {name}"):
            check(model, x, "gradcam", **kwargs)
    with pytest.raises(ValueError, match="argument method"):
        check(model, x, "not-a-method")
    with pytest.raises(ValueError, match="argument images"):
        check(model, np.zeros((1, 16, 16, 3), "float32"), "gradcam")
    with pytest.raises(ValueError, match="argument model"):
        check(lambda images: images, x, "gradcam")
