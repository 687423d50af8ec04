"""Multiplicative brightness jitter (torchvision's ``ColorJitter(brightness=...)``)."""

import numbers

import keras

from keras_brnpa._checks import invalid


@keras.saving.register_keras_serializable(package="keras_brnpa")
class RandomBrightnessScale(keras.layers.RandomBrightness):
    """Randomly scale the brightness of images by a factor in ``[1 - f, 1 + f]``.

    ``keras.layers.RandomBrightness`` **adds** a random delta to every
    pixel (``x + d``, ``d`` in ``[-f, f]`` times the value range).
    torchvision's ``ColorJitter(brightness=f)``, which the BR-NPA authors
    train with, **multiplies** (``x * b``, ``b`` in ``[1 - f, 1 + f]``):
    black stays black and the contrast between pixels scales with them.
    This layer is the multiplicative one: it draws the same random numbers
    as ``RandomBrightness`` (one per image) and uses ``b = 1 + d /
    (high - low)`` as a factor, then clips to ``value_range``. It is meant
    for images whose range starts at 0 (``[0, 1]`` or ``[0, 255]``), before
    any mean/std normalisation.

    Like every Keras image preprocessing layer it runs in a ``tf.data``
    pipeline whatever the Keras backend, and only when ``training=True``
    (its default when called outside a model).

    Args:
        factor: float in ``[0, 1)``, or a pair ``(lower, upper)`` with
            ``-1 < lower <= upper < 1``: the factor is drawn uniformly from
            ``[1 + lower, 1 + upper]`` (``[1 - factor, 1 + factor]`` for one
            float).
        value_range: ``(low, high)`` of the images, ``(0, 255)`` by default
            as in ``RandomBrightness``; ``(0, 1)`` for the package's images.
        seed: optional int, seed of the random factors.
        **kwargs: base layer arguments (``name``, ``dtype``).

    Call arguments:
        inputs: images ``(H, W, C)`` or ``(B, H, W, C)``; one factor per
            image, the same for all its channels.
        training: bool; ``False`` returns the images unchanged.

    Returns:
        The images times their factor, clipped to ``value_range``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> layer = keras_brnpa.layers.RandomBrightnessScale(
    ...     0.4, value_range=(0, 1), seed=0)
    >>> images = np.stack([np.full((4, 4, 3), 0.5), np.zeros((4, 4, 3))]).astype("float32")
    >>> out = np.asarray(layer(images, training=True))
    >>> bool(0.3 <= out[0].min() <= out[0].max() <= 0.7), float(out[1].max())
    (True, 0.0)
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        pair = tuple(factor) if isinstance(factor, (tuple, list)) else (factor,)
        low, high = 1.0, 0.0  # invalid unless set below
        if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in pair):
            if len(pair) == 2:
                low, high = float(pair[0]), float(pair[1])
            elif len(pair) == 1 and factor >= 0:
                low, high = -float(factor), float(factor)
        if not -1.0 < low <= high < 1.0:
            raise invalid(
                "factor", factor, "a float in [0, 1) or a pair (lower, upper) with "
                "-1 < lower <= upper < 1"
            )
        super().__init__(factor=factor, value_range=value_range, seed=seed, **kwargs)

    def transform_images(self, images, transformation, training=True):
        if not training:
            return images
        low, high = self.value_range
        delta = self.backend.cast(transformation["rgb_delta"], images.dtype)
        scale = 1.0 + delta / (high - low)
        return self.backend.numpy.clip(images * scale, low, high)
