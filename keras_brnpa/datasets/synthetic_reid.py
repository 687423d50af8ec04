"""Embedded re-identification data: synthetic people seen by several cameras.

Every identity is a combination of coloured parts: hair (the head), upper
clothes (the torso), lower clothes (the legs) and an optional bag. Every
camera has its own look: background colours and texture, lighting (a gain
and a colour cast applied to the whole image, person included), the scale
of the people, where they stand and how they lean (the pose). An identity
is recognised only by its parts' colours, across cameras, as a person in
Market-1501 is recognised by their clothes. The shapes are drawn with the
vectorised helpers of ``synthetic.py``.
"""

import numpy as np

from keras_brnpa.datasets.synthetic import _grating
from keras_brnpa.datasets.synthetic import _part_shape
from keras_brnpa.datasets.synthetic import _stamp
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import invalid

#: Colours of clothes and bags (RGB in [0, 1]).
REID_COLOURS = np.array(
    [
        [0.85, 0.10, 0.10],  # red
        [0.10, 0.30, 0.90],  # blue
        [0.95, 0.85, 0.10],  # yellow
        [0.10, 0.70, 0.20],  # green
        [0.95, 0.95, 0.95],  # white
        [0.08, 0.08, 0.08],  # black
        [0.95, 0.50, 0.05],  # orange
        [0.55, 0.15, 0.70],  # purple
    ],
    dtype="float32",
)
#: Colours of the hair: black, blond, red, grey.
HAIR_COLOURS = np.array(
    [[0.12, 0.08, 0.05], [0.90, 0.80, 0.35], [0.70, 0.25, 0.05], [0.65, 0.65, 0.65]], "float32"
)
#: The part labels of the masks: 0 is the background.
REID_PART_NAMES = ("background", "head", "torso", "legs", "bag")
_IDENTITY_SEED = 20220914
_CAMERA_SEED = 1501
_CHUNK = 128


def synthetic_reid_identities():
    """All identities: ``(hair, upper, lower, bag)`` colour indices, fixed order.

    ``hair`` indexes ``HAIR_COLOURS``, the others ``REID_COLOURS``;
    ``bag = -1`` means no bag. Upper and lower clothes differ. The order is
    a fixed pseudo-random permutation (independent of any data seed), so
    identity ``i`` always looks the same.

    Returns:
        int64 array ``(num_identities, 4)``.

    Example:

    >>> import keras_brnpa
    >>> table = keras_brnpa.datasets.synthetic_reid_identities()
    >>> table.shape, len({tuple(row) for row in table}) == len(table)
    ((1568, 4), True)
    """
    n_c = len(REID_COLOURS)
    rows = [
        (hair, upper, lower, bag)
        for hair in range(len(HAIR_COLOURS))
        for upper in range(n_c)
        for lower in range(n_c)
        for bag in range(-1, n_c - 2)
        if upper != lower
    ]
    table = np.array(rows, "int64")
    return table[np.random.default_rng(_IDENTITY_SEED).permutation(len(table))]


def _camera_styles(num_cameras):
    """Fixed look of each camera (independent of the data seed)."""
    styles = []
    for camera in range(num_cameras):
        rng = np.random.default_rng([_CAMERA_SEED, camera])
        styles.append(
            dict(
                base=rng.uniform(0.2, 0.8, 3),
                gain=rng.uniform(0.7, 1.15),
                cast=rng.uniform(0.85, 1.15, 3),
                scale=rng.uniform(0.62, 0.85),
                x=rng.uniform(0.38, 0.62),
                lean=rng.uniform(-0.25, 0.25),
                texture=rng.uniform(0.5, 1.5),
            )
        )
    return styles


def _rect(ux, uy, half_length, half_width):
    """``inside`` of rectangles along (ux, uy) with per-image half sizes."""
    ux = ux.astype("float32")[:, None, None]
    uy = uy.astype("float32")[:, None, None]
    hl = half_length.astype("float32")[:, None, None]
    hw = half_width.astype("float32")[:, None, None]

    def inside(dx, dy):
        along = dx * ux + dy * uy
        across = dy * ux - dx * uy
        return (np.abs(along) <= hl) & (np.abs(across) <= hw)

    return inside


