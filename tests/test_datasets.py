"""Tests of keras_brnpa.datasets: the synthetic parts data and the tfds loaders."""

import numpy as np
import pytest

import keras_brnpa
from keras_brnpa.datasets import synthetic as synthetic_module

datasets = keras_brnpa.datasets


@pytest.fixture(scope="module")
def small():
    return datasets.synthetic_parts(num_images=40, image_size=32, num_classes=4, seed=3)


# ----------------------------------------------------------- synthetic_parts
def test_same_seed_same_arrays_different_seed_different(small):
    again = datasets.synthetic_parts(num_images=40, image_size=32, num_classes=4, seed=3)
    for a, b in zip(small, again):
        np.testing.assert_array_equal(a, b)
    other = datasets.synthetic_parts(num_images=40, image_size=32, num_classes=4, seed=4)
    assert not np.array_equal(small[0], other[0])
    assert not np.array_equal(small[2], other[2])


def test_more_images_than_one_chunk_are_deterministic_and_distinct():
    n = synthetic_module._CHUNK + 5
    a = datasets.synthetic_parts(num_images=n, image_size=16, num_classes=2, seed=0)
    b = datasets.synthetic_parts(num_images=n, image_size=16, num_classes=2, seed=0)
    np.testing.assert_array_equal(a[0], b[0])
    # The second chunk is not a copy of the first one.
    assert not np.array_equal(a[0][:5], a[0][synthetic_module._CHUNK :])


def test_shapes_dtypes_and_range(small):
    images, labels, masks = small
    assert images.shape == (40, 32, 32, 3) and images.dtype == np.float32
    assert labels.shape == (40,) and labels.dtype == np.int64
    assert masks.shape == (40, 32, 32) and masks.dtype == bool
    assert images.min() >= 0.0 and images.max() <= 1.0


def test_masks_inside_the_image_non_empty_and_small(small):
    _, _, masks = small
    area = masks.mean(axis=(1, 2))
    assert np.all(area > 0), "an image without visible part"
    # The parts are small regions of the image, not the whole object.
    assert np.all(area < 0.25)


def test_labels_balanced(small):
    counts = np.bincount(small[1], minlength=4)
    assert counts.max() - counts.min() <= 1
    assert counts.sum() == 40


def test_masked_pixels_have_the_colours_of_the_class_parts():
    """Without noise the masked pixels are exactly the class's part colours."""
    num_classes = 6
    images, labels, masks = datasets.synthetic_parts(
        num_images=30, image_size=48, num_classes=num_classes, seed=11, noise=0.0
    )
    table = datasets.class_table(num_classes)
    styles = np.array(datasets.part_styles())
    for image, label, mask in zip(images, labels, masks):
        expected = datasets.PART_COLOURS[styles[table[label], 0]]
        pixels = np.unique(image[mask], axis=0)
        distances = np.abs(pixels[:, None, :] - expected[None]).max(-1)
        assert np.all(distances.min(axis=1) < 1e-6), (label, pixels, expected)
        # Every part region of the class is visible.
        seen = np.abs(expected[:, None, :] - pixels[None]).max(-1).min(axis=1) < 1e-6
        assert seen.all()


def test_classes_do_not_depend_on_the_seed():
    a = datasets.synthetic_parts(num_images=12, image_size=32, num_classes=3, seed=0, noise=0.0)
    b = datasets.synthetic_parts(num_images=12, image_size=32, num_classes=3, seed=99, noise=0.0)
    for label in range(3):
        colours_a = np.unique(a[0][a[1] == label][a[2][a[1] == label]], axis=0)
        colours_b = np.unique(b[0][b[1] == label][b[2][b[1] == label]], axis=0)
        np.testing.assert_array_equal(colours_a, colours_b)


def test_class_table_distinct_and_colour_distinct():
    table = datasets.class_table(20)
    assert len({tuple(row) for row in table}) == 20
    colour = np.array([c for c, _ in datasets.part_styles()])[table]
    assert len({tuple(row) for row in colour}) == 20
    two = datasets.class_table(5, num_part_regions=2)
    assert two.shape == (5, 2)


def test_fewer_part_regions_give_smaller_masks():
    one = datasets.synthetic_parts(num_images=20, image_size=32, num_part_regions=1, seed=0)
    three = datasets.synthetic_parts(num_images=20, image_size=32, num_part_regions=3, seed=0)
    assert one[2].sum() < three[2].sum()


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"num_images": 0}, "num_images"),
        ({"image_size": 8}, "image_size"),
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 10**6}, "num_classes"),
        ({"num_part_regions": 4}, "num_part_regions"),
        ({"num_distractors": -1}, "num_distractors"),
        ({"noise": 2.0}, "noise"),
        ({"seed": "a"}, "seed"),
    ],
)
def test_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"Invalid value for argument {argument}"):
        datasets.synthetic_parts(**{"num_images": 4, "image_size": 16, **kwargs})


# -------------------------------------------------------------- pipelines
def test_array_dataset_covers_every_item_once_per_epoch_and_reshuffles():
    x = np.arange(10, dtype="float32")[:, None]
    y = np.arange(10)
    data = datasets.ArrayDataset(x, y, batch_size=4, shuffle=True, seed=1)
    assert len(data) == 3

    def epoch_items():
        return np.concatenate([data[i][1] for i in range(len(data))])

    first = epoch_items()
    np.testing.assert_array_equal(np.sort(first), y)
    for i in range(len(data)):  # x and y stay paired
        np.testing.assert_array_equal(data[i][0][:, 0], data[i][1])
    data.on_epoch_end()
    second = epoch_items()
    np.testing.assert_array_equal(np.sort(second), y)
    assert not np.array_equal(first, second)
    data.set_epoch(0)  # resuming at epoch 0 gives epoch 0's order again
    np.testing.assert_array_equal(epoch_items(), first)
    with pytest.raises(IndexError):
        data[3]


