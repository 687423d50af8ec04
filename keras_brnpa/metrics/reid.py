"""Re-identification retrieval metrics: CMC rank-k and mAP (Market-1501 protocol)."""

import numbers

import numpy as np

from keras_brnpa._checks import describe
from keras_brnpa._checks import invalid
from keras_brnpa._checks import to_numpy

#: Identity of the gallery's junk images in Market-1501 (ignored when ranking).
JUNK_ID = -1
AP_MODES = ("market1501", "standard")


def _features(name, value):
    array = to_numpy(name, value)
    if array.ndim != 2 or 0 in array.shape or not np.issubdtype(array.dtype, np.number):
        raise invalid(name, describe(array), "a non-empty numeric 2-D array (items, dim)")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise invalid(name, describe(array), "finite values (no NaN or inf)")
    return array


def _labels(name, value, length):
    array = to_numpy(name, value)
    if array.shape != (length,) or not np.issubdtype(array.dtype, np.integer):
        raise invalid(name, describe(array), f"an integer array of shape ({length},)")
    return array.astype(np.int64)


def _check_ranks(ranks):
    if isinstance(ranks, numbers.Integral) and not isinstance(ranks, bool):
        ranks = (ranks,)
    if (
        not isinstance(ranks, (tuple, list))
        or not ranks
        or any(isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 1 for r in ranks)
    ):
        raise invalid("ranks", ranks, "a non-empty sequence of integers >= 1")
    return tuple(int(r) for r in ranks)


def _normalize(features):
    norm = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norm, 1e-12)


def cmc_map(
    query_features,
    query_ids,
    gallery_features,
    gallery_ids,
    query_cameras=None,
    gallery_cameras=None,
    ranks=(1, 5, 10),
    batch_size=256,
    ap="market1501",
):
    """Rank-k accuracy (CMC) and mean average precision of a re-ID model.

    The Market-1501 evaluation protocol, on cosine distances between the
    L2-normalised features (the features are normalised here, so raw
    embeddings work too). For every query the gallery is sorted by
    increasing distance (ties keep gallery order), then:

    - gallery entries with identity ``-1`` (junk) are removed;
    - gallery entries with the same identity **and** the same camera as the
      query are removed (the same person seen by the same camera is too
      easy); without cameras none is removed;
    - the remaining entries with the query's identity are the matches;
      distractors (identity ``0`` in Market-1501) simply never match;
    - a query without any match left is skipped (not counted).

    ``rank-k`` is the share of queries with a match among the first ``k``
    entries; ``mAP`` is the mean of the queries' average precisions. The
    queries are processed ``batch_size`` at a time, so the memory is
    ``O(batch_size * len(gallery))``: a 20k-image gallery fits easily.

    Args:
        query_features: ``(Q, D)`` array (or tensor) of query embeddings.
        query_ids: ``(Q,)`` integer identities.
        gallery_features: ``(G, D)`` gallery embeddings.
        gallery_ids: ``(G,)`` integer identities (``-1`` = junk).
        query_cameras, gallery_cameras: ``None`` (both) or ``(Q,)`` and
            ``(G,)`` integer camera ids.
        ranks: the ``k`` of the reported ``rank-k`` values.
        batch_size: queries ranked at once.
        ap: ``"market1501"`` (default): the benchmark's own average
            precision (``compute_AP.m``, also the DG-Net/BR-NPA evaluation),
            a trapezoid rule between the precisions before and at each
            match; ``"standard"``: the mean of the precisions at the
            matches (scikit-learn's ``average_precision_score``, torchreid).

    Returns:
        A dict ``{"rank-1": float, "rank-5": ..., "mAP": float}`` (one
        ``rank-k`` per entry of ``ranks``), values in ``[0, 1]``; ``NaN``
        everywhere if no query has a match.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> gallery = np.eye(3)              # identities 0, 1, 2 in camera 1
    >>> query = np.array([[1.0, 0.1, 0.0], [0.0, 0.2, 1.0]])
    >>> result = keras_brnpa.metrics.cmc_map(
    ...     query, [0, 2], gallery, [0, 1, 2], query_cameras=[0, 0],
    ...     gallery_cameras=[1, 1, 1], ranks=(1,))
    >>> {k: round(v, 3) for k, v in result.items()}
    {'rank-1': 1.0, 'mAP': 1.0}
    """
    query = _features("query_features", query_features)
    gallery = _features("gallery_features", gallery_features)
    if query.shape[1] != gallery.shape[1]:
        raise invalid(
            "gallery_features",
            describe(gallery),
            f"the same feature size as query_features ({query.shape[1]})",
        )
    query_ids = _labels("query_ids", query_ids, len(query))
    gallery_ids = _labels("gallery_ids", gallery_ids, len(gallery))
    if (query_cameras is None) != (gallery_cameras is None):
        raise invalid(
            "query_cameras" if query_cameras is None else "gallery_cameras",
            None,
            "cameras for both the queries and the gallery, or for neither",
        )
    if query_cameras is not None:
        query_cameras = _labels("query_cameras", query_cameras, len(query))
        gallery_cameras = _labels("gallery_cameras", gallery_cameras, len(gallery))
    ranks = _check_ranks(ranks)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise invalid("batch_size", batch_size, "an integer >= 1")
    if ap not in AP_MODES:
        raise invalid("ap", ap, "one of " + ", ".join(repr(m) for m in AP_MODES))

    query, gallery = _normalize(query), _normalize(gallery)
    hits_at = np.zeros(len(ranks))
    ap_sum, valid = 0.0, 0
    rank_array = np.asarray(ranks)
    for start in range(0, len(query), int(batch_size)):
        stop = min(start + int(batch_size), len(query))
        distance = 1.0 - query[start:stop] @ gallery.T  # (b, G) cosine distance
        order = np.argsort(distance, axis=1, kind="stable")
        ids = gallery_ids[order]  # (b, G) identities in ranked order
        same = ids == query_ids[start:stop, None]
        junk = ids == JUNK_ID
        if query_cameras is not None:
            junk |= same & (gallery_cameras[order] == query_cameras[start:stop, None])
        for row in range(stop - start):
            matches = same[row][~junk[row]]  # ranked, junk removed
            positions = np.flatnonzero(matches)  # 0-based ranks of the matches
            if len(positions) == 0:
                continue
            valid += 1
            hits_at += positions[0] < rank_array
            found = np.arange(1, len(positions) + 1)
            precision = found / (positions + 1)
            if ap == "standard":
                ap_sum += precision.mean()
            else:
                before = np.where(positions > 0, (found - 1) / np.maximum(positions, 1), 1.0)
                ap_sum += np.mean((before + precision) / 2)
    if valid == 0:
        result = {f"rank-{k}": float("nan") for k in ranks}
        result["mAP"] = float("nan")
        return result
    result = {f"rank-{k}": float(h / valid) for k, h in zip(ranks, hits_at)}
    result["mAP"] = float(ap_sum / valid)
    return result
