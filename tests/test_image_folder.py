"""Tests of keras_brnpa.datasets.image_folder on folders the tests write."""

import io
import os
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import keras_brnpa

image_folder = keras_brnpa.datasets.image_folder
SIZE = 8


def _png(path, array, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


def _truncated_jpeg(path):
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype("uint8")
    Image.fromarray(noise).save(buffer, "JPEG")
    with open(path, "wb") as f:
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Class 'a': RGB PNG, JPEG, grayscale, RGBA. Class 'b': 16-bit PNG and bad files."""
    root = str(tmp_path_factory.mktemp("mixed"))
    rgb = np.zeros((SIZE, SIZE, 3), "uint8")
    rgb[...] = (10, 20, 30)
    _png(f"{root}/a/rgb.png", rgb)
    os.makedirs(f"{root}/b")
    Image.fromarray(np.full((SIZE, SIZE, 3), 128, "uint8")).save(f"{root}/a/photo.jpg", quality=95)
    _png(f"{root}/a/gray.png", np.full((SIZE, SIZE), 100, "uint8"))
    rgba = np.zeros((SIZE, SIZE, 4), "uint8")
    rgba[...] = (250, 10, 20, 0)  # fully transparent: the colour must survive
    _png(f"{root}/a/rgba.png", rgba)
    sixteen = np.full((SIZE, SIZE), 65535, "uint16")
    sixteen[SIZE // 2 :] = 32768
    _png(f"{root}/b/sixteen.png", sixteen)
    assert Image.open(f"{root}/b/sixteen.png").mode == "I;16"
    _png(f"{root}/b/dark.png", np.zeros((SIZE, SIZE, 3), "uint8"))
    with open(f"{root}/b/corrupt.jpg", "wb") as f:
        f.write(b"this is not an image")
    open(f"{root}/b/empty.png", "wb").close()
    _truncated_jpeg(f"{root}/b/truncated.jpg")
    with open(f"{root}/b/notes.txt", "w") as f:
        f.write("a note")
    return root


def _load(root, **kwargs):
    with pytest.warns(UserWarning) as record:
        data = image_folder(root, SIZE, shuffle=False, as_numpy=True, **kwargs)
    return data, [str(w.message) for w in record]


def _by_name(data):
    return {os.path.basename(p): i for i, p in enumerate(data.file_paths)}


def test_conversions_class_names_and_labels(mixed):
    data, _ = _load(mixed)
    assert data.class_names == ["a", "b"]
    assert data.x.shape == (6, SIZE, SIZE, 3) and data.x.dtype == np.float32
    assert data.y.dtype == np.int64
    index = _by_name(data)
    assert sorted(index) == ["dark.png", "gray.png", "photo.jpg", "rgb.png", "rgba.png", "sixteen.png"]
    for name, i in index.items():
        assert data.y[i] == (1 if name in ("sixteen.png", "dark.png") else 0), name
    x = data.x
    np.testing.assert_allclose(x[index["rgb.png"]], np.broadcast_to([10, 20, 30], x.shape[1:]) / 255, atol=1e-6)
    # Grayscale replicated to 3 channels.
    np.testing.assert_allclose(x[index["gray.png"]], 100 / 255, atol=1e-6)
    # RGBA: the alpha channel dropped, the colour kept.
    np.testing.assert_allclose(x[index["rgba.png"]], np.broadcast_to([250, 10, 20], x.shape[1:]) / 255, atol=1e-6)
    np.testing.assert_allclose(x[index["photo.jpg"]], 128 / 255, atol=3 / 255)
    # 16-bit: full scale -> 1.0, half scale -> 0.5 (not saturated, not 8-bit).
    sixteen = x[index["sixteen.png"]]
    np.testing.assert_allclose(sixteen[: SIZE // 2], 1.0, atol=1e-6)
    np.testing.assert_allclose(sixteen[SIZE // 2 :], 32768 / 65535, atol=1e-6)
    assert x.min() >= 0 and x.max() <= 1


def test_bad_files_are_skipped_with_one_warning_naming_them(mixed):
    data, messages = _load(mixed)
    assert len(messages) == 1
    message = messages[0]
    for name in ("corrupt.jpg", "empty.png", "truncated.jpg", "notes.txt"):
        assert name in message
        assert all(not p.endswith(name) for p in data.file_paths)
    for name in ("rgb.png", "sixteen.png"):
        assert name not in message


def test_bad_files_can_be_made_an_error(mixed):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="corrupt.jpg"):
            image_folder(mixed, SIZE)


def test_streaming_dataset_equals_the_arrays_and_fits(mixed):
    arrays, _ = _load(mixed)
    with pytest.warns(UserWarning):
        data = image_folder(mixed, SIZE, batch_size=4, shuffle=False)
    assert data.class_names == ["a", "b"] and data.file_paths == arrays.file_paths
    batches = list(data.as_numpy_iterator())
    assert [len(b[1]) for b in batches] == [4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), arrays.x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), arrays.y)
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras_brnpa.BRNPAAttention(n_parts=2),
        keras.layers.Dense(2),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert len(model.fit(data, epochs=1, verbose=0).history["loss"]) == 1
    assert len(model.fit(arrays, epochs=1, verbose=0).history["loss"]) == 1


def test_resize_and_crop_to_aspect_ratio(tmp_path):
    # 16 wide, 8 high: left half black, right half white.
    image = np.zeros((8, 16, 3), "uint8")
    image[:, 8:] = 255
    _png(f"{tmp_path}/only/wide.png", image)
    stretched = image_folder(str(tmp_path), (4, 4), as_numpy=True, interpolation="nearest").x[0]
    np.testing.assert_array_equal(stretched[:, :2], 0)
    np.testing.assert_array_equal(stretched[:, 2:], 1)
    # The centre 8x8 crop is half black, half white too, the outer parts gone.
    cropped = image_folder(str(tmp_path), (4, 8), as_numpy=True, crop_to_aspect_ratio=True).x[0]
    assert cropped.shape == (4, 8, 3)
    np.testing.assert_allclose(cropped[:, 0], 0, atol=1e-6)
    np.testing.assert_allclose(cropped[:, -1], 1, atol=1e-6)
    cropped_square = image_folder(str(tmp_path), 8, as_numpy=True, crop_to_aspect_ratio=True, interpolation="nearest").x[0]
    np.testing.assert_array_equal(cropped_square[:, :4], 0)
    np.testing.assert_array_equal(cropped_square[:, 4:], 1)


# ------------------------------------------------------------- splits
@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("clean"))
    for c, name in enumerate(("x", "y", "z")):
        for i in range(4 + c):  # 4, 5, 6 images: 15 in all
            _png(f"{root}/{name}/{i}.png", np.full((SIZE, SIZE, 3), 20 * i + c, "uint8"))
    return root


def test_validation_split_sizes_disjoint_and_deterministic(clean):
    train = image_folder(clean, SIZE, validation_split=0.2, subset="training", seed=3, as_numpy=True)
    val = image_folder(clean, SIZE, validation_split=0.2, subset="validation", seed=3, as_numpy=True)
    both = image_folder(clean, SIZE, validation_split=0.2, subset="both", seed=3, as_numpy=True)
    assert len(train.file_paths) == 12 and len(val.file_paths) == 3
    assert not set(train.file_paths) & set(val.file_paths)
    assert len(set(train.file_paths) | set(val.file_paths)) == 15
    assert both[0].file_paths == train.file_paths and both[1].file_paths == val.file_paths
    np.testing.assert_array_equal(both[1].x, val.x)
    other = image_folder(clean, SIZE, validation_split=0.2, subset="validation", seed=4, as_numpy=True)
    assert other.file_paths != val.file_paths
    # The labels are those of the folders, in class_names order.
    for data in (train, val):
        for path, label in zip(data.file_paths, data.y):
            assert data.class_names[label] == os.path.basename(os.path.dirname(path))
    # Training data reshuffles by epoch (ArrayDataset), validation never.
    assert train.shuffle and not val.shuffle


def test_class_names_argument_sets_the_label_order(clean):
    data = image_folder(clean, SIZE, class_names=["z", "x"], as_numpy=True)
    assert data.class_names == ["z", "x"]
    assert len(data.y) == 10 and np.bincount(data.y).tolist() == [6, 4]


def test_invalid_arguments(clean, tmp_path):
    with pytest.raises(ValueError, match="argument directory"):
        image_folder(str(tmp_path / "missing"), SIZE)
    with pytest.raises(ValueError, match="argument image_size"):
        image_folder(clean, (8, 0))
    with pytest.raises(ValueError, match="argument subset"):
        image_folder(clean, SIZE, validation_split=0.2)
    with pytest.raises(ValueError, match="argument subset"):
        image_folder(clean, SIZE, subset="training")
    with pytest.raises(ValueError, match="argument validation_split"):
        image_folder(clean, SIZE, validation_split=1.5, subset="training")
    with pytest.raises(ValueError, match="argument interpolation"):
        image_folder(clean, SIZE, interpolation="cubic")
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images found"):
        image_folder(str(empty), SIZE)


def test_without_tensorflow_a_clear_import_error(clean, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(ImportError, match="pip install tensorflow"):
        image_folder(clean, SIZE)


# -------------------------------------------------------------- masks
@pytest.fixture(scope="module")
def with_masks(tmp_path_factory):
    """Each image is white exactly where its mask is set (a random box)."""
    root = tmp_path_factory.mktemp("masked")
    rng = np.random.default_rng(0)
    for c in ("p", "q"):
        for i in range(5):
            mask = np.zeros((16, 16), bool)
            top, left = rng.integers(0, 10, 2)
            mask[top : top + rng.integers(2, 7), left : left + rng.integers(2, 7)] = True
            image = np.repeat(mask[..., None] * 255, 3, -1).astype("uint8")
            extension = "jpg" if i == 0 else "png"
            _png(f"{root}/images/{c}/sub/{i}.{extension}", image)
            _png(f"{root}/masks/{c}/sub/{i}.png", mask.astype("uint8") * 255)
    return str(root / "images"), str(root / "masks")


def test_masks_are_aligned_with_their_images(with_masks):
    images, masks = with_masks
    arrays = image_folder(images, 16, masks=masks, as_numpy=True, seed=1)
    assert arrays.masks.shape == (10, 16, 16) and arrays.masks.dtype == bool
    np.testing.assert_array_equal(arrays.x.mean(-1) > 0.5, arrays.masks)
    # Streamed and shuffled: (image, label, mask) stay together.
    data = image_folder(images, 8, masks=masks, batch_size=3, seed=1)
    count = 0
    for x, y, m in data.as_numpy_iterator():
        assert m.shape[1:] == (8, 8) and m.dtype == bool
        bright = x.mean(-1)
        assert np.all(bright[m] > 0.4) and np.all(bright[~m] < 0.6)
        count += len(y)
    assert count == 10
    assert len(data.map(lambda x, y, m: (x, y)).element_spec) == 2


def test_missing_unreadable_and_misfit_masks(with_masks, tmp_path):
    import shutil

    images, masks = with_masks
    broken = str(tmp_path / "masks")
    shutil.copytree(masks, broken)
    with open(os.path.join(broken, "p", "sub", "1.png"), "wb") as f:
        f.write(b"garbage")
    with pytest.warns(UserWarning, match=r"p/sub/1\.png"):
        data = image_folder(images, 16, masks=broken, as_numpy=True)
    assert len(data.y) == 9 and not any(p.endswith(os.path.join("p", "sub", "1.png")) for p in data.file_paths)
    os.remove(os.path.join(broken, "q", "sub", "2.png"))
    with pytest.raises(ValueError, match=r"no mask .*q/sub/2\.png"):
        image_folder(images, 16, masks=broken)
    _png(os.path.join(broken, "q", "sub", "2.png"), np.zeros((5, 5), "uint8"))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"2\.png is 5x5"):
        image_folder(images, 16, masks=broken)
