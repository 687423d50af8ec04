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

Shared arguments of ``deletion_auc``, ``insertion_auc``, their ``*_loop``
references and the correlations (``deletion_correlation``,
``insertion_correlation``), written once here:

- ``model``: any ``keras.Model`` (its compiled ``predict_on_batch`` is
  used; functional, ``Sequential`` or subclassed) or a callable mapping a
  ``(n, H, W, C)`` float array to ``(n, num_classes)`` scores.
- ``images``: ``(B, H, W, C)`` images, as the model takes them.
- ``saliency``: ``(B, h, w)`` explanation maps of any size: they are
  brought to a grid whose cells tile the image (see ``saliency_grid`` and
  ``fit_saliency``; a map that tiles the image is used as it is).
- ``steps``: int >= 1, number of steps; ``None`` perturbs one cell per
  step (as many steps as grid cells). Steps may exceed or not divide the
  number of cells (``round(t * cells / steps)`` cells at step ``t``).
- ``batch_size``: int >= 1, number of perturbed images per forward pass
  (and the most held in memory at once).
- ``from_logits``: ``None`` (auto-detect, the default): probabilities when
  the model ends with a softmax or a sigmoid, logits when it ends with a
  linear layer, and when its layers do not say (subclassed model,
  ``Lambda``) each image's outputs on the intact image decide (a row in
  [0, 1] summing to 1 is a probability), so that no image's score depends
  on the other images of the call. ``True``: softmax the outputs;
  ``False``: use them as they are.
- ``class_index``: ``None`` (the class predicted on the intact image), an
  int, or one int per image: the class whose score is recorded (the class
  the explanation was made for).
