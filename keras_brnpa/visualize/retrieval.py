"""Retrieval pictures: a gallery of queries and results, and one query
beside one match part by part with the similarity of each part."""

import numpy as np

from keras_brnpa._checks import invalid
from keras_brnpa._checks import to_numpy
from keras_brnpa.visualize._common import PART_COLORS
from keras_brnpa.visualize._common import _image_to_float
from keras_brnpa.visualize._common import _check_maps
from keras_brnpa.visualize._common import _check_path
from keras_brnpa.visualize._common import _figure
from keras_brnpa.visualize.maps import overlay


def save_retrieval_gallery(path, queries, results, query_maps=None, result_maps=None,
                           correct=None, query_titles=None, alpha=0.6, cell_size=1.4, dpi=100):
    """Write a PNG of retrievals: one row per query, its top-k results after it.

    The first column is the query, the next ``k`` its ranked results
    (re-identification: the nearest gallery images; few-shot: the nearest
    support images). With maps, every picture is drawn with ``overlay``
    (part maps in one colour per part); with ``correct``, each result gets
    a green (right identity / class) or red (wrong) frame.

    Args:
        path: output file, ending in ``.png``.
        queries: ``(Q, H, W, C)`` query images.
        results: ``(Q, k, H, W, C)`` retrieved images, best first.
        query_maps: ``None`` or ``(Q, h, w[, P])`` maps of the queries.
        result_maps: ``None`` or ``(Q, k, h, w[, P])`` maps of the results.
        correct: ``None`` or a boolean array ``(Q, k)``.
        query_titles: ``None`` or ``Q`` labels written on the queries.
        alpha, cell_size, dpi: as for ``save_gallery``.

    Returns:
        ``path``.

    Example:

    >>> import os, tempfile, numpy as np, keras_brnpa
    >>> rng = np.random.default_rng(0)
    >>> path = os.path.join(tempfile.mkdtemp(), "retrieval.png")
    >>> keras_brnpa.visualize.save_retrieval_gallery(
    ...     path, rng.random((2, 32, 32, 3)), rng.random((2, 3, 32, 32, 3)),
    ...     query_maps=rng.random((2, 4, 4, 3)), result_maps=rng.random((2, 3, 4, 4, 3)),
    ...     correct=np.array([[True, False, True], [False, False, True]])) == path
    True
    """
    queries = to_numpy("queries", queries)
    results = to_numpy("results", results)
    if queries.ndim != 4 or 0 in queries.shape:
        raise invalid("queries", f"<array of shape {queries.shape}>", "an array (Q, H, W, C)")
    n = len(queries)
    if results.ndim != 5 or len(results) != n or 0 in results.shape:
        raise invalid("results", f"<array of shape {results.shape}>", f"an array ({n}, k, H, W, C)")
    k = results.shape[1]
    if query_maps is not None:
        query_maps = to_numpy("query_maps", query_maps)
        if query_maps.ndim not in (3, 4) or len(query_maps) != n:
            raise invalid("query_maps", f"<array of shape {query_maps.shape}>",
                          f"None or maps ({n}, h, w[, P])")
    if result_maps is not None:
        result_maps = to_numpy("result_maps", result_maps)
        if result_maps.ndim not in (4, 5) or result_maps.shape[:2] != (n, k):
            raise invalid("result_maps", f"<array of shape {result_maps.shape}>",
                          f"None or maps ({n}, {k}, h, w[, P])")
    if correct is not None:
        correct = to_numpy("correct", correct)
        if correct.shape != (n, k):
            raise invalid("correct", f"<array of shape {correct.shape}>", f"None or booleans ({n}, {k})")
    if query_titles is not None and (isinstance(query_titles, str) or len(query_titles) != n):
        raise invalid("query_titles", query_titles, f"None or a list of {n} strings")
    path = _check_path(path)

    def picture(image, maps):
        return _image_to_float(image) if maps is None else overlay(image, maps, alpha=alpha)

    height, width = queries.shape[1:3]
    aspect = height / width
    figure = _figure((1 + k) * cell_size + 0.1, n * cell_size * aspect, dpi)
    grid = figure.add_gridspec(n, k + 1, left=0.0, right=1.0, bottom=0.0, top=1.0,
                               wspace=0.08, hspace=0.04)
    fontsize = max(5.0, 4.0 * cell_size)
    box = dict(facecolor="black", alpha=0.6, pad=1.0, linewidth=0)
    for row in range(n):
        for col in range(k + 1):
            axis = figure.add_subplot(grid[row, col])
            if col == 0:
                axis.imshow(picture(queries[row], None if query_maps is None else query_maps[row]))
                label = "query" if query_titles is None else str(query_titles[row])
                axis.text(0.03, 0.97, label, transform=axis.transAxes, va="top", ha="left",
                          fontsize=fontsize, color="white", bbox=box)
            else:
                maps = None if result_maps is None else result_maps[row, col - 1]
                axis.imshow(picture(results[row, col - 1], maps))
                if correct is not None:
                    colour = (0.1, 0.8, 0.1) if correct[row, col - 1] else (0.9, 0.1, 0.1)
                    for spine in axis.spines.values():
                        spine.set_edgecolor(colour)
                        spine.set_linewidth(3)
            axis.set_xticks([])
            axis.set_yticks([])
    figure.savefig(path, dpi=dpi, format="png")
    return path


