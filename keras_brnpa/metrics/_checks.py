"""Argument checks and conversions shared by the metrics and explainers (NumPy side)."""

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


def check_class_index(class_index, batch):
    """``class_index`` checked early: ``None`` or a ``(batch,)`` int64 array.

    Accepts ``None`` (each image's predicted class), an int (the same
    class for every image) or one int per image; the range is checked
    against the model's classes by ``resolve_classes``.
    """
    if class_index is None:
        return None
    if isinstance(class_index, (bool, np.bool_)):
        raise invalid("class_index", class_index, "None, an int or one int per image")
    if isinstance(class_index, numbers.Integral):
        return np.full((batch,), int(class_index), dtype=np.int64)
    classes = to_numpy("class_index", class_index)
    if classes.shape != (batch,) or not np.issubdtype(classes.dtype, np.integer):
        raise invalid(
            "class_index",
            describe(classes),
            f"None, an int or {batch} ints (one class per image)",
        )
    return classes.astype(np.int64)


def resolve_classes(classes, outputs):
    """The explained class per image: ``classes`` (checked by
    ``check_class_index``, in range of ``outputs``' columns) or, for
    ``None``, the argmax of ``outputs`` ``(B, K)``."""
    if classes is None:
        return np.argmax(outputs, axis=-1).astype(np.int64)
    k = np.shape(outputs)[-1]
    if np.any(classes < 0) or np.any(classes >= k):
        raise invalid("class_index", classes.tolist(), f"class indices in [0, {k})")
    return classes
