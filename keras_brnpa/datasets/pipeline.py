"""Feeding NumPy arrays to ``model.fit`` on every backend."""

import math

import keras
import numpy as np

from keras_brnpa.datasets.synthetic import synthetic_parts
from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid

KINDS = ("pydataset", "tf")


class ArrayDataset(keras.utils.PyDataset):
    """A ``keras.utils.PyDataset`` over in-memory arrays, for any backend.

    Yields ``(x, y)`` batches (or ``x`` alone when ``y`` is ``None``). With
    ``shuffle=True`` the order changes at every epoch, deterministically
    from ``seed`` and the epoch number, so that a run resumed after an
    interruption sees the same batches as an uninterrupted one.

    Args:
        x: array ``(N, ...)``.
        y: ``None`` or array ``(N, ...)``.
        batch_size: int >= 1; the last batch may be smaller.
        shuffle: bool, reshuffle at every epoch.
        seed: int, seed of the shuffling.
        **kwargs: ``keras.utils.PyDataset`` arguments (``workers``, ...).

    Example:

    >>> import numpy as np, keras_brnpa
    >>> data = keras_brnpa.datasets.ArrayDataset(
    ...     np.zeros((10, 4, 4, 3), "float32"), np.arange(10), batch_size=4)
    >>> len(data), data[2][0].shape
    (3, (2, 4, 4, 3))
    """

    def __init__(self, x, y=None, batch_size=32, shuffle=False, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.x = np.asarray(x)
        self.y = None if y is None else np.asarray(y)
        if self.y is not None and len(self.y) != len(self.x):
            raise invalid(
                "y", f"<array of length {len(self.y)}>", f"{len(self.x)} items, as many as x"
            )
        if len(self.x) == 0:
            raise invalid("x", "<empty array>", "at least one item")
        self.batch_size = check_positive_int("batch_size", batch_size)
        shuffle = check_bool("shuffle", shuffle)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self._order = self._make_order()

    def _make_order(self):
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch]).permutation(len(self.x))

    def set_epoch(self, epoch):
        """Use the order of epoch ``epoch`` (0-based) from now on."""
        self.epoch = int(epoch)
        self._order = self._make_order()

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        if index < 0 or index >= len(self):
            raise IndexError(f"batch index {index} out of range [0, {len(self)})")
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        if self.y is None:
            return self.x[rows]
        return self.x[rows], self.y[rows]

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)


def as_dataset(x, y=None, batch_size=32, shuffle=False, seed=0, kind="pydataset"):
    """Wrap arrays into something ``model.fit`` accepts.

    Args:
        x: array ``(N, ...)``, e.g. images.
        y: ``None`` or array ``(N, ...)``, e.g. labels.
        batch_size: int >= 1.
        shuffle: bool, reshuffle at every epoch (deterministic from
            ``seed``).
        seed: int.
        kind: ``"pydataset"`` (an ``ArrayDataset``, works on every backend)
            or ``"tf"`` (a batched ``tf.data.Dataset``; needs TensorFlow
            installed, and is accepted by ``fit`` on every backend).

    Returns:
        An ``ArrayDataset`` or a ``tf.data.Dataset`` of ``(x, y)`` batches.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> data = keras_brnpa.datasets.as_dataset(
    ...     np.zeros((6, 8, 8, 3), "float32"), np.zeros(6, "int64"), batch_size=4)
    >>> [batch[0].shape[0] for batch in (data[0], data[1])]
    [4, 2]
    """
    if kind not in KINDS:
        raise invalid("kind", kind, "one of " + ", ".join(repr(k) for k in KINDS))
    if kind == "pydataset":
        return ArrayDataset(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed)
    batch_size = check_positive_int("batch_size", batch_size)
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "as_dataset(kind='tf') needs TensorFlow: pip install tensorflow, "
            "or use kind='pydataset'"
        ) from error
    data = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    if shuffle:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def synthetic_parts_dataset(
    num_images=1000,
    image_size=64,
    num_classes=5,
    seed=0,
    batch_size=32,
    shuffle=True,
    kind="pydataset",
    **kwargs,
):
    """The embedded data (``synthetic_parts``) ready for ``model.fit``.

    Args:
        num_images, image_size, num_classes, seed: see ``synthetic_parts``.
        batch_size: int >= 1.
        shuffle: bool, reshuffle at every epoch.
        kind: ``"pydataset"`` or ``"tf"`` (see ``as_dataset``).
        **kwargs: other ``synthetic_parts`` arguments.

    Returns:
        A dataset of ``(images, labels)`` batches (the masks are not
        included; call ``synthetic_parts`` for them).

    Example:

    >>> import keras, keras_brnpa
    >>> data = keras_brnpa.datasets.synthetic_parts_dataset(
    ...     num_images=16, image_size=32, num_classes=4, batch_size=8)
    >>> model = keras.Sequential([
    ...     keras.Input((32, 32, 3)),
    ...     keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
    ...     keras_brnpa.BRNPAAttention(n_parts=3),
    ...     keras.layers.Dense(4),
    ... ])
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> len(model.fit(data, epochs=1, verbose=0).history["loss"])
    1
    """
    images, labels, _ = synthetic_parts(
        num_images=num_images,
        image_size=image_size,
        num_classes=num_classes,
        seed=seed,
        **kwargs,
    )
    return as_dataset(images, labels, batch_size=batch_size, shuffle=shuffle, seed=seed, kind=kind)
