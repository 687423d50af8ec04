"""Embedded harder task: small digits in clutter, 10 classes.

Every image shows one small digit (0-9, a 5x7 bitmap glyph drawn with a
random size, slant, rotation and colour, about 15x20 pixels at 64 px) at a
random place on a textured background, among clutter: fragments of other
glyphs (3x3-cell windows of random digits, in the same colours and sizes)
and random strokes. The class is the digit; everything else is drawn
independently of it, and the fragments look locally like digits, so a model
has to find the one whole glyph, a small object (about 3 % of the pixels),
to classify the image. The masks mark the digit's pixels.

Like ``synthetic_parts``, generation is vectorised NumPy, deterministic
given ``seed`` and needs no download; the glyphs do not depend on ``seed``.
"""

import numpy as np

from keras_brnpa._checks import check_seed
from keras_brnpa._checks import invalid
from keras_brnpa.datasets.synthetic import _check_args
from keras_brnpa.datasets.synthetic import _grating
from keras_brnpa.datasets.synthetic import _render_in_chunks
from keras_brnpa.datasets.synthetic import _stamp

_FONT = (
    (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),  # 0
    ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),  # 1
    (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),  # 2
    ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),  # 3
    ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),  # 4
    ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),  # 5
    ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),  # 6
    ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),  # 7
    (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),  # 8
    (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),  # 9
)

#: The 10 digit glyphs of ``synthetic_clutter``: boolean ``(10, 7, 5)``
#: bitmaps (rows top to bottom), class ``k`` is digit ``k``.
DIGIT_GLYPHS = np.array([[[c == "#" for c in row] for row in g] for g in _FONT], dtype=bool)


def _glyph_shape(glyphs, cell, angle, slant, window=None):
    """``inside`` function (see ``synthetic._stamp``) of bitmap glyphs.

    ``glyphs``: ``(n, 7, 5)`` bitmaps; ``cell``: side of a bitmap cell in
    fractions of the image; ``angle``: rotation; ``slant``: shear of the
    rows (italic); ``window``: optional ``(row0, col0, rows, cols)`` arrays,
    the only cells drawn (fragments).
    """
    n = len(glyphs)
    cos = np.cos(angle).astype("float32")[:, None, None]
    sin = np.sin(angle).astype("float32")[:, None, None]
    cell = cell.astype("float32")[:, None, None]
    slant = slant.astype("float32")[:, None, None]
    k = np.arange(n)[:, None, None]

    def inside(dx, dy):
        v = (-dx * sin + dy * cos) / cell  # rows, downwards
        u = (dx * cos + dy * sin) / cell + slant * v  # columns
        col = np.floor(u + 2.5).astype(np.int64)
        row = np.floor(v + 3.5).astype(np.int64)
        ok = (col >= 0) & (col < 5) & (row >= 0) & (row < 7)
        if window is not None:
            r0, c0, nr, nc = (w[:, None, None] for w in window)
            ok &= (row >= r0) & (row < r0 + nr) & (col >= c0) & (col < c0 + nc)
        return ok & glyphs[k, np.clip(row, 0, 6), np.clip(col, 0, 4)]

    return inside


def _colours(rng, n):
    """Saturated random colours, (n, 3) float32."""
    hue = rng.uniform(0, 1, n)
    rgb = np.clip(np.abs((hue[:, None] * 6 + np.array([0.0, 4.0, 2.0])) % 6 - 3) - 1, 0, 1)
    value = rng.uniform(0.55, 1.0, (n, 1))
    grey = rng.uniform(0.0, 0.25, (n, 1))
    return (grey + (value - grey) * rgb).astype("float32")


#: Side of a glyph's bitmap cell, in 64ths of the image side (low, high).
#: (1.7, 2.3) until 2026-12-06: digits of about 10x14 pixels that the tiny
#: ResNet at low resolution did not learn to tell apart within a CPU budget
#: (docs/distillation.md).
_CELL = (2.6, 3.2)


