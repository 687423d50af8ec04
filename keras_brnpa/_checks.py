"""Argument checks and conversions shared by every subpackage.

The ground floor of the package: every layer, model builder, explainer,
metric, data loader and the command line validate their arguments with
these functions, so that bad input gets the same Keras-style message
everywhere (``Invalid value for argument NAME. Expected WHAT. Received:
NAME=VALUE``). Keras is imported inside the functions that need it, so
importing this module imports no backend.
"""

import functools
import numbers
import warnings

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
    return _positive_int(name, value, "an integer >= 1")


def _positive_int(name, value, expected):
    """``value`` as an int if it is an integer >= 1 (not a bool); else a
    ValueError saying ``expected``."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Integral)
        or value < 1
    ):
        raise invalid(name, value, expected)
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
    return _positive_int(name, value, "None or an integer >= 1")


def check_positive_float(name, value, expected="a finite float > 0"):
    """``value`` as a float, checked to be a finite real number > 0.

    Python and NumPy scalars are accepted; bools, NaN, infinity and
    non-numbers raise a ValueError saying ``expected``.

    Example:

    >>> import numpy as np
    >>> from keras_brnpa._checks import check_positive_float
    >>> check_positive_float("learning_rate", np.float32(0.5))
    0.5
    """
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Real)
        or not 0 < value < float("inf")
    ):
        raise invalid(name, value, expected)
    return float(value)


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


def model_image_shape(model):
    """``(H, W, C)`` of ``model``'s one image input (``None`` where free).

    ``None`` when the model does not say (a subclassed model never called,
    a plain callable, several inputs, an input that is not an image).

    Example:

    >>> import keras
    >>> from keras_brnpa._checks import model_image_shape
    >>> model_image_shape(keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten()]))
    (32, 32, 3)
    """
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 1:
        return None
    shape = getattr(inputs[0], "shape", None)
    if shape is None or len(shape) != 4:
        return None
    return tuple(None if s is None else int(s) for s in shape[1:])


def check_image_shape(images, model, name="images"):
    """Refuse images whose size or channels differ from ``model``'s input.

    One check for every explainer and metric, on every call (a compiled
    function traced at one size must not accept another): height, width
    and channels of ``images`` ``(B, H, W, C)`` against the model's input
    (``model_image_shape``); dimensions the model leaves free are not
    checked. NCHW images and 1-channel images for a 3-channel model are
    caught here.

    Example:

    >>> import keras, numpy as np
    >>> from keras_brnpa._checks import check_image_shape
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten()])
    >>> check_image_shape(np.zeros((2, 16, 16, 3)), model)
    Traceback (most recent call last):
      ...
    ValueError: Invalid value for argument images. Expected an array of shape (B, 32, 32, 3) (channels last), the model's input. Received: images='<array of shape (2, 16, 16, 3)>'
    """
    expected = model_image_shape(model)
    shape = tuple(np.shape(images))
    if expected is None or len(shape) != 4:
        return
    if any(e is not None and e != s for e, s in zip(expected, shape[1:])):
        wanted = ", ".join("?" if e is None else str(e) for e in expected)
        raise invalid(
            name,
            f"<array of shape {shape}>",
            f"an array of shape (B, {wanted}) (channels last), the model's input",
        )


def check_images(images, name="images", dtype="float32", model=None):
    """A batch of channels-last images, checked, as a NumPy array.

    The batch must be a non-empty real-valued array ``(B, H, W, C)`` of
    finite values; with ``model``, of the model's input size and channels
    (``check_image_shape``).

    Args:
        images: array-like or backend tensor ``(B, H, W, C)``.
        name: the argument's name in error messages.
        dtype: the result's dtype; ``None`` keeps a floating dtype (and
            casts integers to float32).
        model: ``None`` or the model that will take the images.

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
    if model is not None:
        check_image_shape(array, model, name)
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


def _no_rows(value):
    """``value`` with its leading axis cut to 0 rows (containers recursively)."""
    if isinstance(value, dict):
        return {key: _no_rows(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_no_rows(item) for item in value)
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        return value[:0]
    return value


def _one_row(value):
    """An empty array-like argument (``(0, ...)``) as one row of zeros."""
    if isinstance(value, (str, bytes, dict)) or value is None or callable(value):
        return value
    shape = getattr(value, "shape", None)
    if shape is None and not isinstance(value, (list, tuple)):
        return value
    try:
        array = to_numpy("value", value)
    except ValueError:
        return value
    if array.ndim == 0 or array.shape[0] != 0:
        return value
    dtype = array.dtype if array.size or not isinstance(value, (list, tuple)) else np.int64
    return np.zeros((1,) + array.shape[1:], dtype)


def empty_batch_safe(function):
    """Decorator: an empty batch of images gives empty results.

    For a function ``function(model, images, *args, **kwargs)`` (an
    explainer or a metric): when ``images`` is an empty batch
    ``(0, H, W, C)``, the function runs on one black image (the other
    empty per-image arguments, such as ``saliency``, get one row of
    zeros), so every argument is still checked and the result has its real
    shape and dtype, and the result is returned with 0 rows. Warnings of
    that run are silenced. Any other call goes straight through.

    Example:

    >>> import numpy as np
    >>> from keras_brnpa._checks import empty_batch_safe
    >>> @empty_batch_safe
    ... def mean_colour(model, images):
    ...     return np.asarray(images).mean(axis=(1, 2))
    >>> mean_colour(None, np.zeros((0, 8, 8, 3))).shape
    (0, 3)
    """

    @functools.wraps(function)
    def wrapper(model, images, *args, **kwargs):
        shape = getattr(images, "shape", None)
        if shape is None and isinstance(images, (list, tuple)):
            shape = np.shape(images)
        if shape is None or len(shape) != 4 or shape[0] != 0 or 0 in tuple(shape)[1:]:
            return function(model, images, *args, **kwargs)
        one = np.zeros((1,) + tuple(int(s) for s in shape[1:]), "float32")
        args = [_one_row(value) for value in args]
        kwargs = {key: _one_row(value) for key, value in kwargs.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _no_rows(function(model, one, *args, **kwargs))

    return wrapper
