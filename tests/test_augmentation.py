"""Tests of the authors' training augmentation (``keras_brnpa.datasets.augmentation_layers``
and ``AugmentedDataset``): each step checked against a NumPy property of its
definition, the wrapper against the raw batches."""

import keras
import numpy as np
import pytest

from keras_brnpa import datasets


def _images(n, size=32, low=0.0, high=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, (n, size, size, 3)).astype("float32")


def _run(layers, images):
    return keras.ops.convert_to_numpy(layers(images, training=True))


def test_flip_gives_each_image_or_its_mirror_drawn_per_image():
    x = _images(16)
    out = _run(datasets.augmentation_layers(32, crop_ratio=1, brightness=0, saturation=0,
                                            seed=0), x)
    same = [np.allclose(o, i) for o, i in zip(out, x)]
    mirrored = [np.allclose(o, i[:, ::-1]) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert any(same) and any(mirrored)  # one draw per image, not one per batch


def test_brightness_multiplies_each_image_by_one_factor_in_range():
    x = _images(8, low=0.1, high=0.8)  # 0.8 * 1.126 < 1: nothing clipped
    out = _run(datasets.augmentation_layers(32, crop_ratio=1, flip=False, brightness=0.126,
                                            saturation=0, seed=1), x)
    ratio = out / x
    factors = ratio.reshape(8, -1).mean(axis=1)
    np.testing.assert_allclose(ratio, factors[:, None, None, None] * np.ones_like(ratio),
                               rtol=1e-5)
    assert np.all((factors >= 1 - 0.126 - 1e-6) & (factors <= 1 + 0.126 + 1e-6))
    assert np.ptp(factors) > 0.01  # per image


def test_saturation_scales_hsv_saturation_keeps_value_and_grey():
    x = _images(8, low=0.4, high=0.8)  # HSV saturation <= 0.5: x 1.5 stays below 1
    x[0] = 0.5  # a grey image
    out = _run(datasets.augmentation_layers(32, crop_ratio=1, flip=False, brightness=0,
                                            saturation=0.5, seed=2), x)

    def hsv_s_v(images):  # HSV's definition, in NumPy
        value = images.max(axis=-1)
        return (value - images.min(axis=-1)) / np.maximum(value, 1e-12), value

    s_in, v_in = hsv_s_v(x)
    s_out, v_out = hsv_s_v(out)
    np.testing.assert_allclose(v_out, v_in, atol=1e-5)
    np.testing.assert_allclose(out[0], x[0], atol=1e-6)
    per_image = []
    for i in range(1, 8):
        coloured = s_in[i] > 0.05  # where the ratio is well defined
        scale = s_out[i][coloured] / s_in[i][coloured]
        np.testing.assert_allclose(scale, np.median(scale), rtol=1e-3)
        per_image.append(np.median(scale))
    per_image = np.array(per_image)
    assert np.all((per_image >= 0.5 - 1e-3) & (per_image <= 1.5 + 1e-3))
    assert np.ptp(per_image) > 0.01  # per image


def test_crop_is_a_random_shift_of_the_enlargement_per_image():
    # A horizontal ramp: enlarged by 37/32 then cropped back to 32, it stays a
    # ramp of slope (32 / 37) per pixel, shifted by the crop's whole-pixel offset.
    ramp = np.broadcast_to(np.linspace(0.0, 1.0, 32, dtype="float32")[None, :, None],
                           (32, 32, 3))
    x = np.stack([ramp] * 6)
    out = _run(datasets.augmentation_layers(32, flip=False, brightness=0, saturation=0,
                                            seed=3), x)
    inner = out[:, 4:-4, 4:-4, 0]
    slopes = np.diff(inner, axis=-1)
    np.testing.assert_allclose(slopes, (1 / 31) * (32 / 37), rtol=0.02)
    step = (1 / 31) * (32 / 37)
    offsets = (inner[:, :, 0].mean(axis=1) - inner[:, :, 0].mean()) / step
    np.testing.assert_allclose(offsets - offsets.min(), np.round(offsets - offsets.min()),
                               atol=0.02)  # whole pixels
    assert np.ptp(offsets) >= 1  # each image its own offset
    # Within the margin: no filled border, values stay in the input's range.
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6
    constant = _run(datasets.augmentation_layers(32, flip=False, brightness=0, saturation=0,
                                                 seed=3), np.full((2, 32, 32, 3), 0.3, "float32"))
    np.testing.assert_allclose(constant, 0.3, atol=1e-6)


def test_augmented_dataset_changes_images_only_and_replays_each_batch():
    x, y = _images(6), np.arange(6)
    raw = datasets.ArrayDataset(x, y, batch_size=4, shuffle=True, seed=0)
    data = datasets.AugmentedDataset(raw, seed=5)
    assert len(data) == len(raw) == 2
    for index in range(len(data)):
        (images, labels), (raw_images, raw_labels) = data[index], raw[index]
        assert images.shape == raw_images.shape and images.dtype == raw_images.dtype
        np.testing.assert_array_equal(labels, raw_labels)
        assert np.abs(images - raw_images).max() > 0.01
        np.testing.assert_array_equal(data[index][0], images)  # same draw when read again
    first = data[0][0]
    data.set_epoch(1)  # passed on: the raw data's order of epoch 1 too
    assert raw.epoch == 1
    resumed = datasets.AugmentedDataset(
        datasets.ArrayDataset(x, y, batch_size=4, shuffle=True, seed=0), seed=5)
    resumed.set_epoch(1)
    np.testing.assert_array_equal(resumed[0][0], data[0][0])  # a resumed run's batch
    assert not np.array_equal(data[0][0], first)
    data.on_epoch_end()
    assert (data.epoch, raw.epoch) == (2, 2)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"crop_ratio": 0.0}, "crop_ratio"), ({"brightness": 1.0}, "brightness"),
     ({"saturation": -0.1}, "saturation"), ({"flip": "yes"}, "flip"),
     ({"value_range": (1, 0)}, "value_range"), ({"image_size": 0}, "image_size")],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    kwargs = {"image_size": 32, **kwargs}
    with pytest.raises(ValueError, match=f"argument {name}"):
        datasets.augmentation_layers(**kwargs)


def test_augmented_dataset_refuses_what_it_cannot_augment():
    with pytest.raises(ValueError, match="argument data"):
        datasets.AugmentedDataset(iter([]))
    grey = datasets.ArrayDataset(np.zeros((2, 8, 8, 1), "float32"), np.zeros(2), batch_size=2)
    with pytest.raises(ValueError, match=r"argument data.*\(B, H, W, 3\)"):
        datasets.AugmentedDataset(grey)[0]
