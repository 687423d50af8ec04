"""Sparsity of explanation maps (the paper's metric, DESIGN.md 1.4).

- ``sparsity_density``: the paper's sparsity exactly as the authors
  compute it (all part maps, times the normalised feature norm; lower =
  sparser);
- ``sparsity``: the same ratio per map, inverted so that higher means
  sparser.

Both take NumPy arrays (backend tensors are accepted and converted) and
return one value per image (or per map).
"""

import numpy as np

from keras_brnpa._checks import describe
from keras_brnpa._checks import invalid
from keras_brnpa._checks import to_numpy


def sparsity(maps, feature_norm=None):
    """Sparsity of explanation maps (higher = sparser), the paper's metric.

    For each map ``a`` (negative values clipped to 0) and, when given, the
    feature norm ``n`` of the same image normalised to ``[0, 1]``::

        m = a * n / max(n)
        sparsity = 1 / mean(m / max(m))  =  max(m) / mean(m)

    The paper defines the spatial mean of the map divided by its maximum,
    a "density" where lower is sparser, averaged over all the part maps
    (``sparsity_density``, the authors' number); this function returns its
    inverse, per map, so that **higher means sparser**. The value lies in ``[1, h * w]``:
    1 for a uniform map, ``h * w`` for a map with a single non-zero cell.
    Multiplying by the feature norm down-weights attention on locations the
    network barely activates (the paper's explanation map is part 1 times
    the feature norm); the scale of ``feature_norm`` does not matter. An
    all-zero map (or product) has no sparsity: its value is ``nan``.

    Args:
        maps: ``(B, h, w)`` maps, or ``(B, h, w, P)`` for ``P`` parts (each
            part is scored on its own).
        feature_norm: ``None`` or ``(B, h, w)`` non-negative feature norms
            (``attention_model(model)(images)["feature_norm"]``).

    Returns:
        NumPy ``(B,)`` (or ``(B, P)``) float64 array.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> peaked = np.zeros((1, 4, 4)); peaked[0, 1, 2] = 1.0
    >>> keras_brnpa.metrics.sparsity(np.concatenate([peaked, np.ones((1, 4, 4))]))
    array([16.,  1.])
    """
    maps = to_numpy("maps", maps)
    if maps.ndim not in (3, 4) or 0 in maps.shape or not np.issubdtype(maps.dtype, np.number):
        raise invalid(
            "maps", describe(maps), "a numeric (batch, height, width) or (batch, height, width, parts) array"
        )
    maps = np.clip(maps.astype(np.float64), 0, None)
    if maps.ndim == 3:
        maps = maps[..., None]
        squeeze = True
    else:
        squeeze = False
    if not np.all(np.isfinite(maps)):
        raise invalid("maps", describe(maps), "finite values (no NaN or inf)")
    if feature_norm is not None:
        maps = maps * _normalised_norm(feature_norm, maps.shape[:3])[..., None]
    peak = maps.max(axis=(1, 2))
    mean = maps.mean(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(peak > 0, peak / np.where(mean > 0, mean, 1.0), np.nan)
    return result[:, 0] if squeeze else result


def sparsity_density(part_maps, feature_norm=None, epsilon=0.0):
    """The authors' sparsity of a model's part maps (lower = sparser).

    The BR-NPA paper's sparsity metric, as the authors' ``code/metrics.py``
    computes it. For each image, each part map ``a_k`` (negative values
    clipped to 0) is multiplied by the feature norm ``n`` of the image
    divided by its maximum, and scored by its mean over its maximum; the
    value is the mean over **all** the parts::

        m_k       = a_k * n / max(n)
        density_k = mean(m_k) / (max(m_k) + epsilon)
        density   = mean_k density_k

    A "density" in ``(0, 1]``: 1 for uniform maps, ``1 / (h * w)`` for
    maps with a single non-zero cell; **lower means sparser**. The authors
    report its mean over the test set. ``sparsity`` gives the per-map
    inverse (higher = sparser) instead. For a plain CNN (no part maps) the
    authors score the feature norm itself: ``sparsity_density(norm)``,
    with ``feature_norm=None``.

    Differences with the authors' code, both documented choices: they add
    ``1e-5`` to ``max(m_k)``, which lowers the value of maps whose maximum
    is small (BR-NPA maps sum to 1, so on a 56x56 map their maximum is
    about 1e-3 and the bias about 1%); here ``epsilon=0.0`` by default,
    ``epsilon=1e-5`` reproduces their numbers. A map whose product ``m_k``
    is 0 everywhere (a dead B-CNN map, or a zero feature norm) has density
    0, as in their code (``0 / (0 + 1e-5)``): it counts as perfectly
    sparse, so check for dead maps (``sparsity`` gives ``nan`` for them).

    Args:
        part_maps: ``(B, h, w, P)`` part maps (``attention_maps``), or
            ``(B, h, w)`` for one map per image.
        feature_norm: ``None`` (no weighting) or ``(B, h, w)`` non-negative
            feature norms (``attention_model(model)(images)["feature_norm"]``);
            only its shape per image matters, not its scale.
        epsilon: float >= 0 added to each ``max(m_k)`` (the authors' code:
            ``1e-5``).

    Returns:
        NumPy ``(B,)`` float64 array, one density per image.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> peaked = np.zeros((1, 4, 4, 1)); peaked[0, 1, 2, 0] = 1.0
    >>> maps = np.concatenate([peaked, np.ones((1, 4, 4, 1))], axis=-1)
    >>> keras_brnpa.metrics.sparsity_density(maps)  # (1/16 + 1) / 2
    array([0.53125])
    >>> norm = np.zeros((1, 4, 4)); norm[0, 1, 2] = 5.0  # only cell (1, 2) is active
    >>> keras_brnpa.metrics.sparsity_density(maps, norm)
    array([0.0625])
    """
    maps = to_numpy("part_maps", part_maps)
    if maps.ndim not in (3, 4) or 0 in maps.shape or not np.issubdtype(maps.dtype, np.number):
        raise invalid(
            "part_maps",
            describe(maps),
            "a numeric (batch, height, width, parts) or (batch, height, width) array",
        )
    maps = maps.astype(np.float64)
    if maps.ndim == 3:
        maps = maps[..., None]
    if not np.all(np.isfinite(maps)):
        raise invalid("part_maps", describe(maps), "finite values (no NaN or inf)")
    if (
        isinstance(epsilon, (bool, np.bool_))
        or not isinstance(epsilon, (int, float, np.integer, np.floating))
        or not np.isfinite(epsilon)
        or epsilon < 0
    ):
        raise invalid("epsilon", epsilon, "a finite float >= 0")
    maps = np.clip(maps, 0, None)
    if feature_norm is not None:
        maps = maps * _normalised_norm(feature_norm, maps.shape[:3])[..., None]
    peak = maps.max(axis=(1, 2)) + float(epsilon)
    mean = maps.mean(axis=(1, 2))
    density = np.divide(mean, peak, out=np.zeros_like(mean), where=peak > 0)
    return density.mean(axis=-1)


def _normalised_norm(feature_norm, shape):
    """``feature_norm / its max`` per image (0 where the max is 0), checked."""
    norm = to_numpy("feature_norm", feature_norm)
    if norm.shape != tuple(shape) or not np.issubdtype(norm.dtype, np.number):
        raise invalid(
            "feature_norm",
            describe(norm),
            f"None or a numeric array of shape {tuple(shape)} (batch, height, width) "
            "matching the maps",
        )
    norm = norm.astype(np.float64)
    if not np.all(np.isfinite(norm)) or np.any(norm < 0):
        raise invalid("feature_norm", describe(norm), "finite non-negative values")
    top = norm.max(axis=(1, 2), keepdims=True)
    return np.divide(norm, top, out=np.zeros_like(norm), where=top > 0)
