"""Inputs checked on every call (issue 20, part 2).

Images of another size or layout than the model's input are refused with
one ``ValueError`` naming ``images``, also after a warm-up call at the
right size (a compiled function traced once must not accept another
size); an empty batch gives empty results; the BR-NPA layer works for any
finite magnitude and gives NaN (never uniform maps) for non-finite
features, image by image.
"""

import warnings

import keras
import numpy as np
import pytest

import keras_brnpa
from tests.reference import brnpa_numpy

explain = keras_brnpa.explain
metrics = keras_brnpa.metrics
SIZE = 32

#: name -> call(model, images); every explainer of METHODS and the metrics
#: that run the model.
CALLS = {
    **{
        name: (lambda name: lambda m, x: explain.explain(
            name, m, x, **({"n_masks": 8} if name == "rise" else {})))(name)
        for name in explain.METHODS
    },
    "saliency": lambda m, x: explain.saliency(m, x),
    "smooth_grad": lambda m, x: explain.smooth_grad(m, x, samples=2),
    "integrated_gradients": lambda m, x: explain.integrated_gradients(m, x, steps=2),
    "deletion_auc": lambda m, x: metrics.deletion_auc(m, x, np.ones((len(x), 4, 4)) * _ramp()),
    "insertion_auc": lambda m, x: metrics.insertion_auc(m, x, np.ones((len(x), 4, 4)) * _ramp()),
}
_OWN_MAPS = ("brnpa", "attention", "feature_norm")


def _ramp():
    return np.arange(16.0).reshape(4, 4)


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    kw = dict(backbone="tiny", input_shape=(SIZE, SIZE, 3), resolution="high")
    return {
        "brnpa": keras_brnpa.models.build_classifier(3, head="brnpa", **kw),
        "gap": keras_brnpa.models.build_classifier(3, head="gap", **kw),
    }


def _model_for(name, models):
    return models["brnpa"] if name in _OWN_MAPS else models["gap"]


def _images(n=2, seed=0):
    return np.random.default_rng(seed).random((n, SIZE, SIZE, 3)).astype("float32")


@pytest.mark.parametrize("name", ["gradcam", "rise", "attention", "saliency", "deletion_auc"])
def test_images_of_another_size_or_layout_are_refused_after_a_warm_up(models, name):
    model, call = _model_for(name, models), CALLS[name]
    x = _images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call(model, x)  # warm-up at the right size (traces the compiled paths)
    wrong = {
        (2, 16, 16, 3): x[:, :16, :16],  # another size
        (2, SIZE, SIZE, 1): x[..., :1],  # one channel for a 3-channel model
        (2, 3, SIZE, SIZE): np.transpose(x, (0, 3, 1, 2)),  # NCHW
    }
    for shape, images in wrong.items():
        expected = (
            rf"argument images\. Expected an array of shape \(B, {SIZE}, {SIZE}, 3\).*"
            rf"Received: images='<array of shape {re_shape(shape)}>'"
        )
        with pytest.raises(ValueError, match=expected):
            call(model, images)


def re_shape(shape):
    return r"\(" + r", ".join(str(s) for s in shape) + r"\)"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_an_empty_batch_gives_empty_results(models, name):
    model, call = _model_for(name, models), CALLS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = np.asarray(call(model, _images(1)))
        empty = call(model, _images(1)[:0])
    assert isinstance(empty, np.ndarray)
    assert empty.shape == (0,) + full.shape[1:]
    assert empty.dtype == full.dtype


def _features(seed=0, batch=3):
    rng = np.random.default_rng(seed)
    return rng.random((batch, 5, 5, 4)).astype("float32")


def _group(layer, x):
    return [keras.ops.convert_to_numpy(t) for t in layer.group(x)]


def test_layer_gives_the_same_maps_for_any_finite_magnitude():
    layer = keras_brnpa.BRNPAAttention(n_parts=3)
    f = _features()
    vectors, maps, _ = _group(layer, f)
    for factor in (3e38, 1e30, 1e20, 10.0):
        big = f * np.float32(factor)
        assert np.all(np.isfinite(big))
        ref_vectors, ref_maps, _ = brnpa_numpy(big.astype(np.float64), 3)
        v, m, norm = _group(layer, big)
        np.testing.assert_allclose(m, ref_maps, atol=1e-5)
        np.testing.assert_allclose(m, maps, atol=1e-5)
        np.testing.assert_allclose(v / np.float64(factor), ref_vectors / factor, rtol=1e-4)
        assert np.all(np.isfinite(norm)) and np.all(norm > 0)
        assert not np.allclose(m[..., 0], 1.0 / 25)  # not the uniform fallback
    # The compiled path (predict) too.
    model = keras.Sequential(
        [keras.Input((5, 5, 4)), keras_brnpa.BRNPAAttention(3, return_attention_maps=True)]
    )
    _, compiled_maps = model.predict(f * np.float32(3e38), verbose=0)
    np.testing.assert_allclose(compiled_maps, maps, atol=1e-5)


def test_layer_non_finite_features_give_nan_for_that_image_only():
    layer = keras_brnpa.BRNPAAttention(n_parts=2)
    f = _features(1)
    f[0, 2, 3, 1] = np.nan
    f[1, 0, 0, 0] = np.inf
    vectors, maps, norm = _group(layer, f)
    for i in (0, 1):
        assert np.all(np.isnan(vectors[i])) and np.all(np.isnan(maps[i]))
        assert np.all(np.isnan(norm[i]))
    alone = _group(layer, f[2:])
    np.testing.assert_allclose(vectors[2], alone[0][0], rtol=1e-6)
    np.testing.assert_allclose(maps[2], alone[1][0], atol=1e-7)
    ref_vectors, ref_maps, ref_norm = brnpa_numpy(f[2:].astype(np.float64), 2)
    np.testing.assert_allclose(maps[2], ref_maps[0], atol=1e-5)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_layer_empty_batch_gives_empty_outputs(data_format):
    layer = keras_brnpa.BRNPAAttention(n_parts=2, data_format=data_format)
    shape = (0, 5, 5, 4) if data_format == "channels_last" else (0, 4, 5, 5)
    x = np.zeros(shape, "float32")
    vectors, maps = layer(x, return_attention_maps=True)
    expected_maps = (0, 5, 5, 2) if data_format == "channels_last" else (0, 2, 5, 5)
    assert tuple(vectors.shape) == (0, 8)
    assert tuple(maps.shape) == expected_maps
    assert tuple(layer.feature_norm(x).shape) == (0, 5, 5)
