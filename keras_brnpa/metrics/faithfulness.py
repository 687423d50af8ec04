"""Deletion and insertion AUC (DAUC / IAUC), batched.

The definition (the paper's, made exact):

- ``images`` are ``(B, H, W, C)``, ``saliency`` is ``(B, h, w)`` with ``H``
  and ``W`` multiples of ``h`` and ``w``. The image is cut into ``h * w``
  blocks of ``H / h x W / w`` pixels, one per saliency cell.
- The cells are ordered by decreasing saliency, ties by lower flat
  (row-major) index first: ``np.argsort(-saliency, kind="stable")``.
- ``c`` is the class the model predicts on the intact image.
- For ``t = 0 .. steps`` the first ``n_t = round(t * h * w / steps)``
  cells (Python's ``round``, half to even) are *removed* (deletion: their
  block is set to ``baseline``) or *restored* (insertion: start from the
  image blurred by a ``k x k`` box filter with zero padding, divided by
  ``k**2``, and put the original blocks back).
- ``score_t`` is the softmax probability of ``c`` (``from_logits=True``)
  or the model's output for ``c`` itself (``from_logits=False``).
- AUC is the trapezoid rule over the fraction ``t / steps`` in ``[0, 1]``:
  the mean over ``t`` of ``(score_t + score_{t+1}) / 2``.

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
from keras_brnpa.metrics._checks import check_optional_positive_int
from keras_brnpa.metrics._checks import check_saliency
from keras_brnpa.metrics._checks import describe
from keras_brnpa.metrics._checks import to_numpy

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
    return images


def _check_inputs(images, saliency, steps):
    images = _check_images(images)
    saliency = check_saliency(saliency, batch=images.shape[0])
    height, width = images.shape[1:3]
    h, w = saliency.shape[1:]
    if height % h or width % w:
        raise invalid(
            "saliency",
            describe(saliency),
            f"a map whose height and width divide the image's ({height}, {width}) "
            "so that each cell covers a whole block of pixels",
        )
    steps = check_optional_positive_int("steps", steps)
    if steps is None:
        steps = h * w
    return images, saliency, steps


def _check_baseline(baseline, image_shape):
    if isinstance(baseline, (bool, np.bool_)):
        raise invalid("baseline", baseline, "a number or an array broadcastable to (H, W, C)")
    if isinstance(baseline, numbers.Real):
        if not np.isfinite(baseline):
            raise invalid("baseline", baseline, "a finite number")
        return float(baseline)
    array = to_numpy("baseline", baseline)
    try:
        array = np.broadcast_to(array.astype(np.float64), image_shape)
    except (ValueError, TypeError) as error:
        raise invalid(
            "baseline",
            describe(array),
            f"a number or an array broadcastable to the image shape {image_shape}",
        ) from error
    return array


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
def _batched_curves(model, images, saliency, steps, batch_size, from_logits, fill, insertion):
    batch, height, width, channels = images.shape
    h, w = saliency.shape[1:]
    cells = h * w
    bh, bw = height // h, width // w
    counts = step_counts(cells, steps)
    # Steps that perturb the same number of cells give the same image:
    # evaluate each distinct count once per image.
    unique, inverse = np.unique(counts, return_inverse=True)
    intact = int(np.searchsorted(unique, cells if insertion else 0))
    ranks = saliency_ranks(saliency)
    n_unique = len(unique)
    total = batch * n_unique
    # As few calls as batch_size allows, all of the same size (one trace of
    # the predict function), with as little padding as possible.
    calls = -(-total // batch_size)
    size = -(-total // calls)
    blocks = images.reshape(batch, h, bh, w, bw, channels)
    if insertion:
        other = fill.reshape(batch, h, bh, w, bw, channels)
    elif isinstance(fill, np.ndarray):
        other = fill.reshape(1, h, bh, w, bw, channels).astype(images.dtype)
    else:
        other = np.asarray(fill, images.dtype)
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
            chunk = np.where(mask, other, blocks[owner])
        chunk = chunk.reshape(len(jobs), height, width, channels)
        if len(jobs) < size:
            pad = np.zeros((size - len(jobs),) + chunk.shape[1:], chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        outputs.append(predict(chunk)[: len(jobs)])
    outputs = np.concatenate(outputs).reshape(batch, n_unique, -1)
    classes = np.argmax(outputs[:, intact], axis=-1)
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
    from_logits=True,
    baseline=0.0,
    return_curves=False,
):
    """Deletion AUC (DAUC, lower is better), batched.

    Removes the image blocks of the most salient cells first (sets them to
    ``baseline``) and records the probability of the class predicted on the
    intact image; the AUC is the area under that curve over the fraction of
    cells removed. A faithful explanation makes the probability drop fast.
    See the module docstring for the exact definition; ``deletion_auc_loop``
    computes the same numbers one forward pass at a time.

    Args:
        model: a ``keras.Model`` (its compiled ``predict_on_batch`` is used)
            or a callable mapping a ``(n, H, W, C)`` float array to
            ``(n, num_classes)`` scores.
        images: ``(B, H, W, C)`` images, as the model expects them
            (normalised).
        saliency: ``(B, h, w)`` explanation maps; ``H % h == 0`` and
            ``W % w == 0``.
        steps: int >= 1, number of steps; ``None`` removes one cell per
            step (``h * w`` steps). Steps may exceed or not divide
            ``h * w`` (``round(t * h * w / steps)`` cells at step ``t``).
        batch_size: int >= 1, number of perturbed images per forward pass
            (and the most held in memory at once).
        from_logits: if ``True`` the model outputs logits and the score is
            their softmax; if ``False`` the output is used as is.
        baseline: value of removed pixels: a number (0 = the mean of
            normalised data) or an array broadcastable to ``(H, W, C)``.
        return_curves: also return the curves.

    Returns:
        NumPy ``(B,)`` AUCs in ``[0, 1]`` for probabilities; with
        ``return_curves=True`` a tuple ``(auc, curves)``, ``curves`` of
        shape ``(B, steps + 1)`` (the score at each step, step 0 = intact).

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
    ((2,), (2, 9))
    >>> bool(np.allclose(auc, keras_brnpa.metrics.faithfulness.deletion_auc_loop(
    ...     model, images, saliency, steps=8), atol=1e-5))
    True
    """
    model = _check_model(model)
    images, saliency, steps = _check_inputs(images, saliency, steps)
    batch_size = check_positive_int("batch_size", batch_size)
    from_logits = check_bool("from_logits", from_logits)
    return_curves = check_bool("return_curves", return_curves)
    fill = _check_baseline(baseline, images.shape[1:])
    curves = _batched_curves(
        model, images, saliency, steps, batch_size, from_logits, fill, insertion=False
    )
    return _finish(curves, return_curves)


def insertion_auc(
    model,
    images,
    saliency,
    steps=None,
    batch_size=64,
    from_logits=True,
    blur_kernel_size=None,
    return_curves=False,
):
    """Insertion AUC (IAUC, higher is better), batched.

    Starts from the blurred image and restores the original blocks of the
    most salient cells first, recording the probability of the class
    predicted on the intact image; the AUC is the area under that curve
    over the fraction of cells restored. A faithful explanation makes the
    probability rise fast. See the module docstring for the exact
    definition; ``insertion_auc_loop`` computes the same numbers one forward
    pass at a time.

    Args:
        model: a ``keras.Model`` or a callable from ``(n, H, W, C)`` images
            to ``(n, num_classes)`` scores.
        images: ``(B, H, W, C)`` images, as the model expects them.
        saliency: ``(B, h, w)`` explanation maps; ``H % h == 0`` and
            ``W % w == 0``.
        steps: int >= 1; ``None`` restores one cell per step.
        batch_size: int >= 1, perturbed images per forward pass.
        from_logits: softmax the outputs (``True``) or use them as is.
        blur_kernel_size: odd int >= 1, size of the box blur of the start
            image (see ``box_blur``); ``None`` scales the authors' 121 px
            at 448 px to the image (``default_blur_kernel_size``).
        return_curves: also return the curves.

    Returns:
        NumPy ``(B,)`` AUCs; with ``return_curves=True`` a tuple
        ``(auc, curves)``, ``curves`` of shape ``(B, steps + 1)`` (step 0 =
        blurred image, last step = intact image).

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
    """
    model = _check_model(model)
    images, saliency, steps = _check_inputs(images, saliency, steps)
    batch_size = check_positive_int("batch_size", batch_size)
    from_logits = check_bool("from_logits", from_logits)
    return_curves = check_bool("return_curves", return_curves)
    if blur_kernel_size is None:
        blur_kernel_size = default_blur_kernel_size(*images.shape[1:3])
    blurred = box_blur(images, _check_kernel_size(blur_kernel_size))
    curves = _batched_curves(
        model, images, saliency, steps, batch_size, from_logits, blurred, insertion=True
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


def _loop_curves(model, images, saliency, steps, from_logits, start, perturbed):
    height, width = images.shape[1:3]
    h, w = saliency.shape[1:]
    bh, bw = height // h, width // w
    curves = np.zeros((images.shape[0], steps + 1))
    for b in range(images.shape[0]):
        image = images[b]
        label = np.argmax(_forward_one(model, image))
        order = np.argsort(-saliency[b].reshape(-1), kind="stable")
        for t in range(steps + 1):
            x = start(b).copy()
            for cell in order[: round(t * h * w / steps)]:
                i, j = divmod(int(cell), w)
                rows = slice(i * bh, (i + 1) * bh)
                cols = slice(j * bw, (j + 1) * bw)
                x[rows, cols] = perturbed(b)[rows, cols]
            output = _forward_one(model, x)
            curves[b, t] = _class_scores(output[None], np.array([label]), from_logits)[0]
    return curves


def deletion_auc_loop(
    model, images, saliency, steps=None, from_logits=True, baseline=0.0, return_curves=False
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
    images, saliency, steps = _check_inputs(images, saliency, steps)
    from_logits = check_bool("from_logits", from_logits)
    return_curves = check_bool("return_curves", return_curves)
    fill = np.broadcast_to(_check_baseline(baseline, images.shape[1:]), images.shape[1:])
    fill = fill.astype(images.dtype)
    curves = _loop_curves(
        model,
        images,
        saliency,
        steps,
        from_logits,
        start=lambda b: images[b],
        perturbed=lambda b: fill,
    )
    return _finish(curves, return_curves)


def insertion_auc_loop(
    model,
    images,
    saliency,
    steps=None,
    from_logits=True,
    blur_kernel_size=None,
    return_curves=False,
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
    images, saliency, steps = _check_inputs(images, saliency, steps)
    from_logits = check_bool("from_logits", from_logits)
    return_curves = check_bool("return_curves", return_curves)
    if blur_kernel_size is None:
        blur_kernel_size = default_blur_kernel_size(*images.shape[1:3])
    blurred = box_blur(images, _check_kernel_size(blur_kernel_size))
    curves = _loop_curves(
        model,
        images,
        saliency,
        steps,
        from_logits,
        start=lambda b: blurred[b],
        perturbed=lambda b: images[b],
    )
    return _finish(curves, return_curves)
