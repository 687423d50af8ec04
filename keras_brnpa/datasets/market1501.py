"""Market-1501 (Zheng et al., ICCV 2015) from its standard folder layout."""

import os
import re

import numpy as np

from keras_brnpa._checks import check_bool
from keras_brnpa._checks import invalid

#: The benchmark's folders, by split.
MARKET1501_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
# "0002_c1s1_000451_03.jpg": identity, camera, sequence; "-1_..." junk.
_NAME = re.compile(r"^(-?\d+)_c(\d+)s?\d*_")


def parse_market1501_name(filename):
    """``(identity, camera)`` of a Market-1501 file name.

    Identity ``-1`` is junk (ignored by the evaluation), ``0`` a
    distractor (never a match); cameras are numbered from 1.

    Example:

    >>> import keras_brnpa
    >>> keras_brnpa.datasets.parse_market1501_name("0002_c1s1_000451_03.jpg")
    (2, 1)
    >>> keras_brnpa.datasets.parse_market1501_name("-1_c3s2_010101_01.jpg")
    (-1, 3)
    """
    match = _NAME.match(os.path.basename(str(filename)))
    if match is None:
        raise invalid(
            "filename", filename, "a Market-1501 name such as '0002_c1s1_000451_03.jpg'"
        )
    return int(match.group(1)), int(match.group(2))


def _read_split(folder, image_size, load_images, keep_junk):
    names = sorted(
        n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg", ".png")) and _NAME.match(n)
    )
    parsed = [parse_market1501_name(n) for n in names]
    rows = [i for i, (identity, _) in enumerate(parsed) if keep_junk or identity >= 0]
    names = [names[i] for i in rows]
    split = {
        "paths": np.array([os.path.join(folder, n) for n in names], dtype=object),
        "ids": np.array([parsed[i][0] for i in rows], "int64"),
        "cameras": np.array([parsed[i][1] for i in rows], "int64"),
    }
    if load_images:
        import keras

        images = np.empty((len(names),) + tuple(image_size) + (3,), "uint8")
        for i, path in enumerate(split["paths"]):
            image = keras.utils.load_img(path, target_size=tuple(image_size), interpolation="bilinear")
            images[i] = np.asarray(image, dtype="uint8")[..., :3]
        split["images"] = images
    return split


def market1501(directory, image_size=(256, 128), load_images=True):
    """Read Market-1501 from its standard layout.

    ``directory`` holds ``bounding_box_train`` (training), ``query`` and
    ``bounding_box_test`` (the gallery), as in the benchmark's archive.
    Identity and camera come from the file names
    (``0002_c1s1_000451_03.jpg``: identity 2, camera 1). As the benchmark
    does:

    - training: identities ``0`` and ``-1`` are dropped (there are none in
      the official archive); ``"labels"`` renumbers the identities
      ``0..N-1`` for an identity classifier;
    - gallery: distractors (identity ``0``) are kept, they never match a
      query; junk images (identity ``-1``) are kept with identity ``-1``,
      which ``keras_brnpa.metrics.cmc_map`` ignores;
    - query: as read (3,368 images, one per identity and camera).

    Files that are not ``.jpg``/``.jpeg``/``.png`` images with a Market
    name (``Thumbs.db``, ...) are skipped. Nothing is downloaded.

    Args:
        directory: path to the extracted ``Market-1501-v15.09.15`` folder.
        image_size: ``(height, width)`` the images are resized to (the
            usual re-ID input is 256x128).
        load_images: if ``False``, only paths, identities and cameras are
            returned (to stream the images yourself).

    Returns:
        A dict ``{"train": ..., "query": ..., "gallery": ...}``, each a dict
        with ``"paths"`` (object array of str), ``"ids"``, ``"cameras"``
        (int64 ``(N,)``) and, with ``load_images``, ``"images"`` (uint8
        ``(N, height, width, 3)``); ``"train"`` also has ``"labels"``.

    Example:

    >>> import os, tempfile, numpy as np, keras, keras_brnpa
    >>> root = tempfile.mkdtemp()
    >>> for folder, name in [("bounding_box_train", "0002_c1s1_000451_03.jpg"),
    ...                      ("query", "0007_c2s1_000101_00.jpg"),
    ...                      ("bounding_box_test", "-1_c1s1_000001_01.jpg")]:
    ...     os.makedirs(os.path.join(root, folder), exist_ok=True)
    ...     keras.utils.save_img(os.path.join(root, folder, name), np.zeros((16, 8, 3)))
    >>> data = keras_brnpa.datasets.market1501(root, image_size=(16, 8))
    >>> data["gallery"]["ids"].tolist(), data["query"]["cameras"].tolist()
    ([-1], [2])
    >>> data["train"]["images"].shape
    (1, 16, 8, 3)
    """
    if not isinstance(directory, (str, os.PathLike)) or not os.path.isdir(directory):
        raise invalid("directory", directory, "an existing Market-1501 folder")
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in image_size)
    ):
        raise invalid("image_size", image_size, "a pair (height, width) of integers >= 1")
    load_images = check_bool("load_images", load_images)
    missing = [f for f in MARKET1501_FOLDERS.values() if not os.path.isdir(os.path.join(directory, f))]
    if missing:
        raise invalid(
            "directory",
            os.fspath(directory),
            "a Market-1501 folder with " + ", ".join(MARKET1501_FOLDERS.values())
            + f" (missing: {', '.join(missing)})",
        )
    data = {}
    for split, folder in MARKET1501_FOLDERS.items():
        data[split] = _read_split(
            os.path.join(directory, folder), image_size, load_images, keep_junk=split != "train"
        )
    train = data["train"]
    keep = train["ids"] > 0
    data["train"] = {key: value[keep] for key, value in train.items()}
    _, data["train"]["labels"] = np.unique(data["train"]["ids"], return_inverse=True)
    data["train"]["labels"] = data["train"]["labels"].astype("int64")
    return data
