"""Shared pieces of the pictures: part colours, image and map scaling, the
Agg figure and the output path check."""

import os

import numpy as np

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


def _check_maps(name, maps, ndims, expected):
    """``maps`` as float64 NumPy, refused unless its rank is in ``ndims``,
    it has no empty axis and every value is finite."""
    maps = to_numpy(name, maps).astype("float64")
    if maps.ndim not in ndims or 0 in maps.shape:
        raise invalid(name, f"<array of shape {maps.shape}>", expected)
    if not np.all(np.isfinite(maps)):
        raise invalid(name, "<array with NaN or inf>", "finite values")
    return maps


def _normalize(maps):
    """Min-max each map (last axes (H, W)) to [0, 1]; constant -> 0."""
    low = maps.min(axis=(0, 1), keepdims=True)
    high = maps.max(axis=(0, 1), keepdims=True)
    return np.where(high > low, (maps - low) / np.where(high > low, high - low, 1.0), 0.0)


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
