"""Tests of keras_brnpa.metrics.road and noisy_linear_impute (ROAD, Rong et al. 2022)."""

import keras
import numpy as np
import pytest

from keras_brnpa import metrics

WEIGHTS = {(-1, 0): 1 / 6, (1, 0): 1 / 6, (0, -1): 1 / 6, (0, 1): 1 / 6,
           (-1, -1): 1 / 12, (-1, 1): 1 / 12, (1, -1): 1 / 12, (1, 1): 1 / 12}


def neighbour_mean(image, y, x):
    """DESIGN.md 1.5: the weighted mean of the in-image 8 neighbours."""
    total, weight = 0.0, 0.0
    for (dy, dx), w in WEIGHTS.items():
        if 0 <= y + dy < image.shape[0] and 0 <= x + dx < image.shape[1]:
            total = total + w * image[y + dy, x + dx]
            weight += w
    return total / weight


def test_noise_free_imputation_reproduces_a_linear_ramp():
    ys, xs = np.mgrid[0:9, 0:11].astype("float64")
    ramp = np.stack([2.0 * xs + 0.5 * ys, -1.5 * ys + 3.0, 0.25 * xs], axis=-1)[None]
    mask = np.zeros((9, 11), bool)
    mask[2:7, 1:9] = True
    mask[4, 9] = True
    filled = metrics.noisy_linear_impute(ramp, mask, noise=0.0)
    np.testing.assert_allclose(filled, ramp, atol=1e-9)


def test_every_removed_pixel_is_the_mean_of_its_neighbours():
    """The fixed point of the definition, borders and corners included."""
    rng = np.random.default_rng(0)
    images = rng.random((2, 7, 6, 2))
    mask = rng.random((2, 7, 6)) < 0.5
    mask[:, 0, 0] = True  # a corner
    mask[:, 3, 5] = True  # an edge
    filled = metrics.noisy_linear_impute(images, mask, noise=0.0)
    for b in range(2):
        np.testing.assert_array_equal(filled[b][~mask[b]], images[b][~mask[b]])
        for y, x in zip(*np.nonzero(mask[b])):
            np.testing.assert_allclose(filled[b, y, x], neighbour_mean(filled[b], y, x),
                                       atol=1e-10)


@pytest.mark.parametrize("lapack", ["ctypes", "solveh_banded"])
def test_band_cholesky_and_sparse_lu_give_the_same_imputation(lapack, monkeypatch):
    """Both solvers of _impute_linear (tall, wide and a no-removal image).

    The band path calls LAPACK's dpbsv through ctypes on a thread per core
    (``lapack="ctypes"``) or, without that function, solveh_banded.
    """
    from keras_brnpa.metrics import road_metric

    if lapack == "ctypes":
        assert road_metric._lapack_pbsv() is not None  # SciPy exports dpbsv
    else:
        monkeypatch.setattr(road_metric, "_lapack_pbsv", lambda: None)
    rng = np.random.default_rng(2)
    for shape in [(3, 7, 5, 2), (3, 5, 9, 1), (6, 12, 10, 3)]:
        images = rng.random(shape)
        removed = rng.random(shape[:3]) < 0.6
        removed[:, 0, 0] = False
        removed[1] = False  # nothing to solve for this image
        band = road_metric._impute_linear(images, removed, solver="banded")
        sparse = road_metric._impute_linear(images, removed, solver="sparse")
        np.testing.assert_allclose(band, sparse, atol=1e-12)
        np.testing.assert_array_equal(band[~removed], images[~removed])
        b, y, x = np.argwhere(removed)[-1]
        np.testing.assert_allclose(band[b, y, x], neighbour_mean(band[b], y, x), atol=1e-12)


def test_noise_is_added_to_removed_pixels_only_and_is_seeded():
    rng = np.random.default_rng(1)
    images = rng.random((3, 16, 16, 3)).astype("float32")
    mask = rng.random((16, 16)) < 0.6
    clean = metrics.noisy_linear_impute(images, mask, noise=0.0)
    noisy = metrics.noisy_linear_impute(images, mask, noise=0.1, seed=3)
    assert noisy.dtype == np.float32
    diff = (noisy - clean)[:, mask]
    np.testing.assert_array_equal(noisy[:, ~mask], images[:, ~mask])
    assert 0.08 < diff.std() < 0.12
    # Same field for every image (batch independence), another for another seed.
    np.testing.assert_allclose(diff[0], diff[2], atol=1e-5)
    again = metrics.noisy_linear_impute(images[2:], mask, noise=0.1, seed=3)
    np.testing.assert_allclose(again[0], noisy[2], atol=1e-6)
    other = metrics.noisy_linear_impute(images, mask, noise=0.1, seed=4)
    assert not np.allclose(other, noisy)


BOX = (8, 8, 8, 8)  # top, left, height, width of the only region the model sees