def _part_vectors(name, vectors, parts):
    """``(P, D)`` float64 part vectors from ``(P * D,)`` or ``(P, D)``."""
    vectors = to_numpy(name, vectors).astype("float64")
    if vectors.ndim == 1 and vectors.size % parts == 0 and vectors.size:
        vectors = vectors.reshape(parts, -1)
    if vectors.ndim != 2 or vectors.shape[0] != parts or 0 in vectors.shape:
        raise invalid(name, f"<array of shape {vectors.shape}>",
                      f"the {parts} part vectors, part 1 first: ({parts} * D,) or ({parts}, D)")
    if not np.all(np.isfinite(vectors)):
        raise invalid(name, "<array with NaN or inf>", "finite values")
    return vectors


def _cosine(a, b):
    """Cosine similarity of the last axes; 0 where a vector is 0."""
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.where(norms > 0, np.sum(a * b, axis=-1) / np.where(norms > 0, norms, 1.0), 0.0)


def save_retrieval(path, query, match, query_maps, match_maps, query_vectors, match_vectors,
                   titles=("query", "match"), alpha=0.6, cell_size=2.0, dpi=100):
    """Write a PNG explaining one retrieval part by part, with each part's similarity.

    For a query and one retrieved (gallery) image of a part-based
    embedding (``build_embedding_model`` with a BR-NPA or B-CNN head): a
    first row with both images and all their part maps (one colour per
    part, ``PART_COLORS``) and the cosine similarity of the whole vectors,
    then one row per part ``k``: the query's part-``k`` map, the cosine
    similarity of the two part-``k`` vectors written between them, and the
    match's part-``k`` map. A part with a high similarity is a region that
    the two images share; a low one, where they differ.

    The vectors are split into ``P`` equal parts, ``P`` being the maps'
    last axis (part 1 first, the order of ``BRNPAAttention``'s output).
    The embedding of ``build_embedding_model`` (without a projection) is
    the part vectors concatenated and divided by one norm, and a batch-norm
    neck scales each dimension: the cosine of each part is the same
    whether the embedding or the head's output is given, up to the neck.

    Args:
        path: output file ending in ``.png``.
        query, match: ``(H, W, 3)`` (or gray) images.
        query_maps, match_maps: part maps ``(h, w, P)`` of each image
            (``keras_brnpa.explain.attention_maps``).
        query_vectors, match_vectors: the part vectors of each image,
            ``(P * D,)`` (an embedding) or ``(P, D)``.
        titles: the labels of the two columns.
        alpha: as for ``overlay``.
        cell_size: inches per picture.
        dpi: resolution of the PNG.

    Returns:
        ``path``.

    Example:

    >>> import os, tempfile, numpy as np, keras_brnpa
    >>> rng = np.random.default_rng(0)
    >>> path = os.path.join(tempfile.mkdtemp(), "pair.png")
    >>> keras_brnpa.visualize.save_retrieval(
    ...     path, rng.random((32, 32, 3)), rng.random((32, 32, 3)),
    ...     rng.random((4, 4, 3)), rng.random((4, 4, 3)),
    ...     rng.random(3 * 8), rng.random(3 * 8)) == path
    True
    """
    pictures = []
    for name, image in (("query", query), ("match", match)):
        pictures.append(_image_to_float(image, name))
    maps = []
    for name, value in (("query_maps", query_maps), ("match_maps", match_maps)):
        maps.append(_check_maps(name, value, (3,), "part maps (h, w, P)"))
    parts = maps[0].shape[-1]
    if maps[1].shape[-1] != parts:
        raise invalid("match_maps", f"<array of shape {maps[1].shape}>",
                      f"part maps (h, w, {parts}), as many parts as query_maps")
    vectors = [_part_vectors(name, value, parts) for name, value in
               (("query_vectors", query_vectors), ("match_vectors", match_vectors))]
    if vectors[0].shape != vectors[1].shape:
        raise invalid("match_vectors", f"<array of shape {vectors[1].shape}>",
                      f"part vectors of the query's shape {vectors[0].shape}")
    if isinstance(titles, str) or len(titles) != 2:
        raise invalid("titles", titles, "two labels (query, match)")
    path = _check_path(path)
    similarity = _cosine(vectors[0], vectors[1])  # (P,)
    whole = float(_cosine(vectors[0].reshape(-1), vectors[1].reshape(-1)))

    aspect = pictures[0].shape[0] / pictures[0].shape[1]
    figure = _figure(2.7 * cell_size, (parts + 1) * cell_size * aspect, dpi)
    grid = figure.add_gridspec(parts + 1, 3, width_ratios=(1.0, 0.7, 1.0), left=0.0,
                               right=1.0, bottom=0.0, top=1.0, wspace=0.04, hspace=0.06)
    fontsize = max(6.0, 4.5 * cell_size)
    box = dict(facecolor="black", alpha=0.6, pad=1.0, linewidth=0)
    for row in range(parts + 1):
        for col, side in ((0, 0), (2, 1)):
            if row == 0:
                shown = maps[side]
            else:  # only part `row`, in its own colour
                shown = np.zeros_like(maps[side])
                shown[..., row - 1] = maps[side][..., row - 1]
            axis = figure.add_subplot(grid[row, col])
            axis.imshow(overlay(pictures[side], shown, alpha=alpha))
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.text(0.03, 0.97, str(titles[side]), transform=axis.transAxes, va="top",
                          ha="left", fontsize=fontsize, color="white", bbox=box)
        axis = figure.add_subplot(grid[row, 1])
        axis.set_axis_off()
        if row == 0:
            label, colour = f"all parts\ncosine\n{whole:.3f}", "black"
        else:
            label = f"part {row}\ncosine\n{similarity[row - 1]:.3f}"
            colour = PART_COLORS[(row - 1) % len(PART_COLORS)] * 0.8
        axis.text(0.5, 0.5, label, transform=axis.transAxes, va="center", ha="center",
                  fontsize=fontsize, color=colour)
    figure.savefig(path, dpi=dpi, format="png")
    return path
