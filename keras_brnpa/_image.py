"""Image helpers shared by every subpackage (explain, metrics, visualize).

One bilinear resize for saliency and attention maps, on
``keras.ops.image.resize``: the explainers and the localisation metrics
resize maps the same way on every backend. Keras is imported inside the
function, so importing this module imports no backend.
"""

import numpy as np


def resize_maps(maps, size):
    """Bilinear resize of ``(B, h, w)`` or ``(B, h, w, P)`` maps to ``size``.

    ``keras.ops.image.resize(..., interpolation="bilinear",
    antialias=False)`` with half-pixel centres and clamped edges, the
    convention of ``tf.image.resize``, ``jax.image.resize`` and torch's
    ``interpolate(..., align_corners=False)``: the three backends give the
    same numbers to float32 precision. A map that keeps its size is
    returned unchanged (as float32). Bilinear values lie between the
    smallest and the largest value of each map: the result is clipped to
    that range, so float rounding (torch gives 1.0000001 for a 0/1 map)
    never makes a non-negative map negative or a [0, 1] mask exceed 1.

    Args:
        maps: array-like ``(B, h, w)`` or ``(B, h, w, P)`` (channels last).
        size: ``(H, W)``, two integers >= 1 (not checked here).

    Returns:
        float32 NumPy array ``(B, H, W)`` or ``(B, H, W, P)``.

    Example:

    >>> import numpy as np
    >>> from keras_brnpa._image import resize_maps
    >>> resize_maps(np.array([[[0.0, 1.0]]]), (1, 4)).round(3).tolist()
    [[[0.0, 0.25, 0.75, 1.0]]]
    """
    array = np.asarray(maps, dtype="float32")
    size = (int(size[0]), int(size[1]))
    if tuple(array.shape[1:3]) == size:
        return array.copy()
    import keras

    flat = array.ndim == 3
    x = array[..., None] if flat else array
    out = keras.ops.image.resize(
        x,
        size,
        interpolation="bilinear",
        antialias=False,
        data_format="channels_last",
    )
    out = np.asarray(keras.ops.convert_to_numpy(out), dtype="float32")
    low = x.min(axis=(1, 2), keepdims=True)
    high = x.max(axis=(1, 2), keepdims=True)
    out = np.clip(out, low, high)
    return out[..., 0] if flat else out
