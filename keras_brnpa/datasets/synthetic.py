"""Embedded default data: synthetic fine-grained "parts" images.

Every image shows one object (a rotated ellipse, the "body") carrying small
part regions (a "head" at the front, a "wing" on the side, a "tail" at the
back), at a random position, scale and orientation, among distractor shapes
on a textured background. The class of an image is set ONLY by the colours
and shapes of its part regions: the body colour, the position, the scale,
the orientation, the distractors and the background are drawn independently
of the class. The distractors use the same colours and shapes as the parts,
so counting colours over the whole image is not enough: a model has to find
the parts on the body.

Everything is vectorised NumPy and deterministic given ``seed``. The class
definitions (which part looks how in each class) do not depend on ``seed``,
so two calls with different seeds give a training and a test set of the
same classes.
"""

import numpy as np

from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import invalid

#: Colours of the part regions (RGB in [0, 1]).
PART_COLOURS = np.array(
    [
        [0.90, 0.10, 0.10],  # red
        [0.10, 0.35, 0.95],  # blue
        [0.95, 0.85, 0.10],  # yellow
        [0.10, 0.80, 0.20],  # green
    ],
    dtype="float32",
)
#: Shapes of the part regions.
PART_SHAPES = ("disk", "square")
#: Names of the part regions, in the order of the columns of ``class_table``.
PART_NAMES = ("head", "wing", "tail")
# Fixed seed of the class table: the classes never depend on `seed`.
_CLASS_TABLE_SEED = 20220201
# Images rendered at once (bounds the memory of the vectorised renderer).
_CHUNK = 128


def part_styles():
    """The styles a part region can take: ``(colour index, shape index)``.

    Returns:
        A list of ``len(PART_COLOURS) * len(PART_SHAPES)`` pairs, indices
        into ``PART_COLOURS`` and ``PART_SHAPES``.

    Example:

    >>> import keras_brnpa
    >>> keras_brnpa.datasets.part_styles()[:2]
    [(0, 0), (1, 0)]
    """
    return [(c, s) for s in range(len(PART_SHAPES)) for c in range(len(PART_COLOURS))]


def _check_part_regions(num_part_regions):
    if (
        isinstance(num_part_regions, bool)
        or not isinstance(num_part_regions, (int, np.integer))
        or num_part_regions not in (1, 2, 3)
    ):
        raise invalid("num_part_regions", num_part_regions, "1, 2 or 3")
    return int(num_part_regions)


