"""Fine-grained data sets from TensorFlow Datasets, with the paper's preprocessing.

``tensorflow_datasets`` (and TensorFlow) are imported only inside the
functions, when a tfds data set is asked for: importing ``keras_brnpa``
never touches them (``tensorflow_datasets`` may use the network at import).
"""


from keras_brnpa.datasets.preprocessing import RESIZE_RATIO  # noqa: F401
from keras_brnpa.datasets.preprocessing import _check_jitter
from keras_brnpa.datasets.preprocessing import check_normalization
from keras_brnpa.datasets.preprocessing import preprocessing_layers
from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import invalid

#: What the package knows of the paper's data sets: the ground-truth
#: region used for the pointing game. ``"segmentation"`` entries give
#: (feature, kind of mask); ``"boxes"`` the bounding-box feature.
TFDS_DATASETS = {
    "caltech_birds2011": {"segmentation": ("segmentation_mask", "cub"), "boxes": "bbox"},
    "oxford_iiit_pet": {"segmentation": ("segmentation_mask", "trimap"), "boxes": "head_bbox"},
    "stanford_dogs": {"boxes": "objects/bbox"},
    "cars196": {"boxes": "bbox"},
}
MASK_SOURCES = ("auto", "segmentation", "boxes")


def _import_tfds():
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "keras_brnpa.datasets.load_tfds needs tensorflow and "
            "tensorflow-datasets: pip install 'keras-brnpa[tfds]'"
        ) from error
    return tf, tfds


def _feature(features, path):
    """Look up ``"objects/bbox"`` style paths in a tfds FeaturesDict."""
    node = features
    for key in path.split("/"):
        try:
            node = node[key]
        except (KeyError, TypeError):
            return None
    return node


def _annotation(name, features, mask_source):
    """(kind, feature path, mask kind) of the ground truth to use, or None."""
    known = TFDS_DATASETS.get(name, {})
    segmentation = known.get("segmentation")
    boxes = known.get("boxes")
    if name not in TFDS_DATASETS:  # other datasets: guess by feature names
        if _feature(features, "segmentation_mask") is not None:
            segmentation = ("segmentation_mask", "nonzero")
        for path in ("bbox", "objects/bbox"):
            if boxes is None and _feature(features, path) is not None:
                boxes = path
    if mask_source in ("auto", "segmentation") and segmentation:
        return ("segmentation",) + segmentation
    if mask_source in ("auto", "boxes") and boxes:
        return ("boxes", boxes, None)
    return None


def _segmentation_to_mask(tf, mask, kind):
    """(H, W, 1) integer annotation -> (H, W, 1) float32 {0, 1} foreground."""
    mask = tf.cast(mask, tf.int32)
    if kind == "trimap":  # Oxford pets: 1 pet, 2 background, 3 border
        fg = tf.logical_or(tf.equal(mask, 1), tf.equal(mask, 3))
    elif kind == "cub":  # CUB: 0..255, share of annotators marking the bird
        fg = mask > 127
    else:
        fg = mask > 0
    return tf.cast(fg, tf.float32)


def _boxes_to_mask(tf, boxes, height, width):
    """Normalised (ymin, xmin, ymax, xmax) boxes -> (H, W, 1) {0, 1} mask."""
    boxes = tf.reshape(tf.cast(boxes, tf.float32), (-1, 4))
    ys = (tf.range(height, dtype=tf.float32) + 0.5) / tf.cast(height, tf.float32)
    xs = (tf.range(width, dtype=tf.float32) + 0.5) / tf.cast(width, tf.float32)
    in_y = tf.logical_and(ys[None, :] >= boxes[:, :1], ys[None, :] <= boxes[:, 2:3])
    in_x = tf.logical_and(xs[None, :] >= boxes[:, 1:2], xs[None, :] <= boxes[:, 3:4])
    inside = tf.logical_and(in_y[:, :, None], in_x[:, None, :])  # (n, H, W)
    return tf.cast(tf.reduce_any(inside, axis=0), tf.float32)[..., None]


_CACHED_LAYERS = {}


def _layers(image_size, training, color_jitter, seed, normalization, cache):
    """``preprocessing_layers`` created outside any ``tf.function``.

    ``preprocess`` may be called inside ``tf.data.Dataset.map``, whose
    function TensorFlow traces: the random layers' state variables are
    created eagerly (``tf.init_scope``) and, for ``preprocess``, kept in a
    cache so that the traced function keeps using the same ones.
    """
    import tensorflow as tf

    key = (image_size, training, color_jitter, seed, normalization)
    if cache and key in _CACHED_LAYERS:
        return _CACHED_LAYERS[key]
    with tf.init_scope():
        layers = preprocessing_layers(image_size, training, color_jitter, seed, normalization)
    if cache:
        if len(_CACHED_LAYERS) >= 64:
            _CACHED_LAYERS.pop(next(iter(_CACHED_LAYERS)))
        _CACHED_LAYERS[key] = layers
    return layers


