"""The shared bilinear resize (keras.ops.image.resize) against NumPy."""

import numpy as np
import pytest

import keras_brnpa
from keras_brnpa._image import resize_maps
from keras_brnpa.metrics import localization


def _matrix(in_size, out_size):
    """Bilinear weights, half-pixel centres, clamped edges (the former NumPy code)."""
    centres = np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, in_size - 1)
    matrix = np.zeros((out_size, in_size))
    np.add.at(matrix, (np.arange(out_size), low), 1 - (centres - low))
    np.add.at(matrix, (np.arange(out_size), high), centres - low)
    return matrix


def reference(maps, size):
    rows, cols = _matrix(maps.shape[1], size[0]), _matrix(maps.shape[2], size[1])
    if maps.ndim == 3:
        return np.einsum("Hh,bhw,Ww->bHW", rows, maps, cols)
    return np.einsum("Hh,bhwp,Ww->bHWp", rows, maps, cols)


@pytest.mark.parametrize(
    "shape, size",
    [
        ((2, 2, 2), (4, 4)),  # 2x up
        ((1, 3, 5), (7, 13)),  # non-integer ratios
        ((2, 7, 8, 3), (3, 5)),  # down, several parts
        ((1, 4, 4, 2), (64, 48)),  # 16x / 12x up, as attention maps to images
        ((1, 1, 3), (4, 4)),  # one row
    ],
)
def test_resize_matches_numpy_reference(shape, size):
    maps = np.random.default_rng(0).random(shape)
    expected = reference(maps, size)
    got = resize_maps(maps, size)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras_brnpa.explain.upsample(maps, size), expected, rtol=1e-5, atol=1e-6)
    if maps.ndim == 3:
        up = localization.upsample(maps, size)
        assert up.dtype == np.float64
        np.testing.assert_allclose(up, expected, rtol=1e-5, atol=1e-6)


def test_resize_identity_constant_and_sign():
    maps = np.random.default_rng(1).random((2, 3, 4))
    np.testing.assert_array_equal(resize_maps(maps, (3, 4)), maps.astype("float32"))
    constant = resize_maps(np.full((1, 3, 3), 0.7), (10, 7))
    np.testing.assert_allclose(constant, 0.7, rtol=1e-6)
    assert resize_maps(maps, (11, 9)).min() >= 0