def box_texture_model(size=24):
    """Class 0 when the box has texture (Laplacian energy), class 1 when smooth."""
    top, left, h, w = BOX
    inputs = keras.Input((size, size, 3))
    crop = keras.layers.Cropping2D(((top, size - top - h), (left, size - left - w)))(inputs)
    laplacian = keras.layers.Conv2D(1, 3, use_bias=False)
    edges = laplacian(crop)
    energy = keras.layers.GlobalAveragePooling2D()(keras.layers.Multiply()([edges, edges]))
    head = keras.layers.Dense(2, activation="softmax")
    outputs = head(energy)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((3, 3, 3, 1), "float32")
    kernel[:, :, :, 0] = -1.0 / 3
    kernel[1, 1, :, 0] = 8.0 / 3
    laplacian.set_weights([kernel])
    head.set_weights([np.array([[1.0, -1.0]], "float32"), np.array([-1.5, 1.5], "float32")])
    return model


def test_morf_on_the_box_drops_more_than_random_and_lerf_keeps_more():
    rng = np.random.default_rng(0)
    images = rng.random((3, 24, 24, 3)).astype("float32")
    model = box_texture_model()
    top, left, h, w = BOX
    box = np.zeros((3, 24, 24))
    box[:, top : top + h, left : left + w] = 1.0
    box += rng.random(box.shape) * 1e-3  # a strict order inside and outside
    random_map = rng.random((3, 24, 24))
    intact = np.asarray(model.predict_on_batch(images))[:, 0]
    assert np.all(intact > 0.7)
    fractions = (0.1, 0.3, 0.5)
    morf_box = metrics.road(model, images, box, fractions=fractions)
    morf_random = metrics.road(model, images, random_map, fractions=fractions)
    lerf_box = metrics.road(model, images, box, order="lerf", fractions=fractions)
    lerf_random = metrics.road(model, images, random_map, order="lerf", fractions=fractions)
    assert np.all(morf_box < morf_random - 0.1), (morf_box, morf_random)
    assert np.all(lerf_box > lerf_random + 0.1), (lerf_box, lerf_random)
    # LeRF on the box removes only pixels outside it up to 1 - 64/576: unchanged score.
    np.testing.assert_allclose(lerf_box, intact, atol=1e-5)


def test_road_equals_a_plain_loop_over_images_and_fractions():
    rng = np.random.default_rng(2)
    images = rng.random((2, 12, 12, 3)).astype("float32")
    saliency = rng.random((2, 6, 6))
    model = keras.Sequential([
        keras.Input((12, 12, 3)), keras.layers.Conv2D(3, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    fractions = (0.25, 0.5)
    score, curves = metrics.road(model, images, saliency, fractions=fractions, noise=0.0,
                                 return_curves=True, batch_size=3)
    upsampled = metrics.localization.upsample(saliency, (12, 12))
    for b in range(2):
        label = np.argmax(keras.ops.convert_to_numpy(model(images[b : b + 1]))[0])
        order = np.argsort(-upsampled[b].reshape(-1), kind="stable")
        for k, p in enumerate(fractions):
            removed = np.zeros(144, bool)
            removed[order[: round(p * 144)]] = True
            x = metrics.noisy_linear_impute(images[b : b + 1], removed.reshape(12, 12), noise=0.0)
            expected = keras.ops.convert_to_numpy(model(x))[0, label]
            assert curves[b, k] == pytest.approx(expected, abs=1e-5)
    np.testing.assert_allclose(score, curves.mean(axis=1))


def _raises(argument, function, *args, **kwargs):
    with pytest.raises(ValueError, match=f"argument {argument}"):
        function(*args, **kwargs)


def test_errors():
    images = np.zeros((1, 8, 8, 1), "float32")
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    saliency = np.zeros((1, 4, 4))
    _raises("order", metrics.road, model, images, saliency, order="most")
    _raises("fractions", metrics.road, model, images, saliency, fractions=(0.5, 1.0))
    _raises("fractions", metrics.road, model, images, saliency, fractions=())
    _raises("noise", metrics.road, model, images, saliency, noise=-1.0)
    _raises("seed", metrics.road, model, images, saliency, seed=1.5)
    _raises("saliency", metrics.road, model, images, np.zeros((2, 4, 4)))
    _raises("mask", metrics.noisy_linear_impute, images, np.ones((8, 8), bool))
    _raises("mask", metrics.noisy_linear_impute, images, np.zeros((4, 4), bool))
    _raises("noise", metrics.noisy_linear_impute, images, np.zeros((8, 8), bool), noise="a")


def test_road_checks_images_against_the_model_and_takes_an_empty_batch():
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(2, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    images = np.random.default_rng(0).random((2, 16, 16, 3), "float32")
    saliency = np.ones((2, 4, 4))
    metrics.road(model, images, saliency, fractions=(0.5,))  # a warm-up call first
    with pytest.raises(ValueError, match=r"argument images.*\(B, 16, 16, 3\)"):
        metrics.road(model, np.zeros((2, 8, 8, 3), "float32"), saliency, fractions=(0.5,))
    scores, curves = metrics.road(model, images[:0], saliency[:0], fractions=(0.2, 0.5),
                                  return_curves=True)
    assert scores.shape == (0,) and curves.shape == (0, 2)
