"""The BR-NPA authors' training augmentation, for batches already at the model's size.

The authors (``get_transform`` of their ``fineGrainedDataset.py``) train
with: resize to ``size / 0.875``, a random crop of ``size``, a random
horizontal flip and torchvision's ``ColorJitter(brightness=0.126,
saturation=0.5)``; test images get the centre crop. ``load_tfds`` does the
resize-and-crop from the full-size images. ``augmentation_layers`` is the
same augmentation for images that are already ``size`` pixels (a folder
loaded by ``image_folder``, arrays): the crop is taken from a ``1 / 0.875``
enlargement, which zooms in by that factor and shifts each image by a
random offset. ``AugmentedDataset`` applies it to the batches of a
training ``PyDataset``, with one seed per (epoch, batch) so that a
resumed run sees the batches of an uninterrupted one. Validation and test
data are never wrapped.
"""

import numbers

import keras
import numpy as np

from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import invalid

__all__ = ["AugmentedDataset", "augmentation_layers"]


def _size(image_size):
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        pair = (image_size, image_size)
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        pair = tuple(image_size)
    else:
        pair = ()
    if len(pair) != 2 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in pair
    ):
        raise invalid("image_size", image_size, "an integer >= 1 or a pair (height, width)")
    return int(pair[0]), int(pair[1])


def _fraction(name, value, high, closed_high=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (0 <= value <= high if closed_high else 0 <= value < high)
    if not ok:
        bracket = "]" if closed_high else ")"
        raise invalid(name, value, f"a float in [0, {high}{bracket}")
    return float(value)


def _check_options(crop_ratio, flip, brightness, saturation, value_range):
    ok = isinstance(crop_ratio, numbers.Real) and not isinstance(crop_ratio, bool)
    if not ok or not 0 < crop_ratio <= 1:
        raise invalid("crop_ratio", crop_ratio, "a float in (0, 1]; 1 turns the crop off")
    flip = check_bool("flip", flip)
    brightness = _fraction("brightness", brightness, 1)
    saturation = _fraction("saturation", saturation, 1)
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        low = high = 0.0
    if not low < high:
        raise invalid("value_range", value_range, "a pair (low, high) with low < high")
    return float(crop_ratio), flip, brightness, saturation, (low, high)


def augmentation_layers(image_size, crop_ratio=0.875, flip=True, brightness=0.126,
                        saturation=0.5, value_range=(0, 1), seed=None):
    """The BR-NPA authors' training augmentation as one ``keras.layers.Pipeline``.

    For images already at ``image_size`` (channels last), in this order:

    - crop (``crop_ratio < 1``): ``Resizing`` to ``round(side / crop_ratio)``
      (bilinear), ``RandomTranslation`` by whole pixels up to the margin
      (nearest interpolation), ``CenterCrop`` back to ``image_size``: a
      random crop of the enlargement, drawn per image
      (``keras.layers.RandomCrop`` draws one offset per batch). With the
      authors' ``0.875``: 37 px for 32, 512 for 448 (offsets up to 32 px
      either way).
    - ``RandomFlip("horizontal")`` (``flip``), per image.
    - brightness: ``keras_brnpa.layers.RandomBrightnessScale``, a factor in
      ``[1 - brightness, 1 + brightness]`` per image, multiplicative as
      torchvision's ``ColorJitter``.
    - saturation: ``keras.layers.RandomSaturation`` with its factor chosen
      so that the HSV saturation is scaled by ``[1 - saturation,
      1 + saturation]``, per image.

    The defaults are the authors' (crop ratio 0.875, flip, brightness
    0.126, saturation 0.5, no contrast or hue). A value of 0 (``1`` for
    ``crop_ratio``, ``False`` for ``flip``) leaves that step out. The layers
    keep the shape and the ``value_range`` of the images, run on every
    backend and inside ``tf.data``, and only change the images when called
    with ``training=True`` (their default outside a model): use them on
    training data only. ``AugmentedDataset`` applies them to the batches of
    a ``PyDataset``.

    Args:
        image_size: int or ``(height, width)``, the size of the images.
        crop_ratio: float in ``(0, 1]``, the crop's share of the enlarged
            side (the authors' 0.875); ``1``: no crop.
        flip: bool, random horizontal flip.
        brightness: float in ``[0, 1)``.
        saturation: float in ``[0, 1)``.
        value_range: ``(low, high)`` of the images, ``(0, 1)`` for the
            package's images.
        seed: optional int; the random layers get ``seed``, ``seed + 1``, ...

    Returns:
        A ``keras.layers.Pipeline`` (float32 layers).

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> augment = keras_brnpa.datasets.augmentation_layers(32, seed=0)
    >>> images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    >>> out = keras.ops.convert_to_numpy(augment(images, training=True))
    >>> out.shape, bool(np.abs(out - images).max() > 0.01)
    ((2, 32, 32, 3), True)
    >>> bool(0 <= out.min() and out.max() <= 1)
    True
    """
    from keras_brnpa.layers.random_brightness_scale import RandomBrightnessScale

    height, width = _size(image_size)
    crop_ratio, flip, brightness, saturation, value_range = _check_options(
        crop_ratio, flip, brightness, saturation, value_range)
    seed = check_seed(seed, allow_none=True)
    seeds = [None] * 4 if seed is None else [seed + k for k in range(4)]
    f32 = {"dtype": "float32"}
    layers = []
    big_h, big_w = round(height / crop_ratio), round(width / crop_ratio)
    if (big_h, big_w) != (height, width):
        layers += [
            keras.layers.Resizing(big_h, big_w, interpolation="bilinear", **f32),
            # A shift of at most the (whole-pixel) margin keeps the centre
            # crop inside the enlarged image; nearest interpolation makes it
            # a whole-pixel shift: a random crop, as torchvision's. (Bilinear
            # translation is also about 70x slower on the torch backend.)
            keras.layers.RandomTranslation(
                ((big_h - height) // 2) / big_h, ((big_w - width) // 2) / big_w,
                fill_mode="nearest", interpolation="nearest", seed=seeds[0], **f32),
            keras.layers.CenterCrop(height, width, **f32),
        ]
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seeds[1], **f32))
    if brightness:
        layers.append(RandomBrightnessScale(brightness, value_range=value_range, seed=seeds[2],
                                            **f32))
    if saturation:
        s = saturation
        layers.append(keras.layers.RandomSaturation(
            ((1 - s) / (2 - s), (1 + s) / (2 + s)), value_range=value_range, seed=seeds[3],
            **f32))
    if not layers:  # nothing asked: a layer that changes nothing
        layers.append(keras.layers.Rescaling(1.0, **f32))
    return keras.layers.Pipeline(layers, name="augmentation")


