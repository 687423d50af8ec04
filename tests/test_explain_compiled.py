"""The explainers run compiled pieces of the model with their maths on the
device: they must equal NumPy references of their definitions, see weight
updates made after a first call, and keep a softmax model's two output views
apart."""

import keras
import numpy as np
import pytest
from helpers import to_numpy

from keras_brnpa import explain
from keras_brnpa.explain.perturbation import RiseMasks

SIZE = 16


def conv_classifier(softmax=False, seed=0):
    """Conv (ReLU) -> "features" conv 1x1 (ReLU) -> GAP -> Dense."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(5, 1, activation="relu", name="features",
                            bias_initializer="random_normal")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(
        4, activation="softmax" if softmax else None, bias_initializer="random_normal"
    )(x)
    return keras.Model(inputs, outputs)


def pieces(model):
    """NumPy ``features(x)`` and ``head(acts)`` of ``conv_classifier`` models."""
    features = keras.Model(model.inputs, model.get_layer("features").output)
    dense = model.layers[-1]
    w, b = (to_numpy(v).astype("float64") for v in dense.weights)

    def head(acts):  # logits
        return acts.mean(axis=(1, 2)) @ w + b

    return (lambda x: to_numpy(features(x)).astype("float64")), head


def images(n=3, seed=1):
    return np.random.default_rng(seed).random((n, SIZE, SIZE, 3)).astype("float32")


def test_eigen_cam_equals_numpy_svd():
    model = conv_classifier()
    x = images()
    features, _ = pieces(model)
    acts = features(x)
    expected = []
    for a in acts:
        flat = a.reshape(-1, a.shape[-1])
        v = np.linalg.svd(flat, full_matrices=False)[2][0]
        projection = flat @ v
        if projection.sum() < 0:
            projection = -projection
        expected.append(np.maximum(projection, 0).reshape(a.shape[:2]))
    got = explain.eigen_cam(model, x, layer_name="features", batch_size=2)
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-3, atol=1e-5)


def test_ablation_cam_equals_numpy_loop():
    model = conv_classifier(softmax=True)  # explained on the logits
    x = images()
    features, head = pieces(model)
    acts = features(x)
    logits = head(acts)
    expected = []
    for b in range(len(x)):
        c = int(np.argmax(logits[b]))
        weights = np.zeros(acts.shape[-1])
        for k in range(acts.shape[-1]):
            if not np.any(acts[b, ..., k]):
                continue
            ablated = acts[b : b + 1].copy()
            ablated[..., k] = 0
            weights[k] = logits[b, c] - head(ablated)[0, c]
        expected.append(np.maximum(acts[b] @ weights, 0))
    got = explain.ablation_cam(model, x, layer_name="features", batch_size=3)
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-4, atol=1e-5)


def test_rise_masks_on_the_device_equal_a_numpy_crop():
    generator = RiseMasks(6, 3, 0.5, (10, 13), seed=2)
    index = np.array([0, 3, 5, 1])
    up = explain.upsample(generator.grids[index].astype("float32"), generator.up_size)
    expected = np.stack(
        [up[i, dy : dy + 10, dx : dx + 13] for i, (dy, dx) in enumerate(generator.shifts[index])]
    )
    np.testing.assert_allclose(generator.masks(index), expected, rtol=1e-6, atol=1e-7)
    assert generator.masks(index).shape == (4, 10, 13)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam", "eigencam",
                                    "ablationcam", "rise"])
def test_compiled_calls_see_new_weights(method):
    kwargs = {"n_masks": 16, "mask_size": 3} if method == "rise" else {}
    if method != "rise":
        kwargs["layer_name"] = "features"
    model = conv_classifier(seed=0)
    x = images()
    before = explain.explain(method, model, x, **kwargs)
    other = conv_classifier(seed=5)
    model.set_weights(other.get_weights())
    after = explain.explain(method, model, x, **kwargs)
    fresh = explain.explain(method, other, x, **kwargs)
    np.testing.assert_allclose(after, fresh, rtol=1e-4, atol=1e-6)
    assert not np.allclose(before, after)


def test_softmax_views_stay_apart():
    """The logits view (default) and the probabilities (from_logits=False)
    give their own maps in any order: each compiled call keeps its view."""
    model = conv_classifier(softmax=True)
    twin = conv_classifier(softmax=False)  # same seed: the same weights
    x = images()
    on_logits = explain.grad_cam(model, x, layer_name="features")
    np.testing.assert_allclose(
        on_logits, explain.grad_cam(twin, x, layer_name="features"), rtol=1e-4, atol=1e-6
    )
    on_probs = explain.grad_cam_plus_plus(model, x, layer_name="features", from_logits=False)
    again = explain.grad_cam(model, x, layer_name="features")
    np.testing.assert_allclose(again, on_logits, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        explain.grad_cam_plus_plus(model, x, layer_name="features", from_logits=False),
        on_probs, rtol=1e-6, atol=1e-7,
    )
    # The model still outputs probabilities afterwards.
    out = to_numpy(model(x))
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)
