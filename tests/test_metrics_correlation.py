"""Tests of DC/IC (keras_brnpa.metrics.deletion_correlation / insertion_correlation)."""

import keras
import numpy as np
import pytest

import keras_brnpa
from keras_brnpa import metrics


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def forward(model, image):
    return keras.ops.convert_to_numpy(model(image[None], training=False))[0].astype(np.float64)


def transcription(model, image, saliency, steps, other, mode):
    """Gomez et al. 2022, one image, one forward pass per point (NumPy).

    The saliency tiles the image; ``other`` is the fill (deletion) or the
    start image (insertion). Returns (correlation, curve with its start).
    """
    h, w = saliency.shape
    bh, bw = image.shape[0] // h, image.shape[1] // w
    order = np.argsort(-saliency.ravel(), kind="stable")
    intact = softmax(forward(model, image))
    label = int(np.argmax(intact))
    curve, removed_means = [], []
    counts = [round(t * h * w / steps) for t in range(steps + 1)]
    for t, count in enumerate(counts):
        x = (image if mode == "deletion" else other).copy()
        for cell in order[:count]:
            i, j = divmod(int(cell), w)
            block = (slice(i * bh, (i + 1) * bh), slice(j * bw, (j + 1) * bw))
            x[block] = (other if mode == "deletion" else image)[block]
        curve.append(softmax(forward(model, x))[label])
        if t:
            cells = order[counts[t - 1]:count]
            removed_means.append(saliency.ravel()[cells].mean() if len(cells) else None)
    change = -np.diff(curve) if mode == "deletion" else np.diff(curve)
    keep = [m is not None for m in removed_means]
    pairs = np.array([change[keep], np.array(removed_means, dtype=object)[keep].astype(float)])
    return np.corrcoef(pairs)[0, 1], np.array(curve)


def test_equal_to_a_numpy_transcription_of_the_definition():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(stddev=4.0)),
    ])
    rng = np.random.default_rng(0)
    images = rng.random((2, 32, 32, 3)).astype("float32")
    saliency = rng.random((2, 2, 4))
    start = np.full_like(images, 0.25)
    for steps in (3, 11):  # cells not dividing steps; more steps than cells
        dc, curves = metrics.deletion_correlation(
            model, images, saliency, steps=steps, return_curves=True)
        ic, icurves = metrics.insertion_correlation(
            model, images, saliency, steps=steps, baseline=0.25, return_curves=True)
        assert curves.shape == (2, steps + 1)
        for b in range(2):
            expected, curve = transcription(model, images[b], saliency[b], steps,
                                            np.zeros_like(images[b]), "deletion")
            np.testing.assert_allclose(curves[b], curve, atol=1e-5)
            np.testing.assert_allclose(dc[b], expected, atol=1e-4)
            expected, curve = transcription(model, images[b], saliency[b], steps, start[b],
                                            "insertion")
            np.testing.assert_allclose(icurves[b], curve, atol=1e-5)
            np.testing.assert_allclose(ic[b], expected, atol=1e-4)
        # Without the start point the curve is deletion_auc's.
        np.testing.assert_allclose(
            metrics.curve_area(curves[:, 1:]),
            metrics.deletion_auc(model, images, saliency, steps=steps), atol=1e-7)
    # Batch independence and an empty batch.
    alone = metrics.deletion_correlation(model, images[1:], saliency[1:], steps=11)
    np.testing.assert_allclose(alone, dc[1:], atol=1e-6)
    assert metrics.insertion_correlation(
        model, images[:0], saliency[:0], steps=3).shape == (0,)


def test_a_map_with_the_right_values_scores_one_and_the_same_order_less():
    """A model linear in the pixels: removing a cell drops the score by the
    cell's mean. A map equal to the cells' means has DC = IC = 1; its cube
    ranks the cells the same way (same DAUC) but its values do not match
    the drops (DC < 1): what the correlation adds to the area."""

    def model(x):  # class 0's probability: the mean pixel (in [0, 1])
        m = np.asarray(x, np.float64).mean(axis=(1, 2, 3))
        return np.stack([m, 1 - m], axis=1)

    rng = np.random.default_rng(1)
    images = rng.uniform(0.8, 1.0, (2, 4, 4, 1)) ** 3  # class 0 (mean > 0.5)
    cells = images[..., 0]  # one pixel per cell
    options = dict(steps=16, from_logits=False)
    for mode, metric in (("deletion", metrics.deletion_correlation),
                         ("insertion", metrics.insertion_correlation)):
        extra = {"baseline": 0.0}
        np.testing.assert_allclose(metric(model, images, cells, **options, **extra), 1.0,
                                   atol=1e-9)
        cube = metric(model, images, cells**3, **options, **extra)
        assert np.all(cube < 0.999), (mode, cube)
    np.testing.assert_allclose(
        metrics.deletion_auc(model, images, cells, **options),
        metrics.deletion_auc(model, images, cells**3, **options))
    # A constant map and a single step say nothing: NaN.
    flat = metrics.deletion_correlation(model, images, np.ones((2, 4, 4)), **options)
    assert np.isnan(flat).all()
    assert np.isnan(metrics.deletion_correlation(model, images, cells, steps=1,
                                                 from_logits=False)).all()
    with pytest.raises(ValueError, match="argument baseline"):
        metrics.deletion_correlation(model, images, cells, baseline="median")
    with pytest.raises(ValueError, match="argument curves"):
        keras_brnpa.metrics.curve_area(np.ones(3))