def _render(rng, labels, size, num_distractors, noise):
    n = len(labels)
    coords = (np.arange(size) + 0.5) / size
    # Glyph geometry (fractions of the image side): cell side, rotation,
    # slant; the centre keeps the whole glyph inside the image.
    cell = rng.uniform(*_CELL, n) / 64
    angle = rng.uniform(-0.35, 0.35, n)
    slant = rng.uniform(-0.25, 0.25, n)
    half = 5.0 * cell  # half diagonal of a 7x5 glyph, slanted, plus a margin
    cx = rng.uniform(half + 1 / size, 1 - half - 1 / size)
    cy = rng.uniform(half + 1 / size, 1 - half - 1 / size)

    # Background: a random base colour and two sinusoidal gratings.
    base = rng.uniform(0.15, 0.6, (n, 1, 1, 1)) + rng.uniform(-0.1, 0.1, (n, 1, 1, 3))
    tint = rng.uniform(0.5, 1.0, (n, 1, 1, 3))
    canvas = base.astype("float32") + _grating(rng, n, size, coords)[..., None] * tint.astype(
        "float32"
    )

    # Clutter, drawn before the digit: glyph fragments (a window of 2-3 x
    # 2-3 cells of a random digit) and strokes, every other one of each.
    for i in range(num_distractors):
        d_cell = rng.uniform(*_CELL, n) / 64
        d_angle = rng.uniform(-0.35, 0.35, n)
        colour = _colours(rng, n)
        x, y = rng.uniform(0.03, 0.97, n), rng.uniform(0.03, 0.97, n)
        if i % 2 == 0:
            rows, cols = rng.integers(2, 4, n), rng.integers(2, 4, n)
            window = (rng.integers(0, 8 - rows), rng.integers(0, 6 - cols), rows, cols)
            inside = _glyph_shape(DIGIT_GLYPHS[rng.integers(0, 10, n)], d_cell, d_angle,
                                  rng.uniform(-0.25, 0.25, n), window)
        else:  # a stroke: a thin bar of 3-6 cells
            length = rng.uniform(1.5, 3.0, n).astype("float32")[:, None, None]
            c32 = d_cell.astype("float32")[:, None, None]
            cos = np.cos(d_angle * 4).astype("float32")[:, None, None]
            sin = np.sin(d_angle * 4).astype("float32")[:, None, None]

            def inside(dx, dy, length=length, c32=c32, cos=cos, sin=sin):
                along = (dx * cos + dy * sin) / c32
                across = (dy * cos - dx * sin) / c32
                return (np.abs(along) <= length) & (np.abs(across) <= 0.5)

        _stamp(canvas, x, y, 5.0 * d_cell.max(), inside, colour)

    # The digit.
    index = _stamp(
        canvas, cx, cy, half.max(), _glyph_shape(DIGIT_GLYPHS[labels], cell, angle, slant),
        _colours(rng, n),
    )
    masks = np.zeros(canvas.shape[:3], bool)
    masks[index] = True
    if noise:
        canvas += noise * rng.standard_normal(canvas.shape[:3] + (1,), dtype="float32")
    np.clip(canvas, 0.0, 1.0, out=canvas)
    return canvas, masks


def synthetic_clutter(num_images=1000, image_size=64, num_classes=10, seed=0,
                      num_distractors=8, noise=0.03):
    """Generate the harder embedded task: small digits in clutter.

    One small digit per image (a 5x7 bitmap glyph of ``DIGIT_GLYPHS`` with
    a random size, about 15x20 pixels at 64 px and scaled with
    ``image_size``, rotation within +-20 degrees, slant and saturated
    colour) at a random position, over a textured background (two random
    sinusoidal gratings) among ``num_distractors`` pieces of clutter in the
    same colours and sizes: fragments of random digits (2-3 x 2-3 cells of
    a glyph) and strokes. The label is the digit. Harder than
    ``synthetic_parts``: the object is small (about 3 % of the pixels), has
    no body that shows where it is, and the fragments look locally like it.
    The boolean masks mark the digit's pixels (those the digit was painted
    on; clutter never covers it): the ground truth of the pointing game
    and of the energy in the mask.

    Deterministic: the same arguments give the same arrays; the glyphs do
    not depend on ``seed``, so two seeds give a training and a test set of
    the same classes. Labels are balanced (each class ``num_images //
    num_classes`` times or once more), in random order.

    Args:
        num_images: int >= 1.
        image_size: int >= 32, side of the square images in pixels.
        num_classes: int in [2, 10]: the digits ``0 .. num_classes - 1``.
        seed: int, seed of everything random.
        num_distractors: int >= 0, pieces of clutter per image.
        noise: standard deviation of the Gaussian pixel noise, in [0, 0.5].

    Returns:
        Tuple ``(images, labels, masks)``: float32 images in ``[0, 1]``
        ``(num_images, image_size, image_size, 3)``, int64 labels
        ``(num_images,)``, boolean masks ``(num_images, image_size,
        image_size)``.

    Example:

    >>> import keras_brnpa
    >>> images, labels, masks = keras_brnpa.datasets.synthetic_clutter(
    ...     num_images=20, image_size=64, seed=1)
    >>> images.shape, labels.shape, masks.shape
    ((20, 64, 64, 3), (20,), (20, 64, 64))
    >>> sorted(set(labels.tolist())) == list(range(10)), bool(masks.any(axis=(1, 2)).all())
    (True, True)
    """
    num_images, size, num_distractors, noise = _check_args(
        num_images, image_size, num_distractors, noise, min_size=32
    )
    if (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
            or not 2 <= num_classes <= 10):
        raise invalid("num_classes", num_classes, "an integer in [2, 10]")
    seed = check_seed(seed)
    return _render_in_chunks(
        np.random.default_rng([int(seed) & 0xFFFFFFFF, 23]), seed, 23, num_images, num_classes,
        size, lambda chunk_rng, labels: _render(chunk_rng, labels, size, num_distractors, noise),
    )
