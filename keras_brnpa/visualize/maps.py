"""Maps on images: one overlay, a gallery of methods, one large explanation."""

import textwrap
from collections.abc import Mapping

import numpy as np

from keras_brnpa._image import resize_maps as resize
from keras_brnpa._checks import invalid
from keras_brnpa._checks import to_numpy
from keras_brnpa.visualize._common import PART_COLORS
from keras_brnpa.visualize._common import _image_to_float
from keras_brnpa.visualize._common import _normalize
from keras_brnpa.visualize._common import _check_maps
from keras_brnpa.visualize._common import _check_path
from keras_brnpa.visualize._common import _figure


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
    maps = _check_maps("maps", maps, (2, 3), "a map (h, w) or part maps (h, w, P)")
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

