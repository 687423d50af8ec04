"""The harder embedded task: small digits in clutter (keras_brnpa.datasets.synthetic_clutter)."""

import numpy as np
import pytest

import keras_brnpa
from keras_brnpa.datasets import DIGIT_GLYPHS
from keras_brnpa.datasets import synthetic_clutter


def test_shapes_ranges_and_balance():
    images, labels, masks = synthetic_clutter(num_images=50, image_size=64, seed=3)
    assert images.shape == (50, 64, 64, 3) and images.dtype == np.float32
    assert labels.shape == (50,) and labels.dtype == np.int64
    assert masks.shape == (50, 64, 64) and masks.dtype == bool
    assert images.min() >= 0 and images.max() <= 1
    # Balanced: each of the 10 classes 5 times.
    assert np.bincount(labels, minlength=10).tolist() == [5] * 10
    _, labels, _ = synthetic_clutter(num_images=23, num_classes=4, seed=0)
    assert sorted(np.bincount(labels).tolist()) == [5, 6, 6, 6]
    # Other sizes: the digit scales with the image.
    small = synthetic_clutter(num_images=20, image_size=32, seed=0)[2].sum(axis=(1, 2))
    large = synthetic_clutter(num_images=20, image_size=96, seed=0)[2].sum(axis=(1, 2))
    assert 6 < large.mean() / small.mean() < 12  # about (96 / 32)^2 = 9x the pixels


def test_deterministic_by_seed():
    a = synthetic_clutter(num_images=140, seed=5)  # more than one chunk of 128
    b = synthetic_clutter(num_images=140, seed=5)
    c = synthetic_clutter(num_images=140, seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[2], c[2])


def test_masks_cover_the_digit_and_nothing_else():
    # Without noise: every mask pixel has the digit's one colour (clutter is
    # drawn before the digit, never over it); without clutter, no pixel
    # outside the mask has that colour.
    for distractors in (8, 0):
        images, _, masks = synthetic_clutter(num_images=30, seed=2, noise=0.0,
                                             num_distractors=distractors)
        for image, mask in zip(images, masks):
            colours = image[mask]
            np.testing.assert_array_equal(colours, np.broadcast_to(colours[0], colours.shape))
            if distractors == 0:
                assert not np.all(image[~mask] == colours[0], axis=-1).any()
    # A small object: a compact blob of about 3 % of the pixels.
    _, _, masks = synthetic_clutter(num_images=100, seed=0)
    share = masks.mean(axis=(1, 2))
    assert 0.01 < share.min() and share.max() < 0.06 and 0.02 < share.mean() < 0.04
    for mask in masks[:20]:
        rows, cols = np.nonzero(mask)
        assert rows.max() - rows.min() < 30 and cols.max() - cols.min() < 30


def glyph_features(masks, height=14, width=10):
    """Each mask's bounding box resampled to height x width (nearest)."""
    out = np.zeros((len(masks), height, width), "float32")
    for k, mask in enumerate(masks):
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        r = np.linspace(rows[0], rows[-1], height).round().astype(int)
        c = np.linspace(cols[0], cols[-1], width).round().astype(int)
        out[k] = mask[np.ix_(r, c)]
    return out.reshape(len(masks), -1)


def test_classes_are_the_digits_and_distinguishable():
    # The ten glyphs are distinct bitmaps.
    flat = DIGIT_GLYPHS.reshape(10, -1)
    assert DIGIT_GLYPHS.shape == (10, 7, 5)
    assert min((flat[i] != flat[j]).sum() for i in range(10) for j in range(i)) >= 3
    # Given where the object is (its mask), the class is in its shape: a
    # nearest neighbour over the masks of another seed finds it (chance 0.1).
    _, train_labels, train_masks = synthetic_clutter(num_images=300, seed=0)
    _, test_labels, test_masks = synthetic_clutter(num_images=100, seed=1)
    a, b = glyph_features(train_masks), glyph_features(test_masks)
    distances = ((b[:, None, :] - a[None]) ** 2).sum(-1)
    accuracy = (train_labels[distances.argmin(1)] == test_labels).mean()
    assert accuracy > 0.8


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_images=0), "num_images"),
        (dict(image_size=16), "image_size"),
        (dict(image_size=(64, 32)), "image_size"),
        (dict(num_classes=11), "num_classes"),
        (dict(num_classes=1), "num_classes"),
        (dict(seed=1.5), "seed"),
        (dict(num_distractors=-1), "num_distractors"),
        (dict(noise=0.8), "noise"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"argument {name}"):
        synthetic_clutter(**kwargs)


def test_public():
    assert keras_brnpa.datasets.synthetic_clutter is synthetic_clutter
    assert "synthetic_clutter" in keras_brnpa.datasets.__all__
    assert "DIGIT_GLYPHS" in keras_brnpa.datasets.__all__
