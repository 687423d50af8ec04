"""Deletion and insertion curves in one plot."""

from collections.abc import Mapping

import numpy as np

from keras_brnpa._checks import invalid
from keras_brnpa._checks import to_numpy
from keras_brnpa.visualize._common import _check_path
from keras_brnpa.visualize._common import _figure


def _auc(curves):
    """Trapezoid area over [0, 1] of (B, points) curves, per row (one point: itself,
    as ``keras_brnpa.metrics`` scores a one-step curve)."""
    if curves.shape[1] == 1:
        return curves[:, 0].copy()
    return ((curves[:, 1:] + curves[:, :-1]) / 2.0).mean(axis=1)


def _as_curves(name, curves):
    curves = to_numpy("curves_by_method", curves).astype("float64")
    if curves.ndim == 1:
        curves = curves[None]
    if curves.ndim != 2 or curves.shape[1] < 1:
        raise invalid(
            "curves_by_method",
            f"<{name!r}: array of shape {curves.shape}>",
            "curves of shape (points,) or (B, points) with at least one point",
        )
    return curves


def plot_curves(path, curves_by_method, title=None, xlabel="fraction of the image perturbed",
                ylabel="probability of the predicted class"):
    """Plot deletion/insertion curves (mean over images, +- one std).

    Each method's curve is drawn against the perturbed fraction
    ``t / steps`` in ``[0, 1]`` and labelled with its mean area under the
    curve (the trapezoid rule, as ``keras_brnpa.metrics`` computes DAUC and
    IAUC). With several images per method a shaded band shows the mean
    plus or minus one standard deviation; a legend line says so.

    Args:
        path: output file ending in ``.png``.
        curves_by_method: dict ``{method: curves}`` with curves
            ``(B, points)`` (or one curve ``(points,)``; one point, the
            curve of ``steps=1``, is drawn as a marker at 1), drawn in one
            panel; or a dict of such dicts, ``{"deletion": {...},
            "insertion": {...}}``, drawn one panel per key.
        title: optional figure title.
        xlabel, ylabel: axis labels.

    Returns:
        ``path``.

    Example:

    >>> import os, tempfile, numpy as np, keras_brnpa
    >>> steps = np.linspace(1.0, 0.0, 11)
    >>> curves = {"deletion": {"brnpa": np.stack([steps, steps ** 2])},
    ...           "insertion": {"brnpa": 1.0 - steps}}
    >>> path = os.path.join(tempfile.mkdtemp(), "curves.png")
    >>> keras_brnpa.visualize.plot_curves(path, curves) == path
    True
    """
    if not isinstance(curves_by_method, Mapping) or not curves_by_method:
        raise invalid("curves_by_method", curves_by_method, "a non-empty dict {method: curves}")
    nested = all(isinstance(v, Mapping) for v in curves_by_method.values())
    panels = dict(curves_by_method) if nested else {None: curves_by_method}
    for panel, methods in panels.items():
        if not methods:
            raise invalid("curves_by_method", curves_by_method, "non-empty dicts of curves")
        panels[panel] = {str(name): _as_curves(name, c) for name, c in methods.items()}
    path = _check_path(path)

    from matplotlib.patches import Patch

    figure = _figure(5.0 * len(panels), 4.0, 100)
    for i, (panel, methods) in enumerate(panels.items()):
        axis = figure.add_subplot(1, len(panels), i + 1)
        banded = 0
        for name, curves in methods.items():
            # One point (steps=1): the score after the single step, at fraction 1.
            x = np.linspace(0.0, 1.0, curves.shape[1]) if curves.shape[1] > 1 else np.ones(1)
            mean = curves.mean(axis=0)
            (line,) = axis.plot(x, mean, marker="o" if len(x) == 1 else None,
                                label=f"{name} (AUC {_auc(curves).mean():.3f})")
            if len(curves) > 1 and len(x) > 1:
                std = curves.std(axis=0)
                low, high = curves.min(), curves.max()  # the band stays within the data
                axis.fill_between(x, np.clip(mean - std, low, high), np.clip(mean + std, low, high),
                                  color=line.get_color(), alpha=0.15)
                banded = max(banded, len(curves))
        axis.set_xlim(0.0, 1.0)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
        handles, _ = axis.get_legend_handles_labels()
        if banded:  # say what the shaded bands are
            handles.append(Patch(color="grey", alpha=0.3,
                                 label=f"band: mean +- 1 std over the images (n={banded})"))
        axis.legend(handles=handles, fontsize=8)
        if panel is not None:
            axis.set_title(str(panel))
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    return path
