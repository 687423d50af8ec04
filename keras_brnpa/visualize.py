"""Pictures of explanations: overlays, galleries and deletion/insertion curves.

Everything is drawn with matplotlib's Agg canvas (no display, no global
pyplot state) and written as PNG. Maps are the NumPy arrays returned by
``keras_brnpa.explain``; curves are those returned by
``keras_brnpa.metrics`` with ``return_curves=True``.
"""

import os
import textwrap
from collections.abc import Mapping

import numpy as np

from keras_brnpa._image import resize_maps as resize
from keras_brnpa._checks import invalid
from keras_brnpa._checks import to_numpy

#: One colour per part (RGB in [0, 1]): part 1 red, part 2 green, part 3
#: blue, then yellow, magenta, cyan, orange, purple, ... (cycled).
PART_COLORS = np.array(
    [
        [0.90, 0.10, 0.10],
        [0.10, 0.80, 0.10],
        [0.15, 0.35, 1.00],
        [1.00, 0.90, 0.10],
        [0.95, 0.20, 0.90],
        [0.10, 0.90, 0.95],
        [1.00, 0.55, 0.05],
        [0.55, 0.25, 0.85],
    ]
)


def _image_to_float(image, name="image"):
    """(H, W, 3) float in [0, 1] from uint8, [0, 1] floats, or anything else
    (min-max scaled), gray or RGB."""
    image = to_numpy(name, image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3 or 0 in image.shape:
        raise invalid(
            name, f"<array of shape {image.shape}>", "an image (H, W), (H, W, 1) or (H, W, 3)"
        )
    if image.dtype == np.uint8:
        return image.astype("float64") / 255.0
    image = image.astype("float64")
    if not np.all(np.isfinite(image)):
        raise invalid(name, "<array with NaN or inf>", "finite values")
    low, high = image.min(), image.max()
    if low >= 0.0 and high <= 1.0:
        return image
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def _normalize(maps):
    """Min-max each map (last axes (H, W)) to [0, 1]; constant -> 0."""
    low = maps.min(axis=(0, 1), keepdims=True)
    high = maps.max(axis=(0, 1), keepdims=True)
    return np.where(high > low, (maps - low) / np.where(high > low, high - low, 1.0), 0.0)


def overlay(image, maps, alpha=0.6, cmap="jet"):
    """Draw saliency or part maps over an image.

    The maps are upsampled bilinearly to the image size and min-max
    normalised to ``[0, 1]``. A single map ``(h, w)`` is coloured with
    ``cmap``; part maps ``(h, w, P)`` get one colour each (``PART_COLORS``:
    part 1 red, part 2 green, part 3 blue, ...), each pixel taking the
    colour of its strongest part. Part maps are normalised together (one
    minimum and maximum for all parts), so that a sharp part shows
    stronger than a diffuse one, as in BR-NPA where every part map sums
    to 1. The colour is blended in proportion to
    the map's value, ``out = (1 - alpha m) image + alpha m colour``, so
    where a map is 0 the image shows unchanged.

    Args:
        image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; uint8, floats in
            ``[0, 1]``, or any other floats (min-max scaled for display,
            e.g. normalised network inputs).
        maps: ``(h, w)`` (one map) or ``(h, w, P)`` (parts).
        alpha: float in ``[0, 1]``, the opacity of the colour where the map
            is maximal.
        cmap: matplotlib colormap name for a single map.

    Returns:
        uint8 array ``(H, W, 3)``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> image = np.zeros((32, 32, 3), "float32")
    >>> saliency = np.zeros((4, 4), "float32"); saliency[0, 0] = 1.0
    >>> out = keras_brnpa.visualize.overlay(image, saliency)
    >>> out.shape, out.dtype, bool(out[0, 0].max() > 0), int(out[31, 31].max())
    ((32, 32, 3), dtype('uint8'), True, 0)
    """
    import matplotlib

    image = _image_to_float(image)
    maps = to_numpy("maps", maps).astype("float64")
    if maps.ndim not in (2, 3) or 0 in maps.shape:
        raise invalid(
            "maps", f"<array of shape {maps.shape}>", "a map (h, w) or part maps (h, w, P)"
        )
    if not np.all(np.isfinite(maps)):
        raise invalid("maps", "<array with NaN or inf>", "finite values")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise invalid("alpha", alpha, "a float in [0, 1]")
    try:
        colormap = matplotlib.colormaps[cmap]
    except (KeyError, TypeError, ValueError) as error:
        raise invalid("cmap", cmap, "a matplotlib colormap name") from error
    size = image.shape[:2]
    if maps.ndim == 2:
        value = _normalize(resize(maps[None], size)[0].astype("float64"))
        colour = colormap(value)[..., :3]
    else:
        parts = resize(maps[None], size)[0].astype("float64")
        low, high = parts.min(), parts.max()
        parts = (parts - low) / (high - low) if high > low else np.zeros_like(parts)
        strongest = np.argmax(parts, axis=-1)
        value = parts.max(axis=-1)
        colour = PART_COLORS[strongest % len(PART_COLORS)]
    weight = alpha * value[..., None]
    out = (1.0 - weight) * image + weight * colour
    return np.clip(np.round(out * 255.0), 0, 255).astype("uint8")


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise invalid("path", path, "a file path (str or os.PathLike) ending in .png")
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise invalid("path", path, "a file path ending in .png")
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    return path


def _figure(width, height, dpi):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def save_gallery(path, images, maps_by_method, titles=None, alpha=0.6, cell_size=2.0, dpi=100,
                 notes=None):
    """Write a PNG grid: one row per image, one column per method.

    The first column shows the image, the others its maps drawn with
    ``overlay`` (part maps ``(B, h, w, P)`` in one colour per part).

    Args:
        path: output file, ending in ``.png`` (parent folders are created).
        images: ``(B, H, W, C)`` array.
        maps_by_method: dict ``{method name: maps}``, each ``(B, h, w)`` or
            ``(B, h, w, P)`` with the same ``B`` (any ``h, w``; upsampled).
        titles: optional list of ``B`` row labels (e.g. class names).
        alpha: overlay opacity (see ``overlay``).
        cell_size: size of one cell in inches.
        dpi: dots per inch; the PNG is
            ``(1 + len(maps_by_method)) * cell_size * dpi`` pixels wide and
            ``B * cell_size * dpi`` pixels high.
        notes: optional dict ``{method name: B strings}``: a note written in
            red at the bottom of a map's cell ("" for none), e.g.
            ``"degenerate map"`` for a constant map (``compare_explanations``
            marks them so).

    Returns:
        ``path``.

    Example:

    >>> import os, tempfile, numpy as np, keras_brnpa
    >>> images = np.random.default_rng(0).random((2, 32, 32, 3))
    >>> maps = {"a": np.random.default_rng(1).random((2, 4, 4)),
    ...         "parts": np.random.default_rng(2).random((2, 4, 4, 3))}
    >>> path = os.path.join(tempfile.mkdtemp(), "gallery.png")
    >>> keras_brnpa.visualize.save_gallery(path, images, maps) == path
    True
    """
    images = to_numpy("images", images)
    if images.ndim != 4 or 0 in images.shape:
        raise invalid("images", f"<array of shape {images.shape}>", "an array (B, H, W, C)")
    if not isinstance(maps_by_method, Mapping) or not maps_by_method:
        raise invalid(
            "maps_by_method", maps_by_method, "a non-empty dict {name: maps (B, h, w[, P])}"
        )
    n = len(images)
    columns = {}
    for name, maps in maps_by_method.items():
        maps = to_numpy("maps_by_method", maps)
        if maps.ndim not in (3, 4) or len(maps) != n:
            raise invalid(
                "maps_by_method",
                f"<{name!r}: array of shape {maps.shape}>",
                f"maps of shape ({n}, h, w) or ({n}, h, w, P), one per image",
            )
        columns[str(name)] = maps
    if titles is not None and (isinstance(titles, str) or len(titles) != n):
        raise invalid("titles", titles, f"None or a list of {n} strings")
    if notes is not None:
        if not isinstance(notes, Mapping) or any(
            str(name) not in columns or isinstance(texts, str) or len(texts) != n
            for name, texts in notes.items()
        ):
            raise invalid("notes", notes, f"None or a dict {{method name: {n} strings}}")
        notes = {str(name): [str(text) for text in texts] for name, texts in notes.items()}
    for name, value in (("cell_size", cell_size), ("dpi", dpi)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise invalid(name, value, "a number > 0")
    path = _check_path(path)

    n_cols = 1 + len(columns)
    figure = _figure(n_cols * cell_size, n * cell_size, dpi)
    grid = figure.add_gridspec(n, n_cols, left=0.0, right=1.0, bottom=0.0, top=1.0,
                               wspace=0.02, hspace=0.02)
    fontsize = max(5.0, 4.0 * cell_size)
    wrap = max(8, int(cell_size * 72 / (0.55 * fontsize)))
    box = dict(facecolor="black", alpha=0.6, pad=1.5, linewidth=0)
    for row in range(n):
        cells = [("image", _image_to_float(images[row], "images"))]
        cells += [
            (name, overlay(images[row], maps[row], alpha=alpha)) for name, maps in columns.items()
        ]
        for col, (name, picture) in enumerate(cells):
            axis = figure.add_subplot(grid[row, col])
            axis.imshow(picture, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.text(0.02, 0.98, name, transform=axis.transAxes, va="top", ha="left",
                          fontsize=fontsize, color="white", bbox=box)
            note = notes.get(name, [""] * n)[row] if notes and col else ""
            if note:
                axis.text(0.98, 0.02, note, transform=axis.transAxes, va="bottom", ha="right",
                          fontsize=fontsize * 0.85, color="red", fontweight="bold",
                          bbox=dict(facecolor="white", alpha=0.8, pad=1.5, linewidth=0))
            if col == 0 and titles is not None:
                axis.text(0.02, 0.02, textwrap.fill(str(titles[row]), wrap),
                          transform=axis.transAxes, va="bottom", ha="left",
                          fontsize=fontsize * 0.85, color="white", bbox=box)
    figure.savefig(path, dpi=dpi, format="png")
    return path


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
        value = to_numpy(name, value).astype("float64")
        if value.ndim != 3 or 0 in value.shape:
            raise invalid(name, f"<array of shape {value.shape}>", "part maps (h, w, P)")
        if not np.all(np.isfinite(value)):
            raise invalid(name, "<array with NaN or inf>", "finite values")
        maps.append(value)
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


def save_explanation(path, image, maps, title=None, min_side=512, alpha=0.6, cmap="jet",
                     part_labels=None, quantity=None):
    """Write one explanation picture: the image beside its overlay, with a key.

    The picture keeps the image's aspect ratio and is at least ``min_side``
    pixels on its long side (small images are enlarged, pixels kept
    sharp). A single map is drawn normalised to [0, 1] (its minimum to its
    maximum, as ``overlay`` does) and gets a colour bar from 0 to 1
    labelled with the quantity and the map's raw range, so that maps of
    methods with different scales (Score-CAM's hundreds, RISE's
    probabilities near 1) read alike; part maps ``(h, w, P)`` get a legend
    of the part colours (``PART_COLORS``) titled the same way.

    Args:
        path: output file ending in ``.png``.
        image: ``(H, W, 3)`` (or gray) image at any size, in [0, 1], uint8
            or any float range (see ``overlay``).
        maps: ``(h, w)`` or ``(h, w, P)``, resized to the image.
        title: optional text on top (e.g. ``"cat (p=0.93) - Grad-CAM"``).
        min_side: int, the least number of pixels of the long side.
        alpha, cmap: as for ``overlay``.
        part_labels: optional names of the parts (default ``part 1``, ...).
        quantity: optional name of what the map measures (e.g.
            ``"Grad-CAM saliency"``); default ``"saliency"`` (``"attention"``
            for part maps).

    Returns:
        ``path``.

    Example:

    >>> import os, tempfile, numpy as np, keras_brnpa
    >>> image = np.random.default_rng(0).random((60, 90, 3))
    >>> path = os.path.join(tempfile.mkdtemp(), "cat.png")
    >>> keras_brnpa.visualize.save_explanation(
    ...     path, image, np.random.default_rng(1).random((4, 6)), title="cat (p=0.93)") == path
    True
    >>> from PIL import Image
    >>> width, height = Image.open(path).size
    >>> width >= 2 * 512 * 0.9, height < width
    (True, True)
    """
    import matplotlib
    from matplotlib.colorbar import ColorbarBase
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    picture = overlay(image, maps, alpha=alpha, cmap=cmap)
    maps = to_numpy("maps", maps).astype("float64")
    if isinstance(min_side, bool) or not isinstance(min_side, int) or min_side < 16:
        raise invalid("min_side", min_side, "an int >= 16")
    path = _check_path(path)
    base = _image_to_float(image)
    height, width = base.shape[:2]
    scale = max(1.0, min_side / max(height, width))
    dpi = 100
    panel_w, panel_h = width * scale / dpi, height * scale / dpi
    key_h, title_h = 0.8, (0.45 if title else 0.1)
    figure = _figure(2 * panel_w + 0.1, panel_h + key_h + title_h, dpi)
    total_h = panel_h + key_h + title_h
    bottom = key_h / total_h
    for i, shown in enumerate((base, picture)):
        axis = figure.add_axes([i * (panel_w + 0.1) / (2 * panel_w + 0.1), bottom,
                                panel_w / (2 * panel_w + 0.1), panel_h / total_h])
        axis.imshow(shown, interpolation="nearest", aspect="auto")
        axis.set_axis_off()
    if title:
        figure.text(0.5, 1 - 0.5 * title_h / total_h, str(title), ha="center", va="center",
                    fontsize=12)
    key = figure.add_axes([0.1, 0.55 * key_h / total_h, 0.8, 0.2 * key_h / total_h])
    if quantity is not None and not isinstance(quantity, str):
        raise invalid("quantity", quantity, "None or a string")
    quantity = quantity or ("saliency" if maps.ndim == 2 else "attention")
    label = (f"{quantity}, normalised to [0, 1] (raw range {maps.min():.3g} to "
             f"{maps.max():.3g})")
    if maps.ndim == 2:
        bar = ColorbarBase(key, cmap=matplotlib.colormaps[cmap], norm=Normalize(0.0, 1.0),
                           orientation="horizontal")
        bar.set_label(label, fontsize=9)
        key.tick_params(labelsize=8)
    else:
        parts = maps.shape[-1]
        labels = list(part_labels) if part_labels is not None else [
            f"part {k + 1}" for k in range(parts)]
        key.set_axis_off()
        key.legend(handles=[Patch(color=PART_COLORS[k % len(PART_COLORS)], label=labels[k])
                            for k in range(parts)],
                   loc="center", ncol=min(parts, 8), frameon=False, fontsize=9,
                   title=label + "; colour: the strongest part", title_fontsize=9)
    figure.savefig(path, dpi=dpi, format="png")
    return path


__all__ = [
    "PART_COLORS",
    "overlay",
    "plot_curves",
    "save_explanation",
    "save_gallery",
    "save_retrieval_gallery",
]
