"""Deletion and insertion AUC (DAUC / IAUC), batched.

The definition (the paper's, made exact):

- ``images`` are ``(B, H, W, C)``, ``saliency`` is any ``(B, h, w)`` map.
  It is first brought to the grid ``(gh, gw) = saliency_grid((h, w), (H,
  W), max_cells)``, whose cells tile the image (``fit_saliency``): per
  axis the smallest divisor of the image side that is ``>=`` the map side
  (a map that tiles the image is kept as it is), then, while the grid has
  more than ``max_cells`` cells (default 56x56), the axis with more cells
  (both on a tie) goes down to its next smaller divisor. An axis is
  resampled by block means when the grid divides it, bilinearly
  otherwise. The image is cut into ``gh * gw`` blocks of ``H / gh x W /
  gw`` pixels, one per cell.
- The cells are ordered by decreasing saliency, ties by lower flat
  (row-major) index first: ``np.argsort(-saliency, kind="stable")``.
- ``c`` is ``class_index``, by default the class the model predicts on
  the intact image.
- For ``t = 1 .. steps`` the first ``n_t = round(t * cells / steps)``
  cells (Python's ``round``, half to even) are *removed* (deletion: their
  block is set to ``baseline``) or *restored* (insertion: start from
  ``baseline``, by default the image blurred by a ``k x k`` box filter
  with zero padding, divided by ``k**2``, and put the original blocks
  back).
- ``score_t`` is the softmax probability of ``c`` (``from_logits=True``)
  or the model's output for ``c`` itself (``from_logits=False``);
  ``from_logits=None`` reads it from the model (a final softmax or sigmoid
  means probabilities; see ``models.resolve_from_logits``).
- As in the authors' code, the curve has one point after each step, no
  point for the unperturbed image: ``steps`` points spread evenly over
  ``[0, 1]``; the AUC is their trapezoid area, the mean over ``t`` of
  ``(score_t + score_{t+1}) / 2`` (one step: the score itself).
  ``start_point=True`` adds the ``t = 0`` point (the intact image for
  deletion, the start image for insertion): ``steps + 1`` points, the
  curve of keras_brnpa 0.1.

``deletion_auc`` and ``insertion_auc`` build the perturbed images with
NumPy broadcasting, chunk by chunk, and evaluate them in batches of
``batch_size`` with the model's compiled predict function (one function,
every batch padded to the same size so that it is traced once). The
``*_loop`` functions are the plain reference: one forward pass per step
and per image, as in the authors' code; they give the same numbers.
"""

import numbers

import keras
import numpy as np

from keras_brnpa.layers._validation import check_positive_int
from keras_brnpa.layers._validation import invalid
from keras_brnpa.metrics._checks import check_bool
from keras_brnpa.metrics._checks import check_class_index
from keras_brnpa.metrics._checks import check_optional_positive_int
from keras_brnpa.metrics._checks import check_saliency
from keras_brnpa.metrics._checks import describe
from keras_brnpa.metrics._checks import resolve_classes
from keras_brnpa.metrics._checks import to_numpy
from keras_brnpa.metrics.localization import _resize_matrix
from keras_brnpa.models.inspection import check_input_scale
from keras_brnpa.models.inspection import check_from_logits
from keras_brnpa.models.inspection import resolve_from_logits

#: The authors blur 448 px images with a 121 px box filter.
REFERENCE_BLUR = (121, 448)


# --------------------------------------------------------------------- checks
def _check_images(images):
    images = to_numpy("images", images)
    if images.ndim != 4 or 0 in images.shape:
        raise invalid(
            "images", describe(images), "a non-empty 4-D array (batch, height, width, channels)"
        )
    if not np.issubdtype(images.dtype, np.number):
        raise invalid("images", describe(images), "a numeric array")
    if not np.issubdtype(images.dtype, np.floating):
        images = images.astype(np.float32)
    if not np.all(np.isfinite(images)):
        raise invalid(
            "images",
            f"<array of shape {images.shape} with "
            f"{int(images.size - np.isfinite(images).sum())} NaN or infinite values>",
            "finite values (no NaN or inf)",
        )
    return images


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
    return _resize_matrix(out_size, in_size)


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


def _check_inputs(images, saliency, steps, max_cells=MAX_CELLS, model=None):
    images = _check_images(images)
    if model is not None:
        check_input_scale(model, images)
    saliency = check_saliency(saliency, batch=images.shape[0])
    saliency = fit_saliency(saliency, images.shape[1:3], max_cells)
    h, w = saliency.shape[1:]
    steps = check_optional_positive_int("steps", steps)
    if steps is None:
        steps = h * w
    return images, saliency, steps


