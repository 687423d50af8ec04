"""DC and IC: deletion and insertion correlations (Gomez et al. 2022), batched.

The areas under the deletion and insertion curves (DAUC, IAUC) say how
fast the score falls (rises); they do not say whether the map's values
match the score's changes: a map that orders the cells well but gives
them arbitrary values scores the same. The BR-NPA authors' follow-up
(Gomez, Fréour, Mouchère, "Metrics for saliency map evaluation of deep
learning explanation methods", ICPR 2022, arXiv 2201.13291;
TristanGomez44/metrics-saliency-maps) adds, per image, the **Pearson
correlation** along the curve between

- the change of the score at step ``t``: ``s_(t-1) - s_t`` for deletion
  (DC, the drop), ``s_t - s_(t-1)`` for insertion (IC, the rise), and
- the mean saliency of the cells removed (deletion) or restored
  (insertion) at step ``t``.

Higher is better: the cells the map calls more important change the score
more. The curve is the one of ``deletion_auc`` / ``insertion_auc`` (same
grid, order, steps and baselines; see ``keras_brnpa.metrics.faithfulness``)
**with its start point** ``t = 0`` (the intact image for deletion, the
start image for insertion), ``steps + 1`` points and ``steps`` changes.
The map's values are those of the grid (``fit_saliency``: a cell's value
is the mean of the map over it when the map is finer), so the mean over
the removed cells is the mean saliency of the removed pixels. Steps that
remove no cell (more steps than cells) change nothing and are left out.
The correlation is ``NaN`` when fewer than two steps are left or when the
changes or the saliencies are constant (a constant map, a score that does
not move): such an image says nothing about the map's values.

The class is ``class_index`` or the class predicted on the intact image
(the authors' code picks, for insertion without a class, the class
predicted on the blurred start image; the explained class is the right
one).
"""

import numpy as np

from keras_brnpa._checks import empty_batch_safe
from keras_brnpa._checks import invalid
from keras_brnpa.metrics._curves import area
from keras_brnpa.metrics.faithfulness import _Call
from keras_brnpa.metrics.perturbation import fill
from keras_brnpa.metrics.perturbation import insertion_start
from keras_brnpa.metrics.perturbation import MAX_CELLS


def step_saliency(saliency, counts):
    """Mean saliency of the cells perturbed at each step, ``(B, steps)``.

    Args:
        saliency: ``(B, h, w)`` maps on the grid.
        counts: ``(steps + 1,)`` cells perturbed after each step, from 0.

    Returns:
        float64 ``(B, steps)``, ``NaN`` where a step perturbs no cell.
    """
    flat = saliency.reshape(len(saliency), -1)
    ordered = -np.sort(-flat, axis=1, kind="stable")  # most salient first
    sums = np.concatenate([np.zeros((len(flat), 1)), np.cumsum(ordered, axis=1)], axis=1)
    sizes = np.diff(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums[:, counts[1:]] - sums[:, counts[:-1]]) / sizes
    return np.where(sizes > 0, means, np.nan)