def _apply(layers, image, image_size, training, mask=None):
    import tensorflow as tf

    geometric, photometric = layers
    image = tf.convert_to_tensor(image)
    if image.dtype.is_integer:
        image = tf.cast(image, tf.float32) / 255.0
    else:
        image = tf.cast(image, tf.float32)
    if image.shape[-1] == 1:  # grayscale sets
        image = tf.image.grayscale_to_rgb(image)
    # The mask rides along as a 4th channel: cropped and flipped with the
    # image by the same random draw, and resized bilinearly like it.
    stack = image if mask is None else tf.concat([image, tf.cast(mask, tf.float32)], -1)
    stack = geometric(stack, training=training)
    image = tf.clip_by_value(stack[..., :3], 0.0, 1.0)
    image = tf.ensure_shape(photometric(image, training=training), (image_size, image_size, 3))
    if mask is None:
        return image
    return image, tf.ensure_shape(stack[..., 3] > 0.5, (image_size, image_size))


def preprocess(
    image, image_size, training, mask=None, seed=None, color_jitter=0.4, normalization=None
):
    """The paper's preprocessing of one image (and its mask), with Keras layers.

    The image is resized to ``round(image_size / 0.875)`` square (512 for
    448), then cropped to ``image_size``: a random crop, a random
    horizontal flip and a colour jitter (brightness, contrast, saturation
    by a factor in ``[1 - color_jitter, 1 + color_jitter]``, brightness
    multiplicative as in torchvision) when ``training``, the centre crop
    otherwise. The mask gets the same geometric transformation (not the
    jitter): it is stacked on the image as a 4th channel before the crop
    and the flip. The layers are those of ``preprocessing_layers``; this
    function runs them with TensorFlow (eagerly or inside
    ``tf.data.Dataset.map``) whatever the Keras backend.

    Args:
        image: ``(H, W, 3)`` uint8 or float tensor (floats in ``[0, 1]``).
        image_size: int, side of the output.
        training: bool.
        mask: optional ``(H, W, 1)`` float tensor in ``[0, 1]``.
        seed: optional int, seed of the random operations. The layers of
            one set of arguments are created once and reused, so two calls
            with the same seed give the next draws, not the same ones.
        color_jitter: float in ``[0, 1)``.
        normalization: ``None`` (images in ``[0, 1]``, the default),
            ``"imagenet"`` or a pair ``(mean, std)``: applied last (see
            ``normalization_layer``).

    Returns:
        float32 image ``(image_size, image_size, 3)``, in ``[0, 1]``
        without ``normalization``, and with ``mask`` a tuple ``(image,
        mask)``, the mask boolean ``(image_size, image_size)``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> out = keras_brnpa.datasets.preprocess(
    ...     np.zeros((60, 80, 3), "uint8"), image_size=32, training=False)
    >>> tuple(out.shape)
    (32, 32, 3)
    """
    image_size = check_positive_int("image_size", image_size)
    training = bool(training)
    color_jitter = _check_jitter(color_jitter)
    seed = check_seed(seed, allow_none=True)
    values = check_normalization(normalization)
    layers = _layers(image_size, training, color_jitter, seed, values, cache=True)
    return _apply(layers, image, image_size, training, mask)


