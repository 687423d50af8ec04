"""The input of any Keras classifier: the pixel range it expects."""

import keras

from keras_brnpa._checks import invalid
from keras_brnpa._warnings import BRNPAWarning
from keras_brnpa.models.inspection.layer_paths import _is_container

#: Input conventions a model may expect, for images read in [0, 1].
INPUT_SCALES = ("0-1", "0-255", "imagenet")
#: Per-channel (RGB) mean of ImageNet images in [0, 1]: what ImageNet weights
#: normalised by mean and std subtract (``"imagenet"`` everywhere in the package).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
#: Per-channel (RGB) standard deviation of ImageNet images in [0, 1].
IMAGENET_STD = (0.229, 0.224, 0.225)


def _first_layers(model):
    """The layers a model applies first, nested models opened, in order."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if _is_container(layer):
            yield from _first_layers(layer)
        else:
            yield layer


def input_scale(model):
    """The pixel range a classifier expects, read from its own first layers.

    A ``Rescaling`` layer with a scale of at most 1/100 (``1/255``,
    ``1/127.5``) before any convolution or dense layer means the model
    takes 0-255 pixels; a ``Normalization`` layer whose mean exceeds 2
    too. Otherwise the package's convention, [0, 1], is assumed (the
    ``build_classifier`` models, the synthetic data and ``image_folder``
    use it). A model that expects ImageNet mean/std inputs without a layer
    that says so cannot be told apart: pass the scale explicitly.

    Args:
        model: a functional or ``Sequential`` ``keras.Model``.

    Returns:
        ``"0-1"`` or ``"0-255"``.

    Example:

    >>> import keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
    ...     keras.layers.Conv2D(2, 3)])
    >>> keras_brnpa.models.input_scale(model)
    '0-255'
    """
    import numpy as np

    if not _is_container(model):
        return "0-1"
    for layer in _first_layers(model):
        if isinstance(layer, keras.layers.Rescaling):
            scale = np.asarray(layer.scale, "float64")
            return "0-255" if np.all(np.abs(scale) <= 0.01) else "0-1"
        if isinstance(layer, keras.layers.Normalization):
            mean = getattr(layer, "mean", None)
            if mean is None:
                return "0-1"
            mean = np.asarray(keras.ops.convert_to_numpy(mean), "float64")
            return "0-255" if np.any(mean > 2.0) else "0-1"
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense, keras.layers.Flatten)):
            break
    return "0-1"


def check_input_scale(model, images, name="images"):
    """Warn when images do not look like the pixel range the model takes.

    Images look like 0-255 pixels when they are non-negative with a
    maximum above 1.5 (integer 0-255 images, or floats that were never
    divided by 255): given to a model whose ``input_scale`` is ``"0-1"``
    they get a ``UserWarning``. The reverse, non-negative images with a
    maximum of at most 1.5 given to a ``"0-255"`` model, too. Images with
    negative values (mean/std normalised) and all-zero images are left
    alone. Nothing is changed: a warning only.

    Args:
        model: a ``keras.Model``.
        images: NumPy array of images (finite values).
        name: the argument's name, for the message.

    Returns:
        ``"0-1"``, ``"0-255"`` or ``None``: the range the images look like
        when it disagrees with the model's, else ``None``.

    Example:

    >>> import warnings, numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 3)])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     keras_brnpa.models.inspection.check_input_scale(
    ...         model, np.full((1, 4, 4, 3), 200, "uint8"))
    '0-255'
    >>> "divide them by 255" in str(caught[0].message)
    True
    """
    import warnings

    import numpy as np

    images = np.asarray(images)
    if images.size == 0:
        return None
    low, high = float(images.min()), float(images.max())
    if low < 0 or high <= 0:
        return None
    looks = "0-255" if high > 1.5 else "0-1"
    expected = input_scale(model)
    if looks == expected:
        return None
    if looks == "0-255":
        advice = (
            "the model takes [0, 1] inputs (keras_brnpa.models.input_scale(model) == '0-1'): "
            "divide them by 255, or give the model a Rescaling(1 / 255) first layer"
        )
    else:
        advice = (
            "the model takes 0-255 inputs (its first layers rescale them): multiply them by 255"
        )
    warnings.warn(
        f"{name} look like {looks} pixels (values {low:g} to {high:g}) but {advice}.",
        BRNPAWarning,
        stacklevel=3,
    )
    return looks


def scale_images(images, scale):
    """Images in [0, 1] converted to a model's input convention.

    Args:
        images: array ``(..., 3)`` in [0, 1].
        scale: ``"0-1"`` (unchanged), ``"0-255"`` (times 255) or
            ``"imagenet"`` (minus the ImageNet mean, over its std).

    Returns:
        float32 NumPy array of the same shape.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> keras_brnpa.models.scale_images(np.full((1, 3), 0.5), "0-255").tolist()
    [[127.5, 127.5, 127.5]]
    """
    import numpy as np

    if scale not in INPUT_SCALES:
        raise invalid("scale", scale, "one of " + ", ".join(repr(s) for s in INPUT_SCALES))
    images = np.asarray(images, "float32")
    if scale == "0-255":
        return images * np.float32(255.0)
    if scale == "imagenet":
        return ((images - np.asarray(IMAGENET_MEAN, "float32"))
                / np.asarray(IMAGENET_STD, "float32")).astype("float32")
    return images