- ``return_curves``: also return the curves.
- ``max_cells``: the most cells of the grid (``None``: no limit).
- ``start_point``: ``False`` (the authors' curve): one point after each
  step, ``steps`` points spread over [0, 1]; ``True``: the unperturbed
  image (intact for deletion, the start image for insertion) is a first
  point too, ``steps + 1`` points (the curve of keras_brnpa 0.1).
"""

import keras
import numpy as np

from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_class_index
from keras_brnpa._checks import check_from_logits
from keras_brnpa._checks import check_images
from keras_brnpa._checks import check_optional_positive_int
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_saliency
from keras_brnpa._checks import empty_batch_safe
from keras_brnpa._checks import resolve_classes
from keras_brnpa.metrics._curves import area
from keras_brnpa.metrics._curves import as_scores
from keras_brnpa.metrics._curves import block_curves
from keras_brnpa.metrics._curves import check_model
from keras_brnpa.metrics._curves import class_scores
from keras_brnpa.metrics.perturbation import fill
from keras_brnpa.metrics.perturbation import fit_saliency
from keras_brnpa.metrics.perturbation import insertion_start
from keras_brnpa.metrics.perturbation import MAX_CELLS
from keras_brnpa.metrics.perturbation import step_counts
from keras_brnpa.models.inspection import check_input_scale
from keras_brnpa.models.inspection import resolve_from_logits


class _Call:
    """The checked arguments shared by every curve metric (one preamble)."""

    def __init__(
        self, model, images, saliency, steps, max_cells, from_logits, return_curves,
        start_point, class_index, batch_size=1,
    ):
        self.model = check_model(model)
        self.images = check_images(images, dtype=None, model=self.model)
        check_input_scale(self.model, self.images)
        saliency = check_saliency(saliency, batch=self.images.shape[0])
        self.saliency = fit_saliency(saliency, self.images.shape[1:3], max_cells)
        self.cells = self.saliency.shape[1] * self.saliency.shape[2]
        steps = check_optional_positive_int("steps", steps)
        self.steps = self.cells if steps is None else steps
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.from_logits = check_from_logits(from_logits)
        self.return_curves = check_bool("return_curves", return_curves)
        self.start_point = check_bool("start_point", start_point)
        self.class_index = check_class_index(class_index, self.images.shape[0])

    def counts(self, start_point=None):
        """Cells perturbed at each point (the authors': no t = 0 point)."""
        start_point = self.start_point if start_point is None else start_point
        return step_counts(self.cells, self.steps)[0 if start_point else 1 :]

    def curves(self, other, mode, start_point=None):
        return block_curves(
            self.model, self.images, self.saliency, self.counts(start_point),
            self.batch_size, self.from_logits, other, mode, self.class_index,
        )

    def finish(self, curves):
        auc = area(curves)
        return (auc, curves) if self.return_curves else auc


@empty_batch_safe
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
        model, images, saliency, steps, batch_size, from_logits,
        class_index, return_curves, max_cells, start_point: the arguments
            shared by the curve metrics, described once in the module
            docstring (``keras_brnpa.metrics.faithfulness``).
        baseline: value of removed pixels: a number (0, the default: the
            mean colour of mean/std-normalised data, as the authors use it;
            black for [0, 1] images), ``"mean"`` (each image's own mean
            colour, per channel), an array broadcastable to ``(H, W, C)``
            (a data set's mean colour: ``x_train.mean(axis=(0, 1, 2))``,
            shape ``(C,)``) or ``(B, H, W, C)``, or a callable
            ``f(images) -> array`` of the images' shape. No option makes an
            image's score depend on the other images of the call.

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
    call = _Call(
        model, images, saliency, steps, max_cells, from_logits, return_curves, start_point,
        class_index, batch_size,
    )
    return call.finish(call.curves(fill(baseline, call.images), "deletion"))


@empty_batch_safe
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
        model, images, saliency, steps, batch_size, from_logits,
        class_index, return_curves, max_cells, start_point: the arguments
            shared by the curve metrics, described once in the module
            docstring (``keras_brnpa.metrics.faithfulness``).
        blur_kernel_size: odd int >= 1, size of the box blur of the default
            start image (see ``box_blur``); ``None`` scales the authors'
            121 px at 448 px to the image (``default_blur_kernel_size``).
            Only with ``baseline=None``.
        baseline: the start image: ``None`` (the box-blurred image), a
            number (a constant image), ``"mean"`` (each image's own mean
            colour), an array broadcastable to ``(H, W, C)`` (a data set's
            mean colour, ``(C,)``) or ``(B, H, W, C)``, or a callable
            ``f(images) -> array`` of the images' shape.

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
    call = _Call(
        model, images, saliency, steps, max_cells, from_logits, return_curves, start_point,
        class_index, batch_size,
    )
    start = insertion_start(baseline, blur_kernel_size, call.images)
    return call.finish(call.curves(start, "insertion"))


# ----------------------------------------------------------------- reference
def _forward_one(model, image):
    """One forward pass on one image (eager call, as the authors do)."""
    if isinstance(model, keras.Model):
        outputs = model(image[None], training=False)
    else:
        outputs = model(image[None])
    return as_scores(outputs, 1)[0]


def _loop_curves(call, start, perturbed):
    images, saliency, steps = call.images, call.saliency, call.steps
    height, width = images.shape[1:3]
    h, w = saliency.shape[1:]
    bh, bw = height // h, width // w
    points = range(0 if call.start_point else 1, steps + 1)  # the authors': no t = 0 point
    curves = np.zeros((images.shape[0], len(points)))
    for b in range(images.shape[0]):
        intact = _forward_one(call.model, images[b])
        classes = None if call.class_index is None else call.class_index[b : b + 1]
        label = resolve_classes(classes, intact[None])
        logits = resolve_from_logits(call.model, call.from_logits, intact[None])
        order = np.argsort(-saliency[b].reshape(-1), kind="stable")
        for point, t in enumerate(points):
            x = start[b].copy()
            for cell in order[: round(t * h * w / steps)]:
                i, j = divmod(int(cell), w)
                rows = slice(i * bh, (i + 1) * bh)
                cols = slice(j * bw, (j + 1) * bw)
                x[rows, cols] = perturbed[b][rows, cols]
            output = _forward_one(call.model, x)
            curves[b, point] = class_scores(output[None], label, logits)[0]
    return curves


@empty_batch_safe
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
    call = _Call(
        model, images, saliency, steps, max_cells, from_logits, return_curves, start_point,
        class_index,
    )
    return call.finish(_loop_curves(call, call.images, fill(baseline, call.images)))


@empty_batch_safe
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
    call = _Call(
        model, images, saliency, steps, max_cells, from_logits, return_curves, start_point,
        class_index,
    )
    start = insertion_start(baseline, blur_kernel_size, call.images)
    return call.finish(_loop_curves(call, start, call.images))
