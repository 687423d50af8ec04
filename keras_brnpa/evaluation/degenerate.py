"""Degenerate maps: constant maps (all zero included) that rank no pixel.

Deletion, insertion and the pointing game order the cells of a map; a
constant map gives them no order, so its scores measure how ties are
broken, not an explanation. ``compare_explanations`` counts them per row
(``degenerate``), warns once per row and marks them on the gallery.
"""

import numpy as np

#: A map is constant when max - min <= RELATIVE * max |value|.
RELATIVE = 1e-6

#: Why Grad-CAM gives all-zero maps on a model whose head is BR-NPA attention,
#: checked by finite differences on a tiny BR-NPA classifier trained on the
#: synthetic data (docs/trusting.md, "Maps that rank nothing").
GRADCAM_ON_BRNPA = (
    "On a model with a BR-NPA head this is expected of Grad-CAM, not a bug of the gradient: "
    "the gradient of the class score with respect to the last feature map is genuine (finite "
    "differences agree with it to 1e-4 and it is not zero), but Grad-CAM's channel weights "
    "(its average over the map) are mostly negative, so the weighted sum of the channels is "
    "negative at every location and ReLU makes the map 0. Use the model's own maps (method "
    "'brnpa') or a perturbation method (RISE, Score-CAM) for such a model."
)


def degenerate_maps(maps):
    """Which maps are degenerate: constant (all zero included) or not finite.

    A map is constant when ``max - min <= 1e-6 * max |value|`` (so an
    all-zero map is); a map holding a NaN or an infinity is degenerate too.

    Args:
        maps: ``(B, h, w)`` array (or ``(B, ...)``: each item is one map).

    Returns:
        ``(B,)`` bool array.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> maps = np.stack([np.zeros((2, 2)), np.full((2, 2), 3.0), np.eye(2)])
    >>> keras_brnpa.evaluation.degenerate_maps(maps).tolist()
    [True, True, False]
    """
    maps = np.asarray(maps, "float64")
    if maps.ndim < 2:
        from keras_brnpa._checks import invalid

        raise invalid("maps", f"<array of shape {maps.shape}>", "an array (B, h, w)")
    flat = maps.reshape(len(maps), -1)
    if flat.shape[1] == 0:
        return np.ones(len(maps), bool)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(flat).all(axis=1)
        high, low = flat.max(axis=1), flat.min(axis=1)
        scale = np.maximum(np.abs(high), np.abs(low))
        constant = (high - low) <= RELATIVE * scale
    return ~finite | constant


def warning_message(label, explainer, count, total, head=None):
    """The one warning of a row with degenerate maps (its label, method, count, cause)."""
    text = (
        f"compare_explanations: {count} of {total} maps of {label!r} ({explainer}) are "
        "degenerate (constant or all zero): they rank no pixel, so their DAUC, IAUC and "
        "pointing game measure how ties are broken, not an explanation (column 'degenerate')."
    )
    if explainer in ("gradcam", "gradcam++") and head == "brnpa":
        text += " " + GRADCAM_ON_BRNPA
    return text
