"""How the curve metrics perturb images: the cell grid, the order, the baselines.

The deletion and insertion curves (``keras_brnpa.metrics.faithfulness``)
and the deletion/insertion correlations score a map on a grid of cells
that tile the image (``saliency_grid``, ``fit_saliency``), remove or
restore the cells in the order of ``saliency_ranks``, ``step_counts``
cells after each step, and fill the removed pixels with a baseline
(``fill``; insertion starts from ``box_blur`` by default).
"""

import numbers

import numpy as np

from keras_brnpa._checks import check_images
from keras_brnpa._checks import check_optional_positive_int
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_saliency
from keras_brnpa._checks import describe
from keras_brnpa._checks import invalid
from keras_brnpa._checks import to_numpy
from keras_brnpa._image import resize_matrix

#: The authors blur 448 px images with a 121 px box filter.
REFERENCE_BLUR = (121, 448)


#: Default largest number of cells of the deletion/insertion grid: 56x56,
#: the paper's high-resolution maps at 448 px, one cell per step.
MAX_CELLS = 56 * 56


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def saliency_grid(map_size, image_size, max_cells=MAX_CELLS):
    """The grid of cells on which a map is scored by deletion and insertion.

    Per axis, the smallest divisor of the image side that is at least the
    map side (the image side itself for a map larger than the image), so
    that a map that tiles the image keeps its cells and any other is made
    slightly finer, never coarser. Then, while the grid has more than
    ``max_cells`` cells, the axis with more cells (both on a tie) goes down
    to its next smaller divisor. The number of forward passes per image is at most the
    number of cells plus one.

    Args:
        map_size: ``(h, w)`` of the saliency map.
        image_size: ``(H, W)`` of the images.
        max_cells: ``None`` (no limit) or an int >= 1.

    Returns:
        ``(gh, gw)``, divisors of ``H`` and ``W``.

    Example:

    >>> import keras_brnpa
    >>> keras_brnpa.metrics.saliency_grid((15, 15), (64, 64))
    (16, 16)
    >>> keras_brnpa.metrics.saliency_grid((64, 64), (64, 64))
    (32, 32)
    >>> keras_brnpa.metrics.saliency_grid((56, 56), (448, 448))
    (56, 56)
    >>> keras_brnpa.metrics.saliency_grid((7, 7), (224, 224))
    (7, 7)
    """
    max_cells = check_optional_positive_int("max_cells", max_cells)
    grid = []
    options = []
    for n, size in zip(map_size, image_size):
        divisors = _divisors(int(size))
        grid.append(next((d for d in divisors if d >= n), divisors[-1]))
        options.append(divisors)
    if max_cells is not None:
        while grid[0] * grid[1] > max_cells and (grid[0] > 1 or grid[1] > 1):
            # The axis with more cells shrinks; on a tie both do.
            axes = [0, 1] if grid[0] == grid[1] else [0 if grid[0] > grid[1] else 1]
            for axis in axes:
                if grid[axis] > 1:
                    grid[axis] = max(d for d in options[axis] if d < grid[axis])
    return int(grid[0]), int(grid[1])


def _resample_matrix(out_size, in_size):
    """Block means when ``out`` divides ``in``, else bilinear weights."""
    if out_size == in_size:
        return np.eye(in_size)
    if in_size % out_size == 0:
        factor = in_size // out_size
        return np.kron(np.eye(out_size), np.full((1, factor), 1.0 / factor))
    return resize_matrix(out_size, in_size)