def _render_people(rng, codes, cameras, size, styles, noise):
    n = len(codes)
    coords = (np.arange(size) + 0.5) / size
    cam = [styles[c] for c in cameras]
    base = np.stack([s["base"] for s in cam])[:, None, None, :] + rng.uniform(-0.05, 0.05, (n, 1, 1, 3))
    texture = _grating(rng, n, size, coords) * np.array([s["texture"] for s in cam])[:, None, None]
    canvas = (base + texture[..., None]).astype("float32")

    # Pose: height, position and lean from the camera, jittered per image.
    h = np.array([s["scale"] for s in cam]) * rng.uniform(0.9, 1.1, n)
    lean = np.array([s["lean"] for s in cam]) + rng.uniform(-0.08, 0.08, n)
    dx_, dy_ = np.sin(lean), np.cos(lean)  # down the body
    cx = np.array([s["x"] for s in cam]) + rng.uniform(-0.06, 0.06, n)
    cy = 0.5 + rng.uniform(-0.04, 0.04, n)
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0)  # the bag's side
    stance = rng.uniform(0.08, 0.12, n)

    def point(t, s=0.0):
        """The point t heights down the body axis, s heights across it."""
        return cx + t * h * dx_ + s * h * dy_, cy + t * h * dy_ - s * h * dx_

    def colour(table, index):
        jitter = rng.uniform(0.9, 1.1, (n, 1)).astype("float32")
        return np.clip(table[index] * jitter, 0, 1)

    masks = np.zeros((n, size, size), "uint8")
    hair, upper, lower, bag = codes.T
    # Legs, torso, head: later parts cover earlier ones at their borders.
    px, py = point(0.27)
    index = _stamp(canvas, px, py, 0.26 * h.max(), _rect(dx_, dy_, 0.23 * h, stance * h),
                   colour(REID_COLOURS, lower))
    masks[index] = 3
    px, py = point(-0.13)
    index = _stamp(canvas, px, py, 0.23 * h.max(), _rect(dx_, dy_, 0.17 * h, 0.14 * h),
                   colour(REID_COLOURS, upper))
    masks[index] = 2
    px, py = point(-0.39)
    radius = 0.1 * h
    index = _stamp(canvas, px, py, radius.max(), _part_shape(radius, np.zeros(n, "int64"), dx_, dy_),
                   colour(HAIR_COLOURS, hair))
    masks[index] = 1
    has_bag = bag >= 0
    if has_bag.any():
        px, py = point(-0.08, 0.2 * side)
        sub = np.flatnonzero(has_bag)
        view = canvas[sub]
        index = _stamp(view, px[sub], py[sub], 0.1 * h.max(),
                       _part_shape(0.075 * h[sub], np.ones(len(sub), "int64"), dx_[sub], dy_[sub]),
                       colour(REID_COLOURS, np.maximum(bag, 0))[sub])
        canvas[sub] = view
        masks[(sub[index[0]],) + index[1:]] = 4

    gain = np.array([s["gain"] for s in cam]) * rng.uniform(0.92, 1.08, n)
    cast = np.stack([s["cast"] for s in cam])
    canvas *= (gain[:, None] * cast)[:, None, None, :].astype("float32")
    if noise:
        canvas += noise * rng.standard_normal(canvas.shape[:3] + (1,), dtype="float32")
    np.clip(canvas, 0.0, 1.0, out=canvas)
    return canvas, masks


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise invalid(name, value, f"an integer >= {low}")
    return int(value)


def _render_split(identities, images_per_identity, num_cameras, size, noise, rng, seed, tag):
    table = synthetic_reid_identities()
    n = len(identities) * images_per_identity
    ids = np.repeat(identities, images_per_identity)
    # Image j of an identity is seen by camera perm[j % num_cameras]: every
    # identity is seen by min(images_per_identity, num_cameras) cameras.
    cameras = np.concatenate(
        [
            rng.permutation(num_cameras)[np.arange(images_per_identity) % num_cameras]
            for _ in identities
        ]
    ).astype("int64")
    styles = _camera_styles(num_cameras)
    images = np.empty((n, size, size, 3), "float32")
    masks = np.empty((n, size, size), "uint8")
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        chunk_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, tag, start // _CHUNK])
        images[start:stop], masks[start:stop] = _render_people(
            chunk_rng, table[ids[start:stop] - 1], cameras[start:stop], size, styles, noise
        )
    return images, ids.astype("int64"), cameras, masks


