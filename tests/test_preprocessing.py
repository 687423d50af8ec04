"""The input convention and the paper's augmentation as Keras preprocessing layers.

Run under every KERAS_BACKEND: the layers must work inside ``tf.data`` with
any backend. Tiny images, no network.
"""

import os

import keras
import numpy as np
import pytest

import keras_brnpa

datasets = keras_brnpa.datasets
tf = pytest.importorskip("tensorflow", reason="the loaders use tf.data")

MEAN = np.array([0.485, 0.456, 0.406], "float32")
STD = np.array([0.229, 0.224, 0.225], "float32")


def _coordinates(height=40, width=56):
    """An image whose channels encode where each pixel comes from, and a mask.

    Red is the row, green the column (both in [0, 1]), blue constant; the
    mask is the left quarter plus a box, so a crop or flip that moved the
    mask differently from the image shows at once.
    """
    rows, cols = np.meshgrid(
        np.linspace(0, 1, height, dtype="float32"),
        np.linspace(0, 1, width, dtype="float32"),
        indexing="ij",
    )
    image = np.stack([rows, cols, np.full_like(rows, 0.5)], -1)
    mask = (cols < 0.25) | ((rows > 0.3) & (rows < 0.6) & (cols > 0.6) & (cols < 0.85))
    return image, mask


def _mask_at(mask, rows, cols):
    """The source mask at the positions (in [0, 1]) that the image channels name."""
    height, width = mask.shape
    r = np.clip(np.round(rows * (height - 1)).astype(int), 0, height - 1)
    c = np.clip(np.round(cols * (width - 1)).astype(int), 0, width - 1)
    return mask[r, c]


# ------------------------------------------------------------ alignment
def test_mask_follows_the_image_under_random_crop_and_flip():
    image, mask = _coordinates()
    flips, offsets = 0, set()
    for seed in range(8):
        out, out_mask = datasets.preprocess(
            image, 32, training=True, mask=mask[..., None].astype("float32"), seed=seed,
            color_jitter=0.0,
        )
        out, out_mask = np.asarray(out), np.asarray(out_mask)
        expected = _mask_at(mask, out[..., 0], out[..., 1])
        # Only resampling at the region's borders may differ (bilinear).
        assert np.mean(out_mask != expected) < 0.04, seed
        flipped = out[0, -1, 1] < out[0, 0, 1]
        flips += flipped
        # The crop is a window of the resized image: rows go down, columns
        # go right (left when flipped), by the resize step.
        assert np.all(np.diff(out[:, 0, 0]) > 0)
        steps = np.diff(out[0, :, 1])
        assert np.all(steps < 0) if flipped else np.all(steps > 0)
        offsets.add((round(float(out[0, 0, 0]), 3), round(float(out[0, 0, 1]), 3)))
    assert 0 < flips < 8, "the horizontal flip never or always happened"
    assert len(offsets) > 2, "the crop does not move"


def test_preprocessing_layers_keep_a_stacked_mask_aligned_in_tf_data():
    """The documented recipe: mask as a 4th channel through ``geometric``."""
    image, mask = _coordinates()
    geometric, photometric = datasets.preprocessing_layers(24, training=True, seed=1)
    stack = np.concatenate([image, mask[..., None].astype("float32")], -1)
    data = tf.data.Dataset.from_tensors(stack).repeat(6)

    def split(x):
        x = geometric(x)
        return photometric(x[..., :3]), x[..., :3], x[..., 3] > 0.5

    for jittered, plain, out_mask in data.map(split):
        plain, out_mask = plain.numpy(), out_mask.numpy()
        expected = _mask_at(mask, plain[..., 0], plain[..., 1])
        assert np.mean(out_mask != expected) < 0.05
        assert jittered.shape == (24, 24, 3)


# ------------------------------------------------------------- centre crop
def test_centre_crop_equals_a_numpy_crop():
    size = 28
    resized = int(round(size / 0.875))  # 32: the resize is then the identity
    rng = np.random.default_rng(0)
    image = rng.random((resized, resized, 3)).astype("float32")
    mask = rng.random((resized, resized)) > 0.5
    out, out_mask = datasets.preprocess(
        image, size, training=False, mask=mask[..., None].astype("float32")
    )
    offset = (resized - size) // 2
    np.testing.assert_allclose(
        np.asarray(out), image[offset : offset + size, offset : offset + size], atol=1e-6
    )
    np.testing.assert_array_equal(
        np.asarray(out_mask), mask[offset : offset + size, offset : offset + size]
    )


def test_test_time_preprocessing_is_deterministic():
    image, _ = _coordinates()
    a = datasets.preprocess(image, 24, training=False)
    b = datasets.preprocess(image, 24, training=False, seed=3)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------ normalisation
def test_normalization_layer_equals_numpy():
    rng = np.random.default_rng(1)
    images = rng.random((2, 8, 8, 3)).astype("float32")
    layer = datasets.normalization_layer("imagenet")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(images)), (images - MEAN) / STD, rtol=1e-5, atol=1e-6
    )
    custom = datasets.normalization_layer((0.5, 0.25))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(custom(images)), (images - 0.5) / 0.25, rtol=1e-5, atol=1e-6
    )
    identity = datasets.normalization_layer(None)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(identity(images)), images)
    np.testing.assert_allclose(datasets.IMAGENET_MEAN, MEAN)
    np.testing.assert_allclose(datasets.IMAGENET_STD, STD)