def fit_saliency(saliency, image_size, max_cells=MAX_CELLS):
    """Bring ``(B, h, w)`` maps to ``saliency_grid`` (cells that tile the image).

    Each axis is resampled by block means when the grid size divides the
    map size (so a 64x64 map on a 32x32 grid is 2x2 average pooling) and
    bilinearly otherwise (half-pixel centres). A map already on the grid
    is returned unchanged. ``deletion_auc`` and ``insertion_auc`` (and
    their ``*_loop`` references) apply this first.

    Args:
        saliency: ``(B, h, w)`` maps.
        image_size: ``(H, W)`` of the images.
        max_cells: as for ``saliency_grid``.

    Returns:
        float64 NumPy array ``(B, gh, gw)``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> maps = np.arange(16.0).reshape(1, 4, 4)
    >>> keras_brnpa.metrics.fit_saliency(maps, (8, 8), max_cells=4)[0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    saliency = check_saliency(saliency)
    h, w = saliency.shape[1:]
    gh, gw = saliency_grid((h, w), image_size, max_cells)
    if (gh, gw) == (h, w):
        return saliency
    rows = _resample_matrix(gh, h)
    cols = _resample_matrix(gw, w)
    return np.einsum("Hh,bhw,Ww->bHW", rows, saliency, cols)


def fill(baseline, images, name="baseline"):
    """The replacement pixels as an array broadcast to ``images.shape``.

    ``baseline`` is a number, ``"mean"`` (each image's own mean colour,
    per channel: never the batch's, so that an image's score does not
    depend on the other images of the call), an array broadcastable to
    ``(H, W, C)`` (a data set's mean colour: shape ``(C,)``) or to
    ``(B, H, W, C)``, or a callable ``f(images) -> (B, H, W, C)`` (applied
    to the whole batch: it should treat each image on its own).
    """
    expected = (
        "a number, 'mean', an array broadcastable to (H, W, C) or (B, H, W, C), or a "
        "callable images -> array of the images' shape"
    )
    if isinstance(baseline, (bool, np.bool_)):
        raise invalid(name, baseline, expected)
    if isinstance(baseline, str):
        if baseline != "mean":
            raise invalid(name, baseline, expected)
        array = images.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
    elif callable(baseline) and not isinstance(baseline, np.ndarray):
        try:
            value = baseline(images.copy())
        except Exception as error:
            raise invalid(name, baseline, f"{expected} (calling it failed: {error})") from error
        array = to_numpy(name, value)
        if array.shape != images.shape:
            raise invalid(
                name,
                baseline,
                f"a callable returning an array of the images' shape {images.shape}, "
                f"not {array.shape}",
            )
    elif isinstance(baseline, numbers.Real):
        array = np.asarray(float(baseline))
    else:
        array = to_numpy(name, baseline)
    if not np.issubdtype(array.dtype, np.number):
        raise invalid(name, describe(array), expected)
    if not np.all(np.isfinite(array)):
        raise invalid(name, baseline if array.ndim == 0 else describe(array), "finite values")
    try:
        return np.broadcast_to(array.astype(images.dtype), images.shape)
    except ValueError as error:
        raise invalid(name, describe(array), expected + f"; images {images.shape}") from error


def insertion_start(baseline, blur_kernel_size, images):
    if baseline is None:
        if blur_kernel_size is None:
            blur_kernel_size = default_blur_kernel_size(*images.shape[1:3])
        return box_blur(images, _check_kernel_size(blur_kernel_size))
    if blur_kernel_size is not None:
        raise invalid(
            "blur_kernel_size",
            blur_kernel_size,
            "None when a baseline is given (the blur is the default baseline)",
        )
    return fill(baseline, images)


def default_blur_kernel_size(height, width):
    """Box-blur size of the insertion metric for an image size.

    Scales the authors' 121 px kernel at 448 px to the image's shorter
    side and rounds it to the nearest odd integer (at least 1).

    Args:
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        An odd int >= 1.

    Example:

    >>> import keras_brnpa
    >>> keras_brnpa.metrics.default_blur_kernel_size(448, 448)
    121
    >>> keras_brnpa.metrics.default_blur_kernel_size(64, 96)
    17
    """
    height = check_positive_int("height", height)
    width = check_positive_int("width", width)
    size = REFERENCE_BLUR[0] * min(height, width) / REFERENCE_BLUR[1]
    return max(1, 2 * int(np.floor((size - 1) / 2 + 0.5)) + 1)


def _check_kernel_size(kernel_size, name="blur_kernel_size"):
    if (
        isinstance(kernel_size, (bool, np.bool_))
        or not isinstance(kernel_size, numbers.Integral)
        or kernel_size < 1
        or kernel_size % 2 == 0
    ):
        raise invalid(name, kernel_size, "an odd integer >= 1")
    return int(kernel_size)


def box_blur(images, kernel_size):
    """Blur images with a ``k x k`` box filter, zero padding, same size.

    Each output pixel is the sum of the ``k x k`` input pixels centred on
    it, pixels outside the image counting as zero, divided by ``k**2``
    (so borders get darker, as in the paper's insertion metric). Computed
    exactly with summed-area tables in float64, returned in the images'
    dtype.

    Args:
        images: ``(B, H, W, C)`` array.
        kernel_size: odd int >= 1.

    Returns:
        NumPy array of the same shape as ``images``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> image = np.zeros((1, 3, 3, 1), "float32")
    >>> image[0, 1, 1, 0] = 9.0
    >>> keras_brnpa.metrics.box_blur(image, 3)[0, :, :, 0]
    array([[1., 1., 1.],
           [1., 1., 1.],
           [1., 1., 1.]], dtype=float32)
    """
    images = check_images(images, dtype=None)
    k = _check_kernel_size(kernel_size, "kernel_size")
    _, height, width, _ = images.shape
    r = k // 2
    # One extra zero row/column in front makes the summed-area table start
    # at 0, so that every box sum is four look-ups.
    padded = np.pad(images.astype(np.float64), ((0, 0), (r + 1, r), (r + 1, r), (0, 0)))
    table = padded.cumsum(axis=1).cumsum(axis=2)
    sums = (
        table[:, k:, k:]
        - table[:, :height, k:]
        - table[:, k:, :width]
        + table[:, :height, :width]
    )
    return (sums / (k * k)).astype(images.dtype)


def step_counts(cells, steps):
    """Number of cells removed (or restored) at each step ``t = 0..steps``.

    ``round(t * cells / steps)`` with Python's rounding (half to even).

    Args:
        cells: int >= 1, number of cells of the saliency map (``h * w``).
        steps: int >= 1, number of steps.

    Returns:
        NumPy int64 array of shape ``(steps + 1,)``, from 0 to ``cells``.

    Example:

    >>> import keras_brnpa
    >>> keras_brnpa.metrics.step_counts(4, 8).tolist()
    [0, 0, 1, 2, 2, 2, 3, 4, 4]
    """
    cells = check_positive_int("cells", cells)
    steps = check_positive_int("steps", steps)
    # t * cells / steps is a correctly rounded double and an exact half
    # is representable, so rint (half to even) matches Python's round().
    return np.rint(np.arange(steps + 1) * cells / steps).astype(np.int64)


def saliency_ranks(saliency):
    """Rank of each cell in the deletion/insertion order, ``(B, h * w)``.

    Rank 0 is the most salient cell; ties go to the lower flat (row-major)
    index, as ``np.argsort(-saliency, kind="stable")`` orders them.

    Args:
        saliency: NumPy array ``(B, h, w)``.

    Returns:
        NumPy int array ``(B, h * w)``.

    Example:

    >>> import numpy as np
    >>> from keras_brnpa.metrics.perturbation import saliency_ranks
    >>> saliency_ranks(np.array([[[1.0, 3.0], [3.0, 0.0]]])).tolist()
    [[2, 0, 1, 3]]
    """
    flat = saliency.reshape(saliency.shape[0], -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :], axis=1)
    return ranks
