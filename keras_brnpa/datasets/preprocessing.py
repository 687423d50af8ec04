"""The input convention of the package, and the paper's augmentation as Keras layers.

**What images the models expect.** The package's own models (built from
scratch by ``keras_brnpa.models``, the ``"tiny"`` demo model) take float32
images in ``[0, 1]``, channels last: what every loader gives by default
(``normalization=None``). Pretrained backbones take their preset's
normalisation; for ImageNet weights normalised by mean and standard
deviation (keras-hub ResNet presets, the authors' PyTorch models) ask the
loaders for ``normalization="imagenet"``, or better put
``normalization_layer("imagenet")`` first in the model, which then takes
``[0, 1]`` images like every other model of the package (and
``keras_brnpa.models.input_scale`` reads the layer).

**The paper's preprocessing** (``preprocessing_layers``): resize to
``image_size / 0.875`` (512 for 448), then, for training, a random crop of
``image_size``, a random horizontal flip and a colour jitter (brightness,
contrast and saturation by factors in ``[1 - j, 1 + j]``, ``j = 0.4``); for
testing, the centre crop. All of them are Keras preprocessing layers, which
run inside a ``tf.data`` pipeline whatever the Keras backend.
"""

import numbers

import numpy as np

from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import invalid
from keras_brnpa.models.inspection import IMAGENET_MEAN
from keras_brnpa.models.inspection import IMAGENET_STD

#: Named normalisations of the ``normalization`` arguments (``None``: the
#: package's ``[0, 1]`` images); a pair ``(mean, std)`` is accepted too.
NORMALIZATIONS = (None, "imagenet")
#: The paper resizes to ``image_size / RESIZE_RATIO`` then crops ``image_size``
#: (448 from 512).
RESIZE_RATIO = 0.875

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NORMALIZATIONS",
    "RESIZE_RATIO",
    "normalization_layer",
    "preprocessing_layers",
]


def check_normalization(normalization):
    """``None`` or the ``(mean, std)`` float tuples of a ``normalization`` argument."""
    if normalization is None:
        return None
    if isinstance(normalization, str):
        if normalization == "imagenet":
            return tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)
    elif isinstance(normalization, (tuple, list)) and len(normalization) == 2:
        try:
            mean, std = (np.broadcast_to(np.asarray(v, "float64"), (3,)) for v in normalization)
        except (TypeError, ValueError):
            mean = std = None
        if (
            mean is not None
            and np.all(np.isfinite(mean))
            and np.all(np.isfinite(std))
            and np.all(std > 0)
        ):
            return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    raise invalid(
        "normalization",
        normalization,
        "None (images in [0, 1]), 'imagenet' (the ImageNet mean and std) or a pair "
        "(mean, std) of numbers or 3 per-channel values, std > 0",
    )


def normalization_layer(normalization="imagenet", name="normalization"):
    """A Keras layer that maps ``[0, 1]`` images to a model's normalisation.

    ``"imagenet"`` subtracts ``IMAGENET_MEAN`` and divides by
    ``IMAGENET_STD`` per channel, what ImageNet weights normalised by mean
    and std expect (keras-hub ResNet presets, torchvision models). The
    result is a ``keras.layers.Normalization`` with fixed ``mean`` and
    ``variance = std ** 2`` (nothing to ``adapt``, no weights): use it in a
    ``tf.data`` pipeline on any backend, or first in a model so that the
    model takes the package's ``[0, 1]`` images (``keras_brnpa.models.
    input_scale`` then reads ``"0-1"``, and deletion's ``baseline=0`` is
    black). ``None`` gives ``keras.layers.Rescaling(1.0)``, which changes
    nothing (unlike ``keras.layers.Identity`` it runs in ``tf.data`` on
    every backend). The layer is built (for inputs of any rank with 3
    channels last), as ``Normalization`` needs before a ``tf.data`` call.

    Args:
        normalization: ``"imagenet"``, a pair ``(mean, std)`` (numbers or
            3 per-channel values, for images in ``[0, 1]``) or ``None``.
        name: name of the layer.

    Returns:
        A ``keras.layers.Normalization`` (``keras.layers.Rescaling`` for
        ``None``).

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> layer = keras_brnpa.datasets.normalization_layer("imagenet")
    >>> mean_colour = np.full((1, 2, 2, 3), keras_brnpa.datasets.IMAGENET_MEAN, "float32")
    >>> float(np.abs(keras.ops.convert_to_numpy(layer(mean_colour))).max()) < 1e-6
    True
    >>> white = np.ones((1, 2, 2, 3), "float32")
    >>> [round(float(v), 2) for v in keras.ops.convert_to_numpy(layer(white))[0, 0, 0]]
    [2.25, 2.43, 2.64]
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), layer,
    ...                           keras.layers.Conv2D(2, 3)])
    >>> keras_brnpa.models.input_scale(model)   # the model takes [0, 1] images
    '0-1'
    """
    import keras

    values = check_normalization(normalization)
    if values is None:
        return keras.layers.Rescaling(1.0, name=name, dtype="float32")
    mean, std = values
    layer = keras.layers.Normalization(
        mean=list(mean), variance=[s * s for s in std], name=name, dtype="float32"
    )
    layer.build((None, 3))
    return layer


