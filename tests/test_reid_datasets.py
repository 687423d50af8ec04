"""Re-ID data: synthetic people, Market-1501 folders, P x K batches."""

import os

import keras
import numpy as np
import pytest

import keras_brnpa
from keras_brnpa.datasets import IdentityBalancedDataset
from keras_brnpa.datasets import market1501
from keras_brnpa.datasets import synthetic_reid


# ------------------------------------------------------------ synthetic_reid
def test_synthetic_reid_splits_like_market():
    data = synthetic_reid(num_train_identities=6, num_test_identities=5, images_per_identity=8,
                          num_cameras=4, image_size=32, seed=3)
    train, query, gallery = data["train"], data["query"], data["gallery"]
    assert train["images"].shape == (48, 32, 32, 3) and train["images"].dtype == np.float32
    assert 0.0 <= train["images"].min() and train["images"].max() <= 1.0
    assert sorted(set(train["ids"].tolist())) == list(range(1, 7))
    np.testing.assert_array_equal(train["labels"], train["ids"] - 1)
    test_ids = set(query["ids"].tolist())
    assert test_ids == set(gallery["ids"].tolist()) == set(range(7, 12))  # disjoint from train
    # One query per identity and camera; each has a match in another camera.
    pairs = list(zip(query["ids"].tolist(), query["cameras"].tolist()))
    assert len(pairs) == len(set(pairs)) == 5 * 4
    for identity, camera in pairs:
        assert np.any((gallery["ids"] == identity) & (gallery["cameras"] != camera))
    # Every identity is seen by every camera (8 images, 4 cameras).
    for identity in range(1, 7):
        assert len(set(train["cameras"][train["ids"] == identity].tolist())) == 4
    # Part masks: head, torso, legs on every person; labels from REID_PART_NAMES.
    masks = train["masks"]
    assert masks.dtype == np.uint8 and masks.max() < len(keras_brnpa.datasets.REID_PART_NAMES)
    for part in (1, 2, 3):
        assert np.all(np.any(masks == part, axis=(1, 2)))


def test_synthetic_reid_identity_is_in_the_part_colours_and_deterministic():
    a = synthetic_reid(num_train_identities=3, num_test_identities=1, images_per_identity=4,
                       num_cameras=2, image_size=48, seed=0, noise=0.0)
    b = synthetic_reid(num_train_identities=3, num_test_identities=1, images_per_identity=4,
                       num_cameras=2, image_size=48, seed=0, noise=0.0)
    np.testing.assert_array_equal(a["train"]["images"], b["train"]["images"])
    table = keras_brnpa.datasets.synthetic_reid_identities()
    from keras_brnpa.datasets.synthetic_reid import REID_COLOURS

    train = a["train"]
    for i in range(len(train["ids"])):
        torso = train["images"][i][train["masks"][i] == 2].mean(axis=0)
        legs = train["images"][i][train["masks"][i] == 3].mean(axis=0)
        upper, lower = REID_COLOURS[table[train["ids"][i] - 1, 1]], REID_COLOURS[table[train["ids"][i] - 1, 2]]
        # Under the camera's lighting the torso is nearer its own colour
        # than the legs' colour (and vice versa).
        assert np.linalg.norm(torso - upper) < np.linalg.norm(torso - lower)
        assert np.linalg.norm(legs - lower) < np.linalg.norm(legs - upper)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(num_train_identities=1), "num_train_identities"),
        (dict(num_test_identities=0), "num_test_identities"),
        (dict(num_test_identities=10**6), "num_test_identities"),
        (dict(images_per_identity=1), "images_per_identity"),
        (dict(num_cameras=1), "num_cameras"),
        (dict(image_size=16), "image_size"),
        (dict(noise=1.0), "noise"),
    ],
)
def test_synthetic_reid_errors(kwargs, argument):
    with pytest.raises(ValueError, match=f"Invalid value for argument {argument}"):
        synthetic_reid(**kwargs)


# ---------------------------------------------------------------- market1501
def _write_market(root):
    files = {
        "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg",
                               "0007_c3s3_015426_02.jpg", "Thumbs.db"],
        "query": ["0002_c3s1_000551_01.jpg", "0007_c1s1_000101_00.jpg"],
        "bounding_box_test": ["0002_c1s1_000476_01.jpg", "0000_c6s1_000001_02.jpg",
                              "-1_c3s1_000001_01.jpg", "0007_c1s1_000151_05.jpg", "readme.txt"],
    }
    for folder, names in files.items():
        os.makedirs(os.path.join(root, folder))
        for k, name in enumerate(names):
            path = os.path.join(root, folder, name)
            if name.endswith(".jpg"):
                keras.utils.save_img(path, np.full((20, 10, 3), 10 * k, "uint8"), scale=False)
            else:
                open(path, "w").close()


