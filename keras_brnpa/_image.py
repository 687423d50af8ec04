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

    return np.asarray(keras.ops.convert_to_numpy(resize_maps_tensor(array, size)), "float32")


def resize_maps_tensor(maps, size):
    """``resize_maps`` on backend tensors: the result stays on the device.

    Args:
        maps: a tensor or array ``(B, h, w)`` or ``(B, h, w, P)``.
        size: ``(H, W)``, two integers >= 1 (not checked here).

    Returns:
        A float32 backend tensor ``(B, H, W)`` or ``(B, H, W, P)``.

    Example:

    >>> import numpy as np, keras
    >>> from keras_brnpa._image import resize_maps_tensor
    >>> out = resize_maps_tensor(np.ones((2, 3, 3), "float32"), (6, 6))
    >>> tuple(out.shape), float(keras.ops.convert_to_numpy(out).min())
    ((2, 6, 6), 1.0)
    """
    import keras

    x = keras.ops.cast(maps, "float32")
    size = (int(size[0]), int(size[1]))
    flat = len(x.shape) == 3
    if flat:
        x = x[..., None]
    if tuple(x.shape[1:3]) != size:
        low = keras.ops.min(x, axis=(1, 2), keepdims=True)
        high = keras.ops.max(x, axis=(1, 2), keepdims=True)
        x = keras.ops.image.resize(
            x,
            size,
            interpolation="bilinear",
            antialias=False,
            data_format="channels_last",
        )
        x = keras.ops.minimum(keras.ops.maximum(x, low), high)
    return x[..., 0] if flat else x


def resize_matrix(out_size, in_size):
    """``(out_size, in_size)`` weights of ``resize_maps`` along one axis.

    The shared bilinear resize applied to the unit impulses (the
    identity), so that matrix-based resampling (the deletion/insertion
    grid of ``keras_brnpa.metrics.fit_saliency``) gives the same numbers
    as ``resize_maps``.

    Args:
        out_size: int >= 1, the new length.
        in_size: int >= 1, the old length.

    Returns:
        float64 NumPy array ``(out_size, in_size)`` whose rows sum to 1.

    Example:

    >>> from keras_brnpa._image import resize_matrix
    >>> resize_matrix(4, 2).round(2).tolist()
    [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    """
    if out_size == in_size:
        return np.eye(in_size)
    impulses = np.eye(in_size, dtype="float32")[None]  # (1, in rows, in impulses)
    return resize_maps(impulses, (out_size, in_size))[0].astype(np.float64)
