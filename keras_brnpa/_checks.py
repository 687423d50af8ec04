"""Argument checks and conversions shared by every subpackage.

The ground floor of the package: every layer, model builder, explainer,
metric, data loader and the command line validate their arguments with
these functions, so that bad input gets the same Keras-style message
everywhere (``Invalid value for argument NAME. Expected WHAT. Received:
NAME=VALUE``). Keras is imported inside the functions that need it, so
importing this module imports no backend.
"""

import numbers

import numpy as np


def invalid(name, value, expected):
    """A ``ValueError`` in the Keras style for argument ``name``.

    Example:

    >>> from keras_brnpa._checks import invalid
    >>> str(invalid("n_parts", 0, "an integer >= 1"))
    'Invalid value for argument n_parts. Expected an integer >= 1. Received: n_parts=0'
    """
    return ValueError(
        f"Invalid value for argument {name}. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def check_positive_int(name, value):
    """``value`` as an int, checked to be an integer >= 1 (bools are refused).

    Example:

    >>> from keras_brnpa._checks import check_positive_int
    >>> check_positive_int("batch_size", 4)
    4
    """
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise invalid(name, value, "an integer >= 1")
    return int(value)


def check_optional_positive_int(name, value):
    """``None``, or ``value`` as an int checked to be >= 1.

    Example:

    >>> from keras_brnpa._checks import check_optional_positive_int
    >>> check_optional_positive_int("steps", None), check_optional_positive_int("steps", 3)
    (None, 3)
    """
    if value is None:
        return None
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise invalid(name, value, "None or an integer >= 1")
    return int(value)


def check_choice(name, value, choices):
    """``value``, checked to be one of ``choices``.

    Example:

    >>> from keras_brnpa._checks import check_choice
    >>> check_choice("selection", "norm", ("norm", "random"))
    'norm'
    """
    if value not in choices:
        raise invalid(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_bool(name, value):
    """``value`` as a Python bool, checked to be ``True`` or ``False``.

    Example:

    >>> import numpy as np
    >>> from keras_brnpa._checks import check_bool
    >>> check_bool("refine", np.True_)
    True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise invalid(name, value, "a bool")
    return bool(value)


def check_seed(seed, allow_none=False):
    """``seed`` as an int (or ``None`` where ``allow_none``); bools are refused.

    Example:

    >>> from keras_brnpa._checks import check_seed
    >>> check_seed(3), check_seed(None, allow_none=True)
    (3, None)
    """
    if seed is None and allow_none:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise invalid("seed", seed, "None or an int" if allow_none else "an integer")
    return int(seed)


def check_from_logits(from_logits):
    """``from_logits``: ``None`` (auto-detect), ``True`` or ``False``.

    Example:

    >>> from keras_brnpa._checks import check_from_logits
    >>> check_from_logits(None), check_from_logits(True)
    (None, True)
    """
    if from_logits is None:
        return None
    if not isinstance(from_logits, (bool, np.bool_)):
        raise invalid("from_logits", from_logits, "None (auto-detect), True or False")
    return bool(from_logits)


def check_data_format(value):
    """``data_format``, with ``None`` resolved to the Keras global setting.

    Example:

    >>> from keras_brnpa._checks import check_data_format
    >>> check_data_format("channels_first")
    'channels_first'
    """
    if value is None:
        import keras

        return keras.config.image_data_format()
    return check_choice("data_format", value, ("channels_last", "channels_first"))


def to_numpy(name, value):
    """``value`` (an array-like or a backend tensor) as a NumPy array.

    Raises the Keras-style ``ValueError`` naming ``name`` when ``value``
    cannot be converted.

    Example:

    >>> import keras
    >>> from keras_brnpa._checks import to_numpy
    >>> to_numpy("x", keras.ops.ones((2,))).tolist()
    [1.0, 1.0]
    """
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
    """Short description of an array for error messages.

    Example:

    >>> import numpy as np
    >>> from keras_brnpa._checks import describe
    >>> describe(np.zeros((2, 3)))
    '<array of shape (2, 3) and dtype float64>'
    """
    return f"<array of shape {tuple(array.shape)} and dtype {array.dtype}>"


def check_images(images, name="images", dtype="float32"):
    """A batch of channels-last images, checked, as a NumPy array.

    The batch must be a non-empty real-valued array ``(B, H, W, C)`` of
    finite values.

    Args:
        images: array-like or backend tensor ``(B, H, W, C)``.
        name: the argument's name in error messages.
        dtype: the result's dtype; ``None`` keeps a floating dtype (and
            casts integers to float32).

    Returns:
        The images as a NumPy array.

    Example:

    >>> import numpy as np
    >>> from keras_brnpa._checks import check_images
    >>> check_images(np.zeros((2, 8, 8, 3), "uint8")).dtype
    dtype('float32')
    """
    try:
        array = to_numpy(name, images)
    except ValueError as error:  # anything that is not array-like
        raise invalid(name, type(images).__name__, "an array of shape (B, H, W, C)") from error
    if array.ndim != 4 or 0 in array.shape:
        raise invalid(
            name,
            f"<array of shape {array.shape}>",
            "a non-empty array of shape (B, H, W, C) (channels last)",
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise invalid(name, f"<array of dtype {array.dtype}>", "a real-valued array")
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    elif not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise invalid(
            name,
            f"<array of shape {array.shape} with {int(np.size(array) - np.isfinite(array).sum())} "
            "NaN or infinite values>",
            "finite values (no NaN or inf)",
        )
    return array


def single_output(outputs):
    """``outputs``, checked to be one tensor (not a list, tuple or dict of them).

    Example:

    >>> import numpy as np
    >>> from keras_brnpa._checks import single_output
    >>> single_output(np.zeros((2, 3))).shape
    (2, 3)
    """
    if isinstance(outputs, (list, tuple, dict)):
        raise invalid(
            "model",
            f"<model with a {type(outputs).__name__} output>",
            "a classifier with one output of shape (B, num_classes)",
        )
    return outputs


def check_saliency(saliency, batch=None):
    """A saliency batch ``(B, h, w)`` checked, as float64 NumPy.

    Example:

    >>> import numpy as np
    >>> from keras_brnpa._checks import check_saliency
    >>> check_saliency(np.ones((2, 4, 4)), batch=2).dtype
    dtype('float64')
    """
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

    Example:

    >>> from keras_brnpa._checks import check_class_index
    >>> check_class_index(2, 3).tolist()
    [2, 2, 2]
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
    """The explained class per image.

    ``classes`` (checked by ``check_class_index``) in range of
    ``outputs``' columns or, for ``None``, the argmax of ``outputs``
    ``(B, K)``.

    Example:

    >>> import numpy as np
    >>> from keras_brnpa._checks import resolve_classes
    >>> resolve_classes(None, np.array([[0.1, 0.9], [0.8, 0.2]])).tolist()
    [1, 0]
    """
    if classes is None:
        return np.argmax(outputs, axis=-1).astype(np.int64)
    k = np.shape(outputs)[-1]
    if np.any(classes < 0) or np.any(classes >= k):
        raise invalid("class_index", classes.tolist(), f"class indices in [0, {k})")
    return classes
