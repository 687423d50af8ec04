"""Hostile inputs to the metrics and explainers (issue 16).

Non-finite images are refused with an error naming ``images``; images in
the other pixel range than the model's get a warning; a constant map is
never a hit of the pointing game.
"""

import warnings

import keras
import numpy as np
import pytest

import keras_brnpa

metrics = keras_brnpa.metrics
explain = keras_brnpa.explain


def _model(rescale=False):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((8, 8, 3))]
    if rescale:
        layers.append(keras.layers.Rescaling(1 / 255))
    layers += [
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3),
    ]
    return keras.Sequential(layers)


@pytest.fixture(scope="module")
def model():
    return _model()


def _images(seed=0):
    return np.random.default_rng(seed).random((2, 8, 8, 3)).astype("float32")


SALIENCY = np.random.default_rng(1).random((2, 4, 4))


# ---------------------------------------------------------- non-finite images
def _metric_calls(model, images):
    return {
        "deletion_auc": lambda: metrics.deletion_auc(model, images, SALIENCY, steps=2),
        "insertion_auc": lambda: metrics.insertion_auc(model, images, SALIENCY, steps=2),
        "grad_cam": lambda: explain.grad_cam(model, images, "conv"),
        "rise": lambda: explain.rise(model, images, n_masks=4),
    }


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("call", ["deletion_auc", "insertion_auc", "grad_cam", "rise"])
def test_non_finite_images_are_refused_naming_images(model, call, bad):
    images = _images()
    images[1, 3, 4, 0] = bad
    # A ReLU swallowed the NaN on TensorFlow (a finite AUC); torch gave nan.
    with pytest.raises(ValueError, match=r"argument images\. Expected finite values"):
        _metric_calls(model, images)[call]()


# --------------------------------------------------------------- pixel range
def _warnings_of(function):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        function()
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)
            and "pixels" in str(w.message)]


@pytest.mark.parametrize("call", ["deletion_auc", "insertion_auc", "grad_cam", "rise"])
def test_0_255_images_for_a_0_1_model_warn(model, call):
    images = (_images() * 255).astype("uint8")
    messages = _warnings_of(_metric_calls(model, images)[call])
    assert len(messages) == 1 and "images look like 0-255 pixels" in messages[0]
    assert "divide them by 255" in messages[0]
    # The same images in [0, 1], or mean/std normalised (negative values):
    # no warning.
    assert _warnings_of(_metric_calls(model, _images())[call]) == []
    normalised = (_images() - 0.45) / 0.225
    assert _warnings_of(_metric_calls(model, normalised)[call]) == []


def test_0_1_images_for_a_0_255_model_warn():
    model = _model(rescale=True)
    assert keras_brnpa.models.input_scale(model) == "0-255"
    messages = _warnings_of(lambda: metrics.deletion_auc(model, _images(), SALIENCY, steps=2))
    assert len(messages) == 1 and "look like 0-1 pixels" in messages[0]
    assert _warnings_of(
        lambda: metrics.deletion_auc(model, _images() * 255, SALIENCY, steps=2)) == []
    # All-zero images say nothing about their range.
    assert _warnings_of(
        lambda: metrics.deletion_auc(model, np.zeros((2, 8, 8, 3)), SALIENCY, steps=2)) == []


# ------------------------------------------------------------- pointing game
def test_constant_maps_are_never_a_hit():
    mask = np.zeros((3, 8, 8), bool)
    mask[:, :4, :4] = True  # covers pixel (0, 0), the argmax of a constant map
    saliency = np.zeros((3, 4, 4))
    saliency[1] = 0.7
    saliency[2, 1, 1] = 1.0  # a real peak inside the region
    hits = metrics.pointing_game(saliency, mask)
    assert hits.tolist() == [False, False, True]
    boxes = np.array([[0.0, 0.0, 0.5, 0.5]] * 3)
    assert metrics.pointing_game(saliency, boxes).tolist() == [False, False, True]
    # A peak outside the region is still a miss; every map with a peak in
    # the region is a hit.
    saliency[2] = 0.0
    saliency[2, 3, 3] = 1.0
    assert metrics.pointing_game(saliency, mask).tolist() == [False, False, False]