def load_tfds(
    name,
    split="train",
    image_size=448,
    training=None,
    batch_size=None,
    with_masks=False,
    mask_source="auto",
    data_dir=None,
    download=False,
    shuffle_buffer=1000,
    seed=None,
    color_jitter=0.4,
    with_info=False,
    normalization=None,
    augment=None,
):
    """Load a TensorFlow Datasets image set with the paper's preprocessing.

    Known sets (with the ground truth used for the pointing game):
    ``caltech_birds2011`` (CUB-200-2011: segmentation masks, else the
    bird's box), ``oxford_iiit_pet`` (trimap: pet and border pixels, else
    the head box), ``stanford_dogs`` (dog boxes), ``cars196`` (car box).
    Other tfds image classification sets work by name (features ``image``
    and ``label``; ``segmentation_mask``, ``bbox`` or ``objects/bbox`` are
    used for masks when present).

    Images are resized to ``image_size / 0.875`` and cropped to
    ``image_size`` (random crop, flip and colour jitter when training; the
    centre crop otherwise) by the Keras layers of ``preprocessing_layers``,
    see ``preprocess``. They come in ``[0, 1]``, the input of the package's
    models; ``normalization="imagenet"`` normalises them for ImageNet
    weights that expect mean/std inputs. Nothing is downloaded unless
    ``download=True``.

    Args:
        name: tfds name, e.g. ``"caltech_birds2011"``.
        split: tfds split, e.g. ``"train"``, ``"test"``, ``"train[:10%]"``.
        image_size: int >= 1, output side (the paper: 448).
        training: bool, random augmentation and shuffling; ``None``: ``True``
            for splits starting with ``"train"``.
        augment: ``None`` (as ``training``) or bool: ``False`` with
            ``training=True`` shuffles but takes the centre crop, without
            flip or jitter (``brnpa train`` without ``--augment``).
        batch_size: ``None`` (unbatched) or int >= 1.
        with_masks: bool; if ``True`` elements are
            ``(image, label, mask)`` with a boolean ``(image_size,
            image_size)`` mask of the object (for evaluation; ``fit`` would
            take the mask for sample weights, so map it away for training).
        mask_source: ``"auto"`` (segmentation where the set has it, else
            boxes), ``"segmentation"`` or ``"boxes"``.
        data_dir: tfds data directory (default: tfds's).
        download: bool, download and prepare the set when missing.
        shuffle_buffer: int >= 1, shuffling buffer when training.
        seed: optional int, seed of shuffling and augmentation.
        color_jitter: float in ``[0, 1)``, strength of the colour jitter.
        with_info: bool, also return the ``tfds.core.DatasetInfo``.
        normalization: ``None`` (images in ``[0, 1]``), ``"imagenet"``
            (minus ``IMAGENET_MEAN``, over ``IMAGENET_STD``) or a pair
            ``(mean, std)``; see ``normalization_layer``. A model that
            starts with its own normalisation layer takes the default.

    Returns:
        A ``tf.data.Dataset`` of ``(image, label)`` (float32 images in
        ``[0, 1]`` unless ``normalization``, int64 labels) or ``(image, label, mask)``; with
        ``with_info`` a tuple ``(dataset, info)``; ``info.features["label"].
        num_classes`` is the number of classes.

    Example:

    >>> import tensorflow_datasets as tfds, keras_brnpa
    >>> with tfds.testing.mock_data(num_examples=4):
    ...     data = keras_brnpa.datasets.load_tfds(
    ...         "caltech_birds2011", "test", image_size=32, with_masks=True)
    ...     image, label, mask = next(iter(data))
    >>> tuple(image.shape), tuple(mask.shape), mask.dtype.name
    ((32, 32, 3), (32, 32), 'bool')
    """
    if not isinstance(name, str) or not name:
        raise invalid("name", name, "a TensorFlow Datasets name such as 'caltech_birds2011'")
    image_size = check_positive_int("image_size", image_size)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    shuffle_buffer = check_positive_int("shuffle_buffer", shuffle_buffer)
    if mask_source not in MASK_SOURCES:
        raise invalid("mask_source", mask_source, "one of " + ", ".join(map(repr, MASK_SOURCES)))
    for flag, value in (("with_masks", with_masks), ("download", download), ("with_info", with_info)):
        check_bool(flag, value)
    if training is None:
        training = str(split).startswith("train")
    augment = bool(training) if augment is None else check_bool("augment", augment)
    color_jitter = _check_jitter(color_jitter)
    values = check_normalization(normalization)
    tf, tfds = _import_tfds()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError
        raise invalid(
            "name", name, "a TensorFlow Datasets name, e.g. " + ", ".join(map(repr, TFDS_DATASETS))
        ) from error
    features = builder.info.features
    if _feature(features, "image") is None or _feature(features, "label") is None:
        raise invalid("name", name, "a tfds data set with 'image' and 'label' features")
    annotation = _annotation(name, features, mask_source) if with_masks else None
    if with_masks and annotation is None:
        raise invalid(
            "with_masks",
            with_masks,
            f"False: {name!r} has no segmentation masks or boxes usable with "
            f"mask_source={mask_source!r}",
        )
    if download:
        builder.download_and_prepare()
    try:
        data = builder.as_dataset(split=split, shuffle_files=training)
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RuntimeError(
            f"Could not read the tfds data set {name!r} (split {split!r}) from "
            f"{builder.data_dir!r}: {message}. Prepare it once with "
            f"load_tfds({name!r}, download=True) or `tfds build {name}`, or "
            "pass data_dir."
        ) from error

    # Created here, once per data set: its own random stream for ``seed``.
    layers = _layers(image_size, augment, color_jitter, seed, values, cache=False)

    def prepare(example):
        label = tf.cast(example["label"], tf.int64)
        image = example["image"]
        if annotation is None:
            return _apply(layers, image, image_size, augment), label
        kind, path, mask_kind = annotation
        if kind == "segmentation":
            mask = _segmentation_to_mask(tf, _get(example, path), mask_kind)
            # Same size as the image (always true in the real sets).
            mask = tf.image.resize(mask, tf.shape(image)[:2], method="nearest")
        else:
            shape = tf.shape(image)
            mask = _boxes_to_mask(tf, _get(example, path), shape[0], shape[1])
        image, mask = _apply(layers, image, image_size, augment, mask)
        return image, label, mask

    if training:
        data = data.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    data = data.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size is not None:
        data = data.batch(batch_size)
    data = data.prefetch(tf.data.AUTOTUNE)
    return (data, builder.info) if with_info else data


def _get(example, path):
    node = example
    for key in path.split("/"):
        node = node[key]
    return node