def synthetic_reid(
    num_train_identities=100,
    num_test_identities=50,
    images_per_identity=8,
    num_cameras=4,
    image_size=64,
    seed=0,
    noise=0.03,
):
    """Generate a synthetic re-identification benchmark, split like Market-1501.

    Identities are combinations of coloured parts (hair, upper and lower
    clothes, optional bag; see ``synthetic_reid_identities``), rendered as
    a standing person on a textured background. Each of ``num_cameras``
    cameras has a fixed look (background, lighting gain and colour cast,
    scale, position and lean of the people), jittered per image. The
    training and test identities are disjoint. As in Market-1501, the
    queries are one image per test identity and camera (for up to
    ``min(num_cameras, images_per_identity // 2)`` cameras), the gallery is
    every other test image, so every query has a match from another
    camera. Identities are numbered from 1 (identity
    ``i`` is row ``i - 1`` of ``synthetic_reid_identities()``; training
    identities first).

    Args:
        num_train_identities: int >= 2.
        num_test_identities: int >= 1.
        images_per_identity: int >= 2, each seen by
            ``min(images_per_identity, num_cameras)`` cameras.
        num_cameras: int >= 2.
        image_size: int >= 32, side of the square images.
        seed: int, seed of everything random (not of the identities' or
            cameras' looks).
        noise: standard deviation of the pixel noise, in ``[0, 0.5]``.

    Returns:
        A dict with keys ``"train"``, ``"query"``, ``"gallery"``, each a
        dict of arrays: ``"images"`` float32 ``(N, S, S, 3)`` in
        ``[0, 1]``, ``"ids"`` int64 ``(N,)``, ``"cameras"`` int64 ``(N,)``,
        ``"masks"`` uint8 ``(N, S, S)`` part labels (0 background, 1 head,
        2 torso, 3 legs, 4 bag: ``REID_PART_NAMES``); ``"train"`` also has
        ``"labels"``, the identities renumbered ``0..num_train_identities-1``
        for an identity classifier.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> data = keras_brnpa.datasets.synthetic_reid(
    ...     num_train_identities=4, num_test_identities=3, images_per_identity=4,
    ...     num_cameras=2, image_size=32)
    >>> {k: v["images"].shape for k, v in data.items()}
    {'train': (16, 32, 32, 3), 'query': (6, 32, 32, 3), 'gallery': (6, 32, 32, 3)}
    >>> sorted(set(data["train"]["ids"].tolist()) & set(data["query"]["ids"].tolist()))
    []
    >>> sorted(np.unique(data["train"]["masks"]).tolist())[:4]
    [0, 1, 2, 3]
    """
    table_size = len(synthetic_reid_identities())
    num_train = _check_int("num_train_identities", num_train_identities, 2)
    num_test = _check_int("num_test_identities", num_test_identities, 1)
    if num_train + num_test > table_size:
        raise invalid(
            "num_test_identities",
            num_test_identities,
            f"at most {table_size - num_train} (there are {table_size} identities in all)",
        )
    per_id = _check_int("images_per_identity", images_per_identity, 2)
    num_cameras = _check_int("num_cameras", num_cameras, 2)
    size = _check_int("image_size", image_size, 32)
    seed = check_seed(seed)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 0.5:
        raise invalid("noise", noise, "a float in [0, 0.5]")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 14])
    train_ids = np.arange(1, num_train + 1)
    test_ids = np.arange(num_train + 1, num_train + num_test + 1)
    images, ids, cameras, masks = _render_split(train_ids, per_id, num_cameras, size, noise, rng, seed, 0)
    train = {"images": images, "ids": ids, "cameras": cameras, "masks": masks, "labels": ids - 1}
    images, ids, cameras, masks = _render_split(test_ids, per_id, num_cameras, size, noise, rng, seed, 1)
    # Image j of an identity is seen by camera perm[j % num_cameras]: the
    # first min(num_cameras, images_per_identity // 2) images are queries
    # (one per camera), the rest is the gallery, where every query has a
    # match in another camera.
    position = np.tile(np.arange(per_id), num_test)
    is_query = position < min(num_cameras, per_id // 2)
    split = {
        name: {"images": images[rows], "ids": ids[rows], "cameras": cameras[rows], "masks": masks[rows]}
        for name, rows in (("query", is_query), ("gallery", ~is_query))
    }
    return {"train": train, **split}
