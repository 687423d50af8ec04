"""Argument checks and conversions shared by the metrics (NumPy side)."""

import numbers

import numpy as np

from keras_brnpa.layers._validation import invalid


def to_numpy(name, value):
    """Convert an array-like or a backend tensor to a NumPy array."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "shape") and not isinstance(value, (list, tuple)):
        import keras

        try:
            return np.asarray(keras.ops.convert_to_numpy(value))
        except Exception as error:  # pragma: no cover - exotic inputs
            raise invalid(name, value, "an array or a tensor") from error
    try:
        return np.asarray(value)
    except Exception as error:
        raise invalid(name, value, "an array or a tensor") from error


def describe(array):
    """Short description of an array for error messages."""
    return f"<array of shape {tuple(array.shape)} and dtype {array.dtype}>"


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise invalid(name, value, "a bool")
    return bool(value)


def check_optional_positive_int(name, value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise invalid(name, value, "None or an integer >= 1")
    return int(value)


def check_saliency(saliency, batch=None):
    """Validate a saliency batch ``(B, h, w)``; return it as float64."""
    saliency = to_numpy("saliency", saliency)
    if saliency.ndim != 3 or 0 in saliency.shape:
        raise invalid(
            "saliency", describe(saliency), "a non-empty 3-D array (batch, height, width)"
        )
    if not (np.issubdtype(saliency.dtype, np.number) or saliency.dtype == bool):
        raise invalid("saliency", describe(saliency), "a numeric array")
    saliency = saliency.astype(np.float64)
    if not np.all(np.isfinite(saliency)):
        raise invalid("saliency", describe(saliency), "finite values (no NaN or inf)")
    if batch is not None and saliency.shape[0] != batch:
        raise invalid(
            "saliency",
            describe(saliency),
            f"one map per image: a batch size of {batch}",
        )
    return saliency