class AugmentedDataset(keras.utils.PyDataset):
    """The batches of a training ``PyDataset``, augmented by ``augmentation_layers``.

    Each batch ``(images, labels, ...)`` of ``data`` comes out with its
    images augmented (same shape and dtype) and everything else as it was.
    The random draws of batch ``index`` in epoch ``epoch`` come from the
    seed ``(seed, epoch, index)``: the same batch is augmented the same
    way whenever it is read, and a run resumed by
    ``keras_brnpa.training.fit_resumable`` (which calls ``set_epoch``) sees
    the batches of an uninterrupted run. ``set_epoch`` and ``on_epoch_end``
    are passed on to ``data`` (the order of an ``ArrayDataset``).

    Wrap the training data only: validation and test images must stay as
    they are (``brnpa train --augment`` does exactly this).

    Args:
        data: a ``keras.utils.PyDataset`` (or any object with ``__len__``
            and ``__getitem__``) of ``images`` or ``(images, labels, ...)``
            batches, images ``(B, H, W, 3)`` channels last.
        seed: int, seed of the augmentation.
        crop_ratio, flip, brightness, saturation, value_range: see
            ``augmentation_layers``.
        **kwargs: ``keras.utils.PyDataset`` arguments (``workers``, ...).

    Example:

    >>> import numpy as np, keras_brnpa
    >>> images = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    >>> train = keras_brnpa.datasets.ArrayDataset(images, np.arange(4), batch_size=2)
    >>> augmented = keras_brnpa.datasets.AugmentedDataset(train, seed=0)
    >>> x, y = augmented[0]
    >>> x.shape, y.tolist(), bool(np.abs(x - images[:2]).max() > 0.01)
    ((2, 32, 32, 3), [0, 1], True)
    >>> bool(np.array_equal(augmented[0][0], x))   # the same draw for the same batch
    True
    """

    def __init__(self, data, seed=0, crop_ratio=0.875, flip=True, brightness=0.126,
                 saturation=0.5, value_range=(0, 1), **kwargs):
        super().__init__(**kwargs)
        if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
            raise invalid("data", f"<{type(data).__name__}>",
                          "a keras.utils.PyDataset (or an object with __len__ and "
                          "__getitem__) of image batches; map augmentation_layers over a "
                          "tf.data.Dataset instead")
        self.data = data
        self.seed = check_seed(seed)
        crop_ratio, flip, brightness, saturation, value_range = _check_options(
            crop_ratio, flip, brightness, saturation, value_range)
        self.options = {"crop_ratio": crop_ratio, "flip": flip, "brightness": brightness,
                        "saturation": saturation, "value_range": value_range}
        self.epoch = 0

    def __len__(self):
        return len(self.data)

    def _batch_seed(self, index):
        state = np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(1)
        return int(state[0] & 0x3FFFFFFF)

    def _augment(self, images, index):
        """``images`` augmented with the draws of batch ``index`` of this epoch."""
        images = np.asarray(keras.ops.convert_to_numpy(images))
        if images.ndim != 4 or images.shape[-1] != 3:
            raise invalid("data", f"<batch of images of shape {images.shape}>",
                          "batches of images (B, H, W, 3), channels last")
        # The layers are made per batch, seeded by (seed, epoch, index):
        # the same batch gets the same draws whenever it is read.
        layers = augmentation_layers(images.shape[1:3], seed=self._batch_seed(index),
                                     **self.options)
        out = layers(images.astype("float32"), training=True)
        return keras.ops.convert_to_numpy(out).astype(images.dtype, copy=False)

    def __getitem__(self, index):
        batch = self.data[index]
        if isinstance(batch, tuple):
            return (self._augment(batch[0], index),) + tuple(batch[1:])
        return self._augment(batch, index)

    def set_epoch(self, epoch):
        """Use the draws (and the data's order) of epoch ``epoch`` (0-based)."""
        self.epoch = int(epoch)
        if callable(getattr(self.data, "set_epoch", None)):
            self.data.set_epoch(epoch)

    def on_epoch_end(self):
        self.epoch += 1
        if callable(getattr(self.data, "on_epoch_end", None)):
            self.data.on_epoch_end()