def _check_jitter(color_jitter):
    if (
        isinstance(color_jitter, bool)
        or not isinstance(color_jitter, numbers.Real)
        or not 0 <= color_jitter < 1
    ):
        raise invalid("color_jitter", color_jitter, "a float in [0, 1)")
    return float(color_jitter)


def preprocessing_layers(image_size, training, color_jitter=0.4, seed=None, normalization=None):
    """The paper's preprocessing as two Keras pipelines: geometry, then colour.

    ``geometric`` resizes to ``round(image_size / 0.875)`` square (bilinear;
    512 for 448) and crops ``image_size``: a ``RandomCrop`` and a
    ``RandomFlip("horizontal")`` when ``training``, a ``CenterCrop``
    otherwise. It works on any number of channels: concatenate a mask to the
    image to crop and flip both the same way (``preprocess`` does).

    ``photometric`` takes the 3 colour channels in ``[0, 1]``. When
    ``training`` and ``color_jitter > 0`` it jitters brightness, contrast and
    saturation, each by a random factor in ``[1 - j, 1 + j]`` per image
    (``j = color_jitter``), as torchvision's ``ColorJitter(j, j, j)`` (the
    BR-NPA authors' own values, brightness 0.126 and saturation 0.5, are
    those of ``augmentation_layers``):

    - brightness: ``keras_brnpa.layers.RandomBrightnessScale``, the
      multiplicative one (``x * b``). Keras' ``RandomBrightness`` adds a
      delta instead (``x + d``), which lifts black pixels and, at ``0.4``,
      moves every pixel by up to 40 % of the range: not the paper's
      augmentation.
    - contrast: ``keras.layers.RandomContrast((j, j))``, ``(x - m) * c + m`` with
      ``m`` the image's mean of each channel (torchvision blends with the
      mean of the grey image, a close variant).
    - saturation: ``keras.layers.RandomSaturation``, whose factor ``f`` in
      ``[0, 1]`` scales the HSV saturation by ``f / (1 - f)``; drawn in
      ``[(1 - j) / (2 - j), (1 + j) / (2 + j)]``, that scale spans
      ``[1 - j, 1 + j]``.

    Then it applies ``normalization`` (``normalization_layer``; a
    ``Rescaling(1.0)`` that changes nothing for ``None``).
    The layers are created in ``float32`` whatever the global dtype policy.
    Each random layer gets its own seed (``seed``, ``seed + 1``, ...) when
    ``seed`` is given.

    Use them in a ``tf.data`` pipeline (any backend) or in a model. In a
    TensorFlow-backend ``tf.data.Dataset.map``, create them before the
    ``map``, not inside the mapped function (their random state is a
    variable).

    Args:
        image_size: int >= 1, side of the output.
        training: bool, random crop, flip and jitter (``True``) or the
            centre crop (``False``).
        color_jitter: float in ``[0, 1)``; ``0`` turns the jitter off.
        seed: optional int, seed of the random layers.
        normalization: ``None`` (keep ``[0, 1]``), ``"imagenet"`` or a pair
            ``(mean, std)``; see ``normalization_layer``.

    Returns:
        ``(geometric, photometric)``, two ``keras.layers.Pipeline``.

    Example:

    >>> import numpy as np, tensorflow as tf, keras_brnpa
    >>> geometric, photometric = keras_brnpa.datasets.preprocessing_layers(
    ...     32, training=True, seed=0)
    >>> data = tf.data.Dataset.from_tensor_slices(np.random.rand(4, 50, 40, 3))
    >>> data = data.map(lambda image: photometric(geometric(image)))
    >>> [tuple(image.shape) for image in data.take(2)]
    [(32, 32, 3), (32, 32, 3)]
    """
    import keras

    from keras_brnpa.layers.random_brightness_scale import RandomBrightnessScale

    image_size = check_positive_int("image_size", image_size)
    training = check_bool("training", training)
    color_jitter = _check_jitter(color_jitter)
    seed = check_seed(seed, allow_none=True)
    values = check_normalization(normalization)
    seeds = [None] * 5 if seed is None else [int(seed) + k for k in range(5)]
    resized = int(round(image_size / RESIZE_RATIO))
    f32 = {"dtype": "float32"}
    geometric = [keras.layers.Resizing(resized, resized, interpolation="bilinear", **f32)]
    if training:
        geometric += [
            keras.layers.RandomCrop(image_size, image_size, seed=seeds[0], **f32),
            keras.layers.RandomFlip("horizontal", seed=seeds[1], **f32),
        ]
    else:
        geometric.append(keras.layers.CenterCrop(image_size, image_size, **f32))
    photometric = []
    if training and color_jitter:
        j = color_jitter
        photometric += [
            RandomBrightnessScale(j, value_range=(0, 1), seed=seeds[2], **f32),
            # (j, j): one float gives [1, 1 + j] in Keras 3.15 (the lower
            # bound is clipped at 0 before it is subtracted from 1).
            keras.layers.RandomContrast((j, j), value_range=(0, 1), seed=seeds[3], **f32),
            keras.layers.RandomSaturation(
                ((1 - j) / (2 - j), (1 + j) / (2 + j)), value_range=(0, 1), seed=seeds[4], **f32
            ),
        ]
    photometric.append(normalization_layer(values))
    return (
        keras.layers.Pipeline(geometric, name="geometric"),
        keras.layers.Pipeline(photometric, name="photometric"),
    )