def test_market1501_reads_ids_cameras_distractors_and_junk(tmp_path):
    _write_market(str(tmp_path))
    data = market1501(str(tmp_path), image_size=(16, 8))
    train, query, gallery = data["train"], data["query"], data["gallery"]
    assert train["ids"].tolist() == [2, 2, 7] and train["cameras"].tolist() == [1, 2, 3]
    assert train["labels"].tolist() == [0, 0, 1]
    assert train["images"].shape == (3, 16, 8, 3) and train["images"].dtype == np.uint8
    assert query["ids"].tolist() == [2, 7] and query["cameras"].tolist() == [3, 1]
    # Sorted file names: "-1_..." , "0000_...", "0002_...", "0007_...".
    assert gallery["ids"].tolist() == [-1, 0, 2, 7]
    assert gallery["cameras"].tolist() == [3, 6, 1, 1]
    assert [os.path.basename(p) for p in gallery["paths"]][0] == "-1_c3s1_000001_01.jpg"
    # Evaluated as the benchmark does: the junk image and the same-camera
    # image are ignored, the distractor never matches.
    features = np.eye(4)
    result = keras_brnpa.metrics.cmc_map(
        features[[2, 3]], query["ids"], features, gallery["ids"], query["cameras"], gallery["cameras"],
        ranks=(1,))
    # Query id 2 (camera 3) finds gallery id 2 (camera 1) first; query id 7
    # (camera 1) has only a same-camera match: skipped.
    assert result == {"rank-1": 1.0, "mAP": 1.0}
    paths_only = market1501(str(tmp_path), load_images=False)
    assert "images" not in paths_only["query"] and paths_only["query"]["ids"].tolist() == [2, 7]


def test_market1501_errors(tmp_path):
    with pytest.raises(ValueError, match="Invalid value for argument directory"):
        market1501(str(tmp_path / "missing"))
    os.makedirs(tmp_path / "query")
    with pytest.raises(ValueError, match="missing: bounding_box_train, bounding_box_test"):
        market1501(str(tmp_path))
    with pytest.raises(ValueError, match="Invalid value for argument filename"):
        keras_brnpa.datasets.parse_market1501_name("image.jpg")


# ----------------------------------------------------- IdentityBalancedDataset
def test_identity_balanced_batches():
    ids = np.concatenate([np.full(n, i) for i, n in enumerate([2, 5, 3, 6, 4, 2, 7, 3])])
    images = np.arange(len(ids))[:, None].astype("float32")  # image = its row
    data = IdentityBalancedDataset(images, ids, identities_per_batch=3, images_per_identity=4, seed=1)
    assert len(data) == 8 // 3
    seen = []
    for index in range(len(data)):
        x, y = data[index]
        assert x.shape == (12, 1)
        np.testing.assert_array_equal(ids[x[:, 0].astype(int)], y)  # labels of the images
        groups = y.reshape(3, 4)
        assert np.all(groups == groups[:, :1]) and len(set(groups[:, 0])) == 3
        for group, identity in zip(x[:, 0].astype(int).reshape(3, 4), groups[:, 0]):
            if np.sum(ids == identity) >= 4:
                assert len(set(group.tolist())) == 4  # no repeats when there are enough
        seen.extend(groups[:, 0].tolist())
    assert len(seen) == len(set(seen))  # an epoch visits each identity at most once
    first = data[0][1].copy()
    data.on_epoch_end()
    assert data.epoch == 1
    data.set_epoch(0)
    np.testing.assert_array_equal(data[0][1], first)  # deterministic per epoch
    targets = IdentityBalancedDataset(images, ids, 2, 2, steps_per_epoch=5, targets=("embedding", "logits"))
    x, y = targets[4]
    assert len(targets) == 5 and set(y) == {"embedding", "logits"}
    with pytest.raises(IndexError):
        targets[5]


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(identities_per_batch=1), "identities_per_batch"),
        (dict(identities_per_batch=9), "identities_per_batch"),
        (dict(images_per_identity=1), "images_per_identity"),
        (dict(ids=np.zeros(5, int)), "ids"),
        (dict(targets="embedding"), "targets"),
        (dict(steps_per_epoch=0), "steps_per_epoch"),
    ],
)
def test_identity_balanced_errors(kwargs, argument):
    args = dict(images=np.zeros((16, 2)), ids=np.repeat(np.arange(8), 2), identities_per_batch=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"Invalid value for argument {argument}"):
        IdentityBalancedDataset(**args)