def test_array_dataset_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="argument y"):
        datasets.ArrayDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="argument kind"):
        datasets.as_dataset(np.zeros((3, 2)), kind="torch")


def test_tf_dataset_gives_the_same_batches():
    pytest.importorskip("tensorflow", reason="kind='tf' needs TensorFlow")
    x = np.random.default_rng(0).random((7, 4, 4, 3)).astype("float32")
    y = np.arange(7)
    batches = list(datasets.as_dataset(x, y, batch_size=3, kind="tf"))
    assert [int(b[0].shape[0]) for b in batches] == [3, 3, 1]
    np.testing.assert_allclose(np.concatenate([b[0].numpy() for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)


# ------------------------------------------------------------------ tfds
tfds = pytest.importorskip(
    "tensorflow_datasets", reason="the tfds loaders need tensorflow-datasets"
)


@pytest.mark.parametrize(
    "name, split",
    [
        ("caltech_birds2011", "train"),
        ("oxford_iiit_pet", "test"),
        ("stanford_dogs", "train"),
        ("cars196", "test"),
    ],
)
def test_load_tfds_on_mock_data(name, split):
    with tfds.testing.mock_data(num_examples=3):
        data, info = datasets.load_tfds(
            name, split, image_size=24, batch_size=2, with_masks=True, seed=0, with_info=True
        )
        batches = list(data)
    num_classes = info.features["label"].num_classes
    assert num_classes > 1
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    masks = np.concatenate([b[2].numpy() for b in batches])
    assert images.shape == (3, 24, 24, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    assert labels.dtype == np.int64 and np.all((labels >= 0) & (labels < num_classes))
    assert masks.shape == (3, 24, 24) and masks.dtype == bool


def test_load_tfds_without_masks_gives_pairs_for_fit():
    with tfds.testing.mock_data(num_examples=2):
        data = datasets.load_tfds("cars196", "train", image_size=16)
        element = next(iter(data))
    assert len(element) == 2
    assert tuple(element[0].shape) == (16, 16, 3)


def test_load_tfds_augment_false_shuffles_the_centre_crops():
    def images(**kwargs):
        data = datasets.load_tfds("cars196", "train", image_size=16, seed=0, **kwargs)
        stacked = np.stack([image.numpy() for image, _ in data])
        return stacked[np.argsort(stacked.reshape(len(stacked), -1).sum(axis=1))]

    with tfds.testing.mock_data(num_examples=3):
        centre = images(training=False)
        plain = images(training=True, augment=False)
        augmented = images(training=True)  # augment=None: as training
    np.testing.assert_allclose(plain, centre, atol=1e-6)
    assert np.abs(augmented - centre).max() > 0.01
    with pytest.raises(ValueError, match="argument augment"):
        datasets.load_tfds("cars196", image_size=16, augment="yes")


def test_load_tfds_errors():
    with pytest.raises(ValueError, match="Invalid value for argument name"):
        datasets.load_tfds("no_such_dataset_xyz", image_size=16)
    with pytest.raises(ValueError, match="argument mask_source"):
        datasets.load_tfds("cars196", image_size=16, mask_source="trimap")
    with tfds.testing.mock_data(num_examples=1):
        with pytest.raises(ValueError, match="argument with_masks"):
            datasets.load_tfds("cars196", image_size=16, with_masks=True, mask_source="segmentation")


def _stripes(height=40, width=60):
    """An image whose red channel is its own mask (left third + a box)."""
    mask = np.zeros((height, width), bool)
    mask[:, : width // 3] = True
    mask[5:15, 40:55] = True
    image = np.zeros((height, width, 3), "uint8")
    image[..., 0] = mask * 255
    image[..., 1] = np.linspace(0, 255, width)[None].astype("uint8")
    return image, mask


def test_preprocess_centre_crop_matches_numpy():
    import tensorflow as tf

    image, mask = _stripes()
    size = 28
    out, out_mask = datasets.preprocess(
        image, size, training=False, mask=tf.constant(mask[..., None], tf.float32)
    )
    out, out_mask = out.numpy(), out_mask.numpy()
    # Independent computation: the pixel centres of the centre crop of the
    # resized image, mapped back to the original image.
    resized = int(round(size / 0.875))
    offset = (resized - size) // 2
    centres = (np.arange(size) + offset + 0.5) / resized
    rows = np.floor(centres * mask.shape[0]).astype(int)
    cols = np.floor(centres * mask.shape[1]).astype(int)
    expected = mask[rows[:, None], cols[None, :]]
    # Bilinear interpolation may move a boundary by one pixel.
    assert np.mean(out_mask != expected) < 0.06
    assert out.shape == (size, size, 3) and out.dtype == np.float32


def test_preprocess_training_keeps_mask_and_image_aligned():
    """Crop and flip move the mask with the image (jitter off)."""
    import tensorflow as tf

    image, mask = _stripes()
    flipped = 0
    for seed in range(6):
        out, out_mask = datasets.preprocess(
            image,
            24,
            training=True,
            mask=tf.constant(mask[..., None], tf.float32),
            seed=seed,
            color_jitter=0.0,
        )
        out, out_mask = out.numpy(), out_mask.numpy()
        np.testing.assert_array_equal(out_mask, out[..., 0] > 0.5)
        # The green ramp increases left to right unless the image was flipped.
        flipped += out[0, -1, 1] < out[0, 0, 1]
    assert 0 < flipped < 6, "the horizontal flip never or always happened"


# That importing keras_brnpa does not import tensorflow_datasets is checked
# in a fresh process by tests/test_cli.py::test_console_error_in_a_real_process_has_no_native_log_lines.