def _fill(baseline, images, name="baseline"):
    """The replacement pixels as an array broadcast to ``images.shape``.

    ``baseline`` is a number, ``"mean"`` (the mean colour of ``images``,
    per channel), an array broadcastable to ``(H, W, C)`` or to
    ``(B, H, W, C)``, or a callable ``f(images) -> (B, H, W, C)``.
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
        array = images.mean(axis=(0, 1, 2), dtype=np.float64)
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


def _insertion_start(baseline, blur_kernel_size, images):
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
    return _fill(baseline, images)


def _check_model(model):
    if not callable(model):
        raise invalid("model", model, "a keras.Model or a callable from images to scores")
    return model


def _as_scores(outputs, batch):
    if isinstance(outputs, (dict, list, tuple)):
        raise invalid(
            "model",
            f"<model with {type(outputs).__name__} output>",
            "a classifier with a single (batch, num_classes) output",
        )
    outputs = np.asarray(keras.ops.convert_to_numpy(outputs))
    if outputs.ndim != 2 or outputs.shape[0] != batch:
        raise invalid(
            "model",
            f"<model with output of shape {outputs.shape}>",
            f"a classifier with a single (batch, num_classes) output, batch={batch}",
        )
    return outputs


# ------------------------------------------------------------------- helpers
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
    images = _check_images(images)
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
    >>> from keras_brnpa.metrics.faithfulness import saliency_ranks
    >>> saliency_ranks(np.array([[[1.0, 3.0], [3.0, 0.0]]])).tolist()
    [[2, 0, 1, 3]]
    """
    flat = saliency.reshape(saliency.shape[0], -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :], axis=1)
    return ranks


def _class_scores(outputs, classes, from_logits):
    """Score of ``classes`` in each row of ``outputs`` (float64)."""
    outputs = np.asarray(outputs, np.float64)
    if from_logits:
        outputs = outputs - outputs.max(axis=-1, keepdims=True)
        outputs = np.exp(outputs)
        outputs = outputs / outputs.sum(axis=-1, keepdims=True)
    return np.take_along_axis(outputs, classes[..., None], axis=-1)[..., 0]


def _area(curves):
    """Trapezoid area over points evenly spread on [0, 1] (one point: itself)."""
    if curves.shape[1] == 1:
        return curves[:, 0].copy()
    return ((curves[:, :-1] + curves[:, 1:]) / 2).mean(axis=1)


def _predict_function(model):
    """A compiled ``(n, H, W, C) -> (n, K)`` NumPy function."""
    if isinstance(model, keras.Model):
        predict = model.predict_on_batch
    else:
        predict = model

    def run(batch):
        return _as_scores(predict(batch), len(batch))

    return run