def class_table(num_classes, num_part_regions=3):
    """The class definitions: the style of each part region, per class.

    Classes are distinct combinations of part styles (see ``part_styles``),
    taken in a fixed pseudo-random order that does not depend on any data
    seed. Classes first differ from each other by the colour of at least one
    part region; only when more classes are asked for than there are colour
    combinations do some classes differ by a part's shape alone.

    Args:
        num_classes: int >= 2.
        num_part_regions: 1, 2 or 3 (head; head and tail; head, wing, tail).

    Returns:
        Integer array ``(num_classes, num_part_regions)`` of indices into
        ``part_styles()``.

    Example:

    >>> import keras_brnpa
    >>> table = keras_brnpa.datasets.class_table(4)
    >>> table.shape, len({tuple(row) for row in table})
    ((4, 3), 4)
    """
    num_classes = check_positive_int("num_classes", num_classes)
    num_part_regions = _check_part_regions(num_part_regions)
    styles = part_styles()
    n_styles = len(styles)
    total = n_styles**num_part_regions
    if num_classes < 2 or num_classes > total:
        raise invalid(
            "num_classes",
            num_classes,
            f"an integer in [2, {total}] with num_part_regions={num_part_regions}",
        )
    order = np.random.default_rng(_CLASS_TABLE_SEED).permutation(total)
    codes = np.stack([(order // n_styles**k) % n_styles for k in range(num_part_regions)], 1)
    colour_of = np.array([c for c, _ in styles])
    chosen, colour_sets = [], set()
    for i, code in enumerate(codes):  # distinct colour combinations first
        key = tuple(colour_of[code])
        if key not in colour_sets:
            colour_sets.add(key)
            chosen.append(i)
        if len(chosen) == num_classes:
            break
    for i in range(total):  # then any distinct code
        if len(chosen) == num_classes:
            break
        if i not in chosen:
            chosen.append(i)
    return codes[np.array(sorted(chosen))].astype("int64")


COLOUR_NAMES = ("red", "blue", "yellow", "green")


def class_names(num_classes, num_part_regions=3):
    """Human-readable names of the classes of ``synthetic_parts``.

    Args:
        num_classes: int >= 2.
        num_part_regions: 1, 2 or 3.

    Returns:
        A list of strings such as ``"head red disk, wing blue square, tail
        green disk"``.

    Example:

    >>> import keras_brnpa
    >>> len(keras_brnpa.datasets.class_names(3))
    3
    """
    table = class_table(num_classes, num_part_regions)
    styles = part_styles()
    names = [("head",), ("head", "tail"), ("head", "wing", "tail")][num_part_regions - 1]
    return [
        ", ".join(
            f"{part} {COLOUR_NAMES[styles[s][0]]} {PART_SHAPES[styles[s][1]]}"
            for part, s in zip(names, row)
        )
        for row in table
    ]


def _check_args(num_images, image_size, num_distractors, noise, min_size=16):
    """The arguments every synthetic generator shares, checked and converted.

    Returns ``(num_images, image_size, num_distractors, noise)`` as
    ``(int, int, int, float)``; ``image_size`` may be a square ``(s, s)``.
    """
    num_images = check_positive_int("num_images", num_images)
    if isinstance(image_size, (tuple, list)):
        if len(image_size) != 2 or image_size[0] != image_size[1]:
            raise invalid("image_size", image_size, f"an integer >= {min_size} (square images)")
        image_size = image_size[0]
    if (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
            or image_size < min_size):
        raise invalid("image_size", image_size, f"an integer >= {min_size}")
    if (
        isinstance(num_distractors, bool)
        or not isinstance(num_distractors, (int, np.integer))
        or num_distractors < 0
    ):
        raise invalid("num_distractors", num_distractors, "an integer >= 0")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 0.5:
        raise invalid("noise", noise, "a float in [0, 0.5]")
    return num_images, int(image_size), int(num_distractors), float(noise)


def synthetic_parts(
    num_images=1000,
    image_size=64,
    num_classes=5,
    seed=0,
    num_part_regions=3,
    num_distractors=4,
    noise=0.03,
):
    """Generate the embedded fine-grained "parts" data set.

    One object per image (a rotated ellipse "body" of a random colour) with
    ``num_part_regions`` small part regions (head, tail, wing) whose colours
    and shapes define the class (see ``class_table``); random position,
    scale and orientation; ``num_distractors`` part-like shapes of the same
    colours and shapes scattered around; a textured background (two random
    sinusoidal gratings) and pixel noise. The boolean masks mark the pixels
    of the part regions: the ground truth of the pointing game and of the
    energy-in-mask metric.

    Generation is vectorised (thousands of 64 px images per second) and
    deterministic: the same arguments give the same arrays. Labels are
    balanced (each class appears ``num_images // num_classes`` or one more
    times), in random order.

    Args:
        num_images: int >= 1.
        image_size: int >= 16, side of the square images in pixels.
        num_classes: int >= 2, number of classes.
        seed: int, seed of everything random (not of the class definitions).
        num_part_regions: 1, 2 or 3 discriminative part regions per object.
        num_distractors: int >= 0, part-like distractor shapes per image.
        noise: standard deviation of the Gaussian pixel noise, in [0, 0.5].

    Returns:
        Tuple ``(images, labels, masks)``: float32 images in ``[0, 1]`` of
        shape ``(num_images, image_size, image_size, 3)``, int64 labels
        ``(num_images,)``, boolean part masks
        ``(num_images, image_size, image_size)``.

    Example:

    >>> import keras_brnpa
    >>> images, labels, masks = keras_brnpa.datasets.synthetic_parts(
    ...     num_images=8, image_size=32, num_classes=4, seed=1)
    >>> images.shape, images.dtype, labels.shape, masks.shape
    ((8, 32, 32, 3), dtype('float32'), (8,), (8, 32, 32))
    >>> bool(masks.any(axis=(1, 2)).all()), sorted(set(labels.tolist()))
    (True, [0, 1, 2, 3])
    """
    num_images, size, num_distractors, noise = _check_args(
        num_images, image_size, num_distractors, noise
    )
    table = class_table(num_classes, num_part_regions)
    seed = check_seed(seed)
    return _render_in_chunks(
        np.random.default_rng(seed), seed, 7, num_images, num_classes, size,
        lambda chunk_rng, labels: _render(chunk_rng, table[labels], size, num_distractors, noise),
    )


def _render_in_chunks(rng, seed, salt, num_images, num_classes, size, render):
    """``(images, labels, masks)``: balanced labels shuffled with ``rng``, then
    ``render(chunk_rng, labels) -> (images, masks)`` on ``_CHUNK`` images at a
    time, each chunk with its own generator seeded by ``(seed, chunk, salt)``
    (so an image does not depend on how many images are made)."""
    labels = rng.permutation(np.arange(num_images) % num_classes).astype("int64")
    images = np.empty((num_images, size, size, 3), "float32")
    masks = np.empty((num_images, size, size), bool)
    for start in range(0, num_images, _CHUNK):
        stop = min(start + _CHUNK, num_images)
        chunk_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, start // _CHUNK, salt])
        images[start:stop], masks[start:stop] = render(chunk_rng, labels[start:stop])
    return images, labels, masks


def _stamp(canvas, cx, cy, half, inside, colour):
    """Paint one shape on every image of ``canvas`` ``(n, S, S, 3)``.

    The shape of image ``k`` is centred on ``(cx[k], cy[k])`` (fractions of
    the image side) and fits in a square of half side ``half`` (a
    fraction); ``inside(dx, dy)`` gets the offsets ``(n, 1, P)`` and
    ``(n, P, 1)`` of the pixel centres of a ``P x P`` patch from the shape
    centre and returns the boolean shape ``(n, P, P)``. Only the patch is
    computed and only the pixels of the shape are written, which is what
    makes rendering fast. Returns the indices of the painted pixels.
    """
    size = canvas.shape[1]
    p = int(np.ceil(2 * half * size)) + 3
    cols = np.floor(cx * size).astype(np.int64)[:, None] - p // 2 + np.arange(p)[None]
    rows = np.floor(cy * size).astype(np.int64)[:, None] - p // 2 + np.arange(p)[None]
    dx = ((cols + 0.5) / size - cx[:, None]).astype("float32")[:, None, :]
    dy = ((rows + 0.5) / size - cy[:, None]).astype("float32")[:, :, None]
    shape = inside(dx, dy)
    shape &= ((rows >= 0) & (rows < size))[:, :, None]
    shape &= ((cols >= 0) & (cols < size))[:, None, :]
    k, i, j = np.nonzero(shape)
    index = (k, rows[k, i], cols[k, j])
    canvas[index] = colour[k]
    return index


def _part_shape(radius, kind, ux, uy):
    """``inside`` function of disks (kind 0) or squares along (ux, uy)."""
    r = radius.astype("float32")[:, None, None]
    ux = ux.astype("float32")[:, None, None]
    uy = uy.astype("float32")[:, None, None]
    square = (kind == 1)[:, None, None]

    def inside(dx, dy):
        along = dx * ux + dy * uy
        across = dy * ux - dx * uy
        disk = along * along + across * across <= r * r
        box = np.maximum(np.abs(along), np.abs(across)) <= 0.85 * r
        return np.where(square, box, disk)

    return inside


def _grating(rng, n, size, coords):
    """Sum of two sinusoidal gratings, (n, S, S), by separable products."""
    texture = np.zeros((n, size, size), "float32")
    for _ in range(2):
        theta = rng.uniform(0, np.pi, (n, 1))
        freq = 2 * np.pi * rng.uniform(3, 12, (n, 1))
        phase = rng.uniform(0, 2 * np.pi, (n, 1))
        amp = rng.uniform(0.04, 0.12, (n, 1, 1)).astype("float32")
        ax = (freq * np.cos(theta) * coords[None]).astype("float32")  # (n, S)
        ay = (freq * np.sin(theta) * coords[None] + phase).astype("float32")
        # sin(ax + ay) = sin(ax) cos(ay) + cos(ax) sin(ay), rows are y.
        texture += amp * (
            np.cos(ay)[:, :, None] * np.sin(ax)[:, None, :]
            + np.sin(ay)[:, :, None] * np.cos(ax)[:, None, :]
        )
    return texture


def _render(rng, codes, size, num_distractors, noise):
    n, n_regions = codes.shape
    styles = np.array(part_styles())
    coords = (np.arange(size) + 0.5) / size

    # Object geometry (fractions of the image side): semi-axes a (length)
    # and b (width), angle, part radius, centre (the parts stay inside).
    a = rng.uniform(0.17, 0.27, n)
    b = a * rng.uniform(0.45, 0.6, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    ux, uy = np.cos(angle), np.sin(angle)
    part_r = a * rng.uniform(0.3, 0.38, n)
    extent = 0.95 * a + part_r + 1.5 / size
    cx = rng.uniform(extent, 1 - extent)
    cy = rng.uniform(extent, 1 - extent)

    # Background: a random base colour, two sinusoidal gratings.
    base = rng.uniform(0.25, 0.75, (n, 1, 1, 1)) + rng.uniform(-0.08, 0.08, (n, 1, 1, 3))
    tint = rng.uniform(0.5, 1.0, (n, 1, 1, 3))
    texture = _grating(rng, n, size, coords)
    canvas = base.astype("float32") + texture[..., None] * tint.astype("float32")

    # Distractors: part-like shapes in the part colours, drawn before the
    # object (which covers those that fall under it).
    for _ in range(num_distractors):
        style = styles[rng.integers(0, len(styles), n)]
        radius = part_r * rng.uniform(0.8, 1.3, n)
        t = rng.uniform(0, np.pi, n)
        _stamp(
            canvas,
            rng.uniform(0.05, 0.95, n),
            rng.uniform(0.05, 0.95, n),
            radius.max(),
            _part_shape(radius, style[:, 1], np.cos(t), np.sin(t)),
            PART_COLOURS[style[:, 0]],
        )

    # The body: an ellipse of a dull random colour.
    body_colour = (rng.uniform(0.3, 0.6, (n, 1)) + rng.uniform(-0.1, 0.1, (n, 3))).astype("float32")
    a32, b32 = a.astype("float32")[:, None, None], b.astype("float32")[:, None, None]
    ux32, uy32 = ux.astype("float32")[:, None, None], uy.astype("float32")[:, None, None]

    def body(dx, dy):
        along = (dx * ux32 + dy * uy32) / a32
        across = (dy * ux32 - dx * uy32) / b32
        return along * along + across * across <= 1.0

    _stamp(canvas, cx, cy, a.max(), body, body_colour)

    # The part regions: head (front), wing (side), tail (back).
    offsets = {"head": (0.95, 0.0), "wing": (0.05, 0.55), "tail": (-0.95, 0.0)}
    names = [("head",), ("head", "tail"), ("head", "wing", "tail")][n_regions - 1]
    masks = np.zeros(canvas.shape[:3], bool)
    for column, name in enumerate(names):
        oa, ob = offsets[name]
        px = cx + oa * a * ux - ob * b * uy
        py = cy + oa * a * uy + ob * b * ux
        style = styles[codes[:, column]]
        index = _stamp(
            canvas,
            px,
            py,
            part_r.max(),
            _part_shape(part_r, style[:, 1], ux, uy),
            PART_COLOURS[style[:, 0]],
        )
        masks[index] = True

    if noise:  # luminance noise, the same on the three channels
        canvas += noise * rng.standard_normal(canvas.shape[:3] + (1,), dtype="float32")
    np.clip(canvas, 0.0, 1.0, out=canvas)
    return canvas, masks


if __name__ == "__main__":  # pragma: no cover - a printed speed note
    import time

    for size in (64, 96):
        synthetic_parts(num_images=64, image_size=size)
        wall, cpu = time.perf_counter(), time.process_time()
        synthetic_parts(num_images=2000, image_size=size, seed=1)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{size} px: {2000 / wall:,.0f} images/s wall clock, "
            f"{2000 / cpu:,.0f} images/s of CPU time"
        )