def curve_correlation(curves, saliency, counts, mode):
    """DC (``mode="deletion"``) or IC (``"insertion"``) of curves with their start point.

    Args:
        curves: ``(B, steps + 1)`` scores, ``t = 0`` first.
        saliency: ``(B, h, w)`` maps on the grid.
        counts: ``(steps + 1,)`` cells perturbed after each step.
        mode: ``"deletion"`` or ``"insertion"``.

    Returns:
        float64 ``(B,)`` Pearson correlations (``NaN`` where undefined).
    """
    change = np.diff(curves, axis=1)
    if mode == "deletion":
        change = -change
    weights = step_saliency(saliency, counts)
    keep = np.isfinite(weights[0]) if len(weights) else np.zeros(0, bool)
    change, weights = change[:, keep], weights[:, keep]
    if change.shape[1] < 2:
        return np.full(len(curves), np.nan)
    # A constant map gives means equal up to rounding: NaN, not a
    # correlation of rounding noise.
    magnitude = np.abs(saliency.reshape(len(saliency), -1)).max(axis=1)
    constant = np.ptp(weights, axis=1) <= 1e-9 * magnitude
    change = change - change.mean(axis=1, keepdims=True)
    weights = weights - weights.mean(axis=1, keepdims=True)
    norm = np.sqrt((change * change).sum(axis=1) * (weights * weights).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (change * weights).sum(axis=1) / norm
    return np.where((norm > 0) & ~constant, result, np.nan)


def curve_area(curves):
    """Trapezoid area of curves whose points spread evenly over ``[0, 1]``.

    The AUC of ``deletion_auc`` and ``insertion_auc``: the mean over ``t``
    of ``(curve_t + curve_(t+1)) / 2`` (one point: the point itself). With
    the curves of ``deletion_correlation(..., return_curves=True)``,
    ``curve_area(curves[:, 1:])`` is ``deletion_auc`` (the authors' curve
    has no ``t = 0`` point), so one run gives both.

    Args:
        curves: ``(B, n)`` array, ``n >= 1``.

    Returns:
        float64 ``(B,)``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> keras_brnpa.metrics.curve_area(np.array([[1.0, 0.5, 0.0]])).tolist()
    [0.5]
    """
    curves = np.asarray(curves, np.float64)
    if curves.ndim != 2 or curves.shape[1] == 0:
        raise invalid("curves", f"<array of shape {curves.shape}>", "a (B, n) array, n >= 1")
    return area(curves)


@empty_batch_safe
def deletion_correlation(
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
):
    """DC: correlation of the score's drop with the saliency removed (higher is better).

    Along the deletion curve of ``deletion_auc`` with its start point (the
    intact image), the Pearson correlation between ``s_(t-1) - s_t`` and
    the mean saliency of the cells removed at step ``t`` (Gomez et al.
    2022). See the module docstring for the exact definition.

    Args:
        model, images, saliency, steps, batch_size, from_logits,
        class_index, return_curves, max_cells: as for ``deletion_auc``
            (described once in ``keras_brnpa.metrics.faithfulness``).
        baseline: value of removed pixels, as for ``deletion_auc``.

    Returns:
        NumPy ``(B,)`` correlations in ``[-1, 1]`` (``NaN`` where
        undefined); with ``return_curves=True`` a tuple ``(dc, curves)``,
        ``curves`` of shape ``(B, steps + 1)``, ``t = 0`` the intact image
        (``curve_area(curves[:, 1:])`` is ``deletion_auc``).

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((32, 32, 3)),
    ...     keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    >>> images = np.random.default_rng(0).random((2, 32, 32, 3), "float32")
    >>> saliency = np.random.default_rng(1).random((2, 4, 4))
    >>> dc, curves = keras_brnpa.metrics.deletion_correlation(
    ...     model, images, saliency, steps=8, return_curves=True)
    >>> dc.shape, curves.shape
    ((2,), (2, 9))
    >>> auc = keras_brnpa.metrics.deletion_auc(model, images, saliency, steps=8)
    >>> bool(np.allclose(keras_brnpa.metrics.curve_area(curves[:, 1:]), auc))
    True
    """
    call = _Call(
        model, images, saliency, steps, max_cells, from_logits, return_curves, True,
        class_index, batch_size,
    )
    curves = call.curves(fill(baseline, call.images), "deletion")
    correlation = curve_correlation(curves, call.saliency, call.counts(), "deletion")
    return (correlation, curves) if call.return_curves else correlation


@empty_batch_safe
def insertion_correlation(
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
):
    """IC: correlation of the score's rise with the saliency restored (higher is better).

    Along the insertion curve of ``insertion_auc`` with its start point
    (the blurred image, or ``baseline``), the Pearson correlation between
    ``s_t - s_(t-1)`` and the mean saliency of the cells restored at step
    ``t`` (Gomez et al. 2022). See the module docstring.

    Args:
        model, images, saliency, steps, batch_size, from_logits,
        class_index, return_curves, max_cells: as for ``insertion_auc``
            (described once in ``keras_brnpa.metrics.faithfulness``).
        blur_kernel_size, baseline: the start image, as for
            ``insertion_auc``.

    Returns:
        NumPy ``(B,)`` correlations (``NaN`` where undefined); with
        ``return_curves=True`` a tuple ``(ic, curves)``, ``curves`` of shape
        ``(B, steps + 1)``, ``t = 0`` the start image
        (``curve_area(curves[:, 1:])`` is ``insertion_auc``).

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((32, 32, 3)),
    ...     keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    >>> images = np.random.default_rng(0).random((2, 32, 32, 3), "float32")
    >>> saliency = np.random.default_rng(1).random((2, 4, 4))
    >>> keras_brnpa.metrics.insertion_correlation(model, images, saliency, steps=8).shape
    (2,)
    """
    call = _Call(
        model, images, saliency, steps, max_cells, from_logits, return_curves, True,
        class_index, batch_size,
    )
    start = insertion_start(baseline, blur_kernel_size, call.images)
    curves = call.curves(start, "insertion")
    correlation = curve_correlation(curves, call.saliency, call.counts(), "insertion")
    return (correlation, curves) if call.return_curves else correlation