# ------------------------------------------------------------------- batched
def _batched_curves(
    model, images, saliency, steps, batch_size, from_logits, fill, insertion, class_index,
    start_point,
):
    batch, height, width, channels = images.shape
    h, w = saliency.shape[1:]
    cells = h * w
    bh, bw = height // h, width // w
    # Cells perturbed at each point of the curve (the authors': no t = 0 point).
    counts = step_counts(cells, steps)[0 if start_point else 1 :]
    # Steps that perturb the same number of cells give the same image:
    # evaluate each distinct count once per image, and the intact image
    # (its prediction is the explained class) even when it is no point of
    # the curve.
    intact_count = cells if insertion else 0
    unique = np.union1d(counts, [intact_count])
    inverse = np.searchsorted(unique, counts)
    intact = int(np.searchsorted(unique, intact_count))
    ranks = saliency_ranks(saliency)
    n_unique = len(unique)
    total = batch * n_unique
    # As few calls as batch_size allows, all of the same size (one trace of
    # the predict function), with as little padding as possible.
    calls = -(-total // batch_size)
    size = -(-total // calls)
    blocks = images.reshape(batch, h, bh, w, bw, channels)
    other = fill.reshape(batch, h, bh, w, bw, channels)
    predict = _predict_function(model)
    outputs = []
    for start in range(0, total, size):
        jobs = np.arange(start, min(start + size, total))
        owner = jobs // n_unique
        count = unique[jobs % n_unique]
        # (n, h*w) -> (n, h, 1, w, 1, 1): True where the block is perturbed.
        mask = (ranks[owner] < count[:, None]).reshape(len(jobs), h, 1, w, 1, 1)
        if insertion:
            chunk = np.where(mask, blocks[owner], other[owner])
        else:
            chunk = np.where(mask, other[owner], blocks[owner])
        chunk = chunk.reshape(len(jobs), height, width, channels)
        if len(jobs) < size:
            pad = np.zeros((size - len(jobs),) + chunk.shape[1:], chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        outputs.append(predict(chunk)[: len(jobs)])
    outputs = np.concatenate(outputs).reshape(batch, n_unique, -1)
    classes = resolve_classes(class_index, outputs[:, intact])
    from_logits = resolve_from_logits(model, from_logits, outputs[:, intact])
    scores = _class_scores(outputs, np.repeat(classes[:, None], n_unique, axis=1), from_logits)
    return scores[:, inverse]


def _finish(curves, return_curves):
    auc = _area(curves)
    if return_curves:
        return auc, curves
    return auc


def deletion_auc(
    model,
    images,
    saliency,
    steps=None,
    batch_size=64,
    from_logits=None,
    baseline=0.0,
    return_curves=False,
    class_index=None,
    max_cells=MAX_CELLS,
    start_point=False,
):
    """Deletion AUC (DAUC, lower is better), batched.

    Removes the image blocks of the most salient cells first (sets them to
    ``baseline``) and records the probability of the explained class; the
    AUC is the area under that curve over the fraction of cells removed. A
    faithful explanation makes the probability drop fast. See the module
    docstring for the exact definition; ``deletion_auc_loop`` computes the
    same numbers one forward pass at a time.

    Args:
        model: any ``keras.Model`` (its compiled ``predict_on_batch`` is
            used; functional, ``Sequential`` or subclassed) or a callable
            mapping a ``(n, H, W, C)`` float array to ``(n, num_classes)``
            scores.
        images: ``(B, H, W, C)`` images, as the model takes them.
        saliency: ``(B, h, w)`` explanation maps of any size: they are
            brought to a grid whose cells tile the image (see
            ``saliency_grid`` and ``fit_saliency``; a map that tiles the
            image is used as it is).
        steps: int >= 1, number of steps; ``None`` perturbs one cell per
            step (as many steps as grid cells). Steps may exceed or not
            divide the number of cells (``round(t * cells / steps)`` cells
            at step ``t``).
        batch_size: int >= 1, number of perturbed images per forward pass
            (and the most held in memory at once).
        from_logits: ``None`` (auto-detect, the default): probabilities
            when the model ends with a softmax or a sigmoid, logits when it
            ends with a linear layer, and when its layers do not say
            (subclassed model, ``Lambda``) its outputs on the intact images
            decide (rows in [0, 1] summing to 1 are probabilities).
            ``True``: softmax the outputs; ``False``: use them as they are.
        class_index: ``None`` (the class predicted on the intact image), an
            int, or one int per image: the class whose score is recorded
            (the class the explanation was made for).
        baseline: value of removed pixels: a number (0, the default: the
            mean colour of mean/std-normalised data, as the authors use it;
            black for [0, 1] images), ``"mean"`` (the mean colour of
            ``images``, per channel: the authors' baseline for data in any
            range), an array broadcastable to ``(H, W, C)`` or
            ``(B, H, W, C)``, or a callable ``f(images) -> array`` of the
            images' shape.
        return_curves: also return the curves.
        max_cells: the most cells of the grid (``None``: no limit).
        start_point: ``False`` (the authors' curve): one point after each
            step, ``steps`` points spread over [0, 1]; ``True``: the intact
            image is a first point too, ``steps + 1`` points (the curve of
            keras_brnpa 0.1).

    Returns:
        NumPy ``(B,)`` AUCs in ``[0, 1]`` for probabilities; with
        ``return_curves=True`` a tuple ``(auc, curves)``, ``curves`` of
        shape ``(B, steps)`` (the score after each step; ``(B, steps + 1)``
        with ``start_point=True``, step 0 = intact).

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((32, 32, 3)),
    ...     keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    >>> images = np.random.default_rng(0).random((2, 32, 32, 3), "float32")
    >>> saliency = np.random.default_rng(1).random((2, 4, 4))
    >>> auc, curves = keras_brnpa.metrics.deletion_auc(
    ...     model, images, saliency, steps=8, return_curves=True)
    >>> auc.shape, curves.shape
    ((2,), (2, 8))
    >>> bool(np.allclose(auc, keras_brnpa.metrics.faithfulness.deletion_auc_loop(
    ...     model, images, saliency, steps=8), atol=1e-5))
    True
    >>> keras_brnpa.metrics.deletion_auc(model, images, saliency, class_index=[0, 2]).shape
    (2,)
    """
    model = _check_model(model)
    images, saliency, steps = _check_inputs(images, saliency, steps, max_cells, model)
    batch_size = check_positive_int("batch_size", batch_size)
    from_logits = check_from_logits(from_logits)
    return_curves = check_bool("return_curves", return_curves)
    start_point = check_bool("start_point", start_point)
    class_index = check_class_index(class_index, images.shape[0])
    fill = _fill(baseline, images)
    curves = _batched_curves(
        model, images, saliency, steps, batch_size, from_logits, fill, False, class_index,
        start_point,
    )
    return _finish(curves, return_curves)


def insertion_auc(
    model,
    images,
    saliency,
    steps=None,
    batch_size=64,
    from_logits=None,
    blur_kernel_size=None,
    return_curves=False,
    class_index=None,
    baseline=None,
    max_cells=MAX_CELLS,
    start_point=False,
):
    """Insertion AUC (IAUC, higher is better), batched.

    Starts from ``baseline`` (by default the blurred image, as the
    authors do) and restores the original blocks of the most salient cells
    first, recording the probability of the explained class; the AUC is
    the area under that curve over the fraction of cells restored. A
    faithful explanation makes the probability rise fast. See the module
    docstring for the exact definition; ``insertion_auc_loop`` computes the
    same numbers one forward pass at a time.

    Args:
        model: any ``keras.Model`` or a callable from ``(n, H, W, C)``
            images to ``(n, num_classes)`` scores.
        images: ``(B, H, W, C)`` images, as the model takes them.
        saliency: ``(B, h, w)`` explanation maps of any size: they are
            brought to a grid whose cells tile the image (see
            ``saliency_grid`` and ``fit_saliency``; a map that tiles the
            image is used as it is).
        steps: int >= 1, number of steps; ``None`` perturbs one cell per
            step (as many steps as grid cells). Steps may exceed or not
            divide the number of cells (``round(t * cells / steps)`` cells
            at step ``t``).
        batch_size: int >= 1, number of perturbed images per forward pass
            (and the most held in memory at once).
        from_logits: ``None`` (auto-detect, the default): probabilities
            when the model ends with a softmax or a sigmoid, logits when it
            ends with a linear layer, and when its layers do not say
            (subclassed model, ``Lambda``) its outputs on the intact images
            decide (rows in [0, 1] summing to 1 are probabilities).
            ``True``: softmax the outputs; ``False``: use them as they are.
        class_index: ``None`` (the class predicted on the intact image), an
            int, or one int per image: the class whose score is recorded
            (the class the explanation was made for).
        blur_kernel_size: odd int >= 1, size of the box blur of the default
            start image (see ``box_blur``); ``None`` scales the authors'
            121 px at 448 px to the image (``default_blur_kernel_size``).
            Only with ``baseline=None``.
        return_curves: also return the curves.
        baseline: the start image: ``None`` (the box-blurred image), a
            number (a constant image), an array broadcastable to
            ``(H, W, C)`` or ``(B, H, W, C)``, or a callable
            ``f(images) -> array`` of the images' shape.
        max_cells: the most cells of the grid (``None``: no limit).
        start_point: ``False`` (the authors' curve): one point after each
            step, ``steps`` points spread over [0, 1]; ``True``: the start
            image is a first point too (``steps + 1`` points).

    Returns:
        NumPy ``(B,)`` AUCs; with ``return_curves=True`` a tuple
        ``(auc, curves)``, ``curves`` of shape ``(B, steps)`` (the score
        after each step, the last one the intact image; ``(B, steps + 1)``
        with ``start_point=True``, step 0 = start image).

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((32, 32, 3)),
    ...     keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    >>> images = np.random.default_rng(0).random((2, 32, 32, 3), "float32")
    >>> saliency = np.random.default_rng(1).random((2, 4, 4))
    >>> auc = keras_brnpa.metrics.insertion_auc(model, images, saliency, steps=5)
    >>> bool(np.allclose(auc, keras_brnpa.metrics.faithfulness.insertion_auc_loop(
    ...     model, images, saliency, steps=5), atol=1e-5))
    True
    >>> keras_brnpa.metrics.insertion_auc(model, images, saliency, baseline=0.5).shape
    (2,)
    """
    model = _check_model(model)
    images, saliency, steps = _check_inputs(images, saliency, steps, max_cells, model)
    batch_size = check_positive_int("batch_size", batch_size)
    from_logits = check_from_logits(from_logits)
    return_curves = check_bool("return_curves", return_curves)
    start_point = check_bool("start_point", start_point)
    class_index = check_class_index(class_index, images.shape[0])
    start = _insertion_start(baseline, blur_kernel_size, images)
    curves = _batched_curves(
        model, images, saliency, steps, batch_size, from_logits, start, True, class_index,
        start_point,
    )
    return _finish(curves, return_curves)


# ----------------------------------------------------------------- reference
def _forward_one(model, image):
    """One forward pass on one image (eager call, as the authors do)."""
    if isinstance(model, keras.Model):
        outputs = model(image[None], training=False)
    else:
        outputs = model(image[None])
    return _as_scores(outputs, 1)[0]


def _loop_curves(
    model, images, saliency, steps, from_logits, start, perturbed, class_index, start_point
):
    height, width = images.shape[1:3]
    h, w = saliency.shape[1:]
    bh, bw = height // h, width // w
    points = range(0 if start_point else 1, steps + 1)  # the authors': no t = 0 point
    curves = np.zeros((images.shape[0], len(points)))
    for b in range(images.shape[0]):
        image = images[b]
        intact = _forward_one(model, image)
        label = resolve_classes(None if class_index is None else class_index[b : b + 1], intact[None])
        logits = resolve_from_logits(model, from_logits, intact[None])
        order = np.argsort(-saliency[b].reshape(-1), kind="stable")
        for point, t in enumerate(points):
            x = start[b].copy()
            for cell in order[: round(t * h * w / steps)]:
                i, j = divmod(int(cell), w)
                rows = slice(i * bh, (i + 1) * bh)
                cols = slice(j * bw, (j + 1) * bw)
                x[rows, cols] = perturbed[b][rows, cols]
            output = _forward_one(model, x)
            curves[b, point] = _class_scores(output[None], label, logits)[0]
    return curves


def deletion_auc_loop(
    model,
    images,
    saliency,
    steps=None,
    from_logits=None,
    baseline=0.0,
    return_curves=False,
    class_index=None,
    max_cells=MAX_CELLS,
    start_point=False,
):
    """Reference deletion AUC: one forward pass per step and per image.

    Plain Python, straight from the definition (see the module docstring),
    as slow as the authors' code; ``deletion_auc`` is the batched version
    and returns the same values. Arguments and returns as in
    ``deletion_auc``.

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((4, 4, 1)),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> auc = keras_brnpa.metrics.faithfulness.deletion_auc_loop(
    ...     model, np.ones((1, 4, 4, 1)), np.eye(2)[None], steps=2)
    >>> auc.shape
    (1,)
    """
    model = _check_model(model)
    images, saliency, steps = _check_inputs(images, saliency, steps, max_cells, model)
    from_logits = check_from_logits(from_logits)
    return_curves = check_bool("return_curves", return_curves)
    start_point = check_bool("start_point", start_point)
    class_index = check_class_index(class_index, images.shape[0])
    fill = _fill(baseline, images)
    curves = _loop_curves(
        model, images, saliency, steps, from_logits, images, fill, class_index, start_point
    )
    return _finish(curves, return_curves)


def insertion_auc_loop(
    model,
    images,
    saliency,
    steps=None,
    from_logits=None,
    blur_kernel_size=None,
    return_curves=False,
    class_index=None,
    baseline=None,
    max_cells=MAX_CELLS,
    start_point=False,
):
    """Reference insertion AUC: one forward pass per step and per image.

    Plain Python, straight from the definition; ``insertion_auc`` is the
    batched version and returns the same values. Arguments and returns as
    in ``insertion_auc``.

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((4, 4, 1)),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> auc = keras_brnpa.metrics.faithfulness.insertion_auc_loop(
    ...     model, np.ones((1, 4, 4, 1)), np.eye(2)[None], steps=2)
    >>> auc.shape
    (1,)
    """
    model = _check_model(model)
    images, saliency, steps = _check_inputs(images, saliency, steps, max_cells, model)
    from_logits = check_from_logits(from_logits)
    return_curves = check_bool("return_curves", return_curves)
    start_point = check_bool("start_point", start_point)
    class_index = check_class_index(class_index, images.shape[0])
    start = _insertion_start(baseline, blur_kernel_size, images)
    curves = _loop_curves(
        model, images, saliency, steps, from_logits, start, images, class_index, start_point
    )
    return _finish(curves, return_curves)