def test_normalization_layer_in_tf_data_and_in_a_model(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.random((3, 8, 8, 3)).astype("float32")
    layer = datasets.normalization_layer("imagenet")
    out = np.stack([x.numpy() for x in tf.data.Dataset.from_tensor_slices(images).map(layer)])
    np.testing.assert_allclose(out, (images - MEAN) / STD, rtol=1e-5, atol=1e-6)

    model = keras.Sequential(
        [keras.Input((8, 8, 3)), datasets.normalization_layer("imagenet"),
         keras.layers.Conv2D(2, 3)]
    )
    # The model takes [0, 1] images: what input_scale (--input-scale auto) reads.
    assert keras_brnpa.models.input_scale(model) == "0-1"
    path = os.path.join(str(tmp_path), "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images)),
        keras.ops.convert_to_numpy(model(images)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_preprocess_normalization_is_applied_last():
    image, mask = _coordinates()
    plain = np.asarray(datasets.preprocess(image, 24, training=False))
    normed, out_mask = datasets.preprocess(
        image, 24, training=False, mask=mask[..., None].astype("float32"),
        normalization="imagenet",
    )
    np.testing.assert_allclose(np.asarray(normed), (plain - MEAN) / STD, rtol=1e-5, atol=1e-5)
    assert np.asarray(out_mask).dtype == bool


@pytest.mark.parametrize(
    "value", ["imagent", (0.5,), (0.5, 0.0), (0.5, -1.0), ((0.1, 0.2), 1.0), (0.5, float("nan")), 3]
)
def test_invalid_normalization(value):
    with pytest.raises(ValueError, match="Invalid value for argument normalization"):
        datasets.normalization_layer(value)
    with pytest.raises(ValueError, match="argument normalization"):
        datasets.preprocessing_layers(16, training=False, normalization=value)


def test_image_folder_normalization(tmp_path):
    from PIL import Image

    for name, value in (("a", 60), ("b", 180)):
        os.makedirs(tmp_path / name)
        for i in range(2):
            Image.fromarray(np.full((12, 10, 3), value, "uint8")).save(tmp_path / name / f"{i}.png")
    plain = datasets.image_folder(str(tmp_path), 8, batch_size=4, shuffle=False, as_numpy=True)
    normed = datasets.image_folder(
        str(tmp_path), 8, batch_size=4, shuffle=False, as_numpy=True, normalization="imagenet"
    )
    np.testing.assert_allclose(normed.x, (plain.x - MEAN) / STD, rtol=1e-5, atol=1e-5)
    streamed = datasets.image_folder(
        str(tmp_path), 8, batch_size=4, shuffle=False, normalization="imagenet"
    )
    np.testing.assert_allclose(
        np.concatenate([x.numpy() for x, _ in streamed]), normed.x, rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="argument normalization"):
        datasets.image_folder(str(tmp_path), 8, normalization="caffe")


def test_load_tfds_normalization_on_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=3):
        plain = datasets.load_tfds("oxford_iiit_pet", "test", image_size=16, batch_size=3)
        normed = datasets.load_tfds(
            "oxford_iiit_pet", "test", image_size=16, batch_size=3, normalization="imagenet"
        )
        x, y = next(iter(plain))
        xn, yn = next(iter(normed))
    np.testing.assert_array_equal(y.numpy(), yn.numpy())
    np.testing.assert_allclose(xn.numpy(), (x.numpy() - MEAN) / STD, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="argument normalization"):
        datasets.load_tfds("oxford_iiit_pet", "test", image_size=16, normalization="caffe")


# ----------------------------------------------------- tf.data, any backend
def test_training_pipeline_runs_in_tf_data_under_the_current_backend():
    rng = np.random.default_rng(3)
    images = (rng.random((4, 50, 40, 3)) * 255).astype("uint8")
    geometric, photometric = datasets.preprocessing_layers(32, training=True, seed=0)
    data = tf.data.Dataset.from_tensor_slices(images).map(
        lambda x: photometric(geometric(tf.cast(x, "float32") / 255.0)),
        num_parallel_calls=2,
    )
    out = np.stack([x.numpy() for x in data])
    assert out.shape == (4, 32, 32, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    # preprocess itself, mapped: its layers are created outside the trace.
    mapped = tf.data.Dataset.from_tensor_slices(images).map(
        lambda x: datasets.preprocess(x, 24, training=True, seed=5)
    )
    assert [tuple(x.shape) for x in mapped] == [(24, 24, 3)] * 4


def test_layers_stay_float32_under_a_mixed_precision_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    image, _ = _coordinates()
    out = datasets.preprocess(image, 24, training=True, seed=0, normalization="imagenet")
    assert out.dtype == tf.float32


def test_pipeline_contents_follow_the_arguments():
    geometric, photometric = datasets.preprocessing_layers(16, training=True)
    assert [type(x).__name__ for x in geometric.layers] == ["Resizing", "RandomCrop", "RandomFlip"]
    assert [type(x).__name__ for x in photometric.layers] == [
        "RandomBrightnessScale", "RandomContrast", "RandomSaturation", "Rescaling"
    ]
    geometric, photometric = datasets.preprocessing_layers(
        16, training=False, normalization="imagenet"
    )
    assert [type(x).__name__ for x in geometric.layers] == ["Resizing", "CenterCrop"]
    assert [type(x).__name__ for x in photometric.layers] == ["Normalization"]
    _, photometric = datasets.preprocessing_layers(16, training=True, color_jitter=0.0)
    assert [type(x).__name__ for x in photometric.layers] == ["Rescaling"]
    assert geometric.layers[0].height == 18  # round(16 / 0.875)
    for kwargs, name in (
        ({"color_jitter": 1.0}, "color_jitter"),
        ({"color_jitter": -0.1}, "color_jitter"),
        ({"seed": 1.5}, "seed"),
        ({"training": "yes"}, "training"),
    ):
        with pytest.raises(ValueError, match=f"argument {name}"):
            datasets.preprocessing_layers(16, **{"training": True, **kwargs})


# ------------------------------------------------------- the colour jitter
def test_saturation_scale_spans_one_plus_minus_the_jitter():
    _, photometric = datasets.preprocessing_layers(16, training=True, color_jitter=0.4)
    saturation = photometric.layers[2]
    low, high = saturation.factor
    np.testing.assert_allclose([low / (1 - low), high / (1 - high)], [0.6, 1.4], rtol=1e-6)


def test_contrast_factor_spans_one_plus_minus_the_jitter():
    """Measured: the std of each image is scaled by a factor in [0.6, 1.4]."""
    _, photometric = datasets.preprocessing_layers(16, training=True, color_jitter=0.4, seed=0)
    contrast = photometric.layers[1]
    rng = np.random.default_rng(5)
    images = (0.5 + 0.1 * rng.standard_normal((64, 8, 8, 3))).clip(0.2, 0.8).astype("float32")
    out = keras.ops.convert_to_numpy(contrast(images, training=True))
    factors = out.std(axis=(1, 2)) / images.std(axis=(1, 2))
    assert factors.min() >= 0.6 - 1e-4 and factors.max() <= 1.4 + 1e-4
    assert factors.min() < 0.75 and factors.max() > 1.25


def test_random_brightness_scale_multiplies():
    layer = keras_brnpa.layers.RandomBrightnessScale(0.4, value_range=(0, 1), seed=0)
    rng = np.random.default_rng(4)
    images = rng.uniform(0.05, 0.7, (16, 6, 6, 3)).astype("float32")
    images[0] = 0.0
    out = keras.ops.convert_to_numpy(layer(images, training=True))
    ratios = out[1:] / images[1:]
    per_image = ratios.reshape(15, -1)
    # One factor per image, in [0.6, 1.4], and black stays black.
    np.testing.assert_allclose(per_image, per_image[:, :1] * np.ones_like(per_image), rtol=1e-5)
    assert np.all((per_image >= 0.6 - 1e-6) & (per_image <= 1.4 + 1e-6))
    assert per_image[:, 0].std() > 0.05
    np.testing.assert_array_equal(out[0], 0.0)
    # Inference: unchanged. Pixels pushed above the range are clipped.
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(images, training=False)), images
    )
    bright = keras.ops.convert_to_numpy(layer(np.ones((8, 2, 2, 3), "float32"), training=True))
    assert bright.max() <= 1.0
    # 0-255 images: same factors, relative to the range.
    pixels = keras_brnpa.layers.RandomBrightnessScale(0.2, seed=1)(
        np.full((4, 2, 2, 3), 100.0, "float32"), training=True
    )
    pixels = keras.ops.convert_to_numpy(pixels)
    assert np.all((pixels >= 80 - 1e-3) & (pixels <= 120 + 1e-3))


def test_random_brightness_scale_config_and_saving(tmp_path):
    layer = keras_brnpa.layers.RandomBrightnessScale((-0.2, 0.3), value_range=(0, 1), seed=4)
    config = layer.get_config()
    clone = keras_brnpa.layers.RandomBrightnessScale.from_config(config)
    assert clone.get_config() == config
    assert tuple(clone.factor) == (-0.2, 0.3)
    model = keras.Sequential([keras.Input((4, 4, 3)), layer, keras.layers.Conv2D(1, 1)])
    path = os.path.join(str(tmp_path), "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.layers[0]).__name__ == "RandomBrightnessScale"
    x = np.full((2, 4, 4, 3), 0.5, "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.predict(x, verbose=0)),
        keras.ops.convert_to_numpy(model.predict(x, verbose=0)),
        rtol=1e-6,
    )
    for bad in (1.0, -0.5, (0.3, -0.3), (0.1, 0.2, 0.3), "0.4", True):
        with pytest.raises(ValueError, match="Invalid value for argument factor"):
            keras_brnpa.layers.RandomBrightnessScale(bad)
