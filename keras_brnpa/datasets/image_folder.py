"""Your own images: a class-per-subfolder folder, the Keras convention.

``image_folder`` indexes and splits the folder with
``keras.utils.image_dataset_from_directory`` (same allowed formats, same
class order, same seeded training/validation split) and reads the files
with ``tf.data``, with three changes that the package needs:

- images are float32 in ``[0, 1]`` (Keras yields ``[0, 255]``), decoded at
  their full bit depth: a 16-bit PNG keeps its 16 bits (65535 -> 1.0,
  32768 -> 0.50001; Keras' own pipeline rounds it to 8 bits first, and
  ``keras.utils.load_img`` saturates it: 32768 -> 255);
- files that cannot be decoded (corrupt, empty, truncated, not an image
  despite the extension) are skipped with one warning naming them, instead
  of a ``tf.data`` error in the middle of ``fit`` that names no file;
- an optional masks folder gives ground-truth regions for the localisation
  metrics, aligned with the images.
"""

import contextlib
import io
import os
import warnings

import numpy as np

from keras_brnpa._warnings import BRNPAWarning
from keras_brnpa.datasets.pipeline import ArrayDataset
from keras_brnpa.datasets.preprocessing import check_normalization
from keras_brnpa.datasets.preprocessing import normalization_layer
from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import invalid

#: File extensions read as images (those of
#: ``keras.utils.image_dataset_from_directory``); other files are ignored
#: (with a warning).
IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
INTERPOLATIONS = (
    "bilinear",
    "nearest",
    "bicubic",
    "area",
    "lanczos3",
    "lanczos5",
    "gaussian",
    "mitchellcubic",
)
SUBSETS = ("training", "validation", "both")
# Bad files named in the warning before "and N more".
_LISTED = 10


def _import_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "keras_brnpa.datasets.image_folder reads the files with "
            "keras.utils.image_dataset_from_directory and tf.data, which need "
            "TensorFlow, whatever the Keras backend: pip install tensorflow "
            "(tensorflow-cpu is enough). The result then works with model.fit "
            "on JAX and PyTorch too."
        ) from error
    return tf


def _check_image_size(image_size):
    size = (image_size, image_size) if not isinstance(image_size, (tuple, list)) else image_size
    if len(size) != 2:
        raise invalid("image_size", image_size, "an integer >= 1 or a pair (height, width)")
    try:
        return tuple(check_positive_int("image_size", s) for s in size)
    except ValueError:
        raise invalid(
            "image_size", image_size, "an integer >= 1 or a pair (height, width)"
        ) from None


def _check_arguments(directory, validation_split, subset, seed, masks, shuffle, interpolation, as_numpy):
    if not isinstance(directory, (str, os.PathLike)) or not os.path.isdir(directory):
        raise invalid("directory", directory, "an existing folder with one subfolder per class")
    if masks is not None and (
        not isinstance(masks, (str, os.PathLike)) or not os.path.isdir(masks)
    ):
        raise invalid("masks", masks, "None or an existing folder")
    if validation_split is not None:
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)):
            raise invalid("validation_split", validation_split, "None or a float in (0, 1)")
        if not 0 < validation_split < 1:
            raise invalid("validation_split", validation_split, "None or a float in (0, 1)")
        if subset not in SUBSETS:
            raise invalid(
                "subset", subset, "one of 'training', 'validation', 'both' with validation_split"
            )
    elif subset is not None:
        raise invalid("subset", subset, "None when validation_split is None")
    seed = check_seed(seed)
    for name, value in (("shuffle", shuffle), ("as_numpy", as_numpy)):
        check_bool(name, value)
    if interpolation not in INTERPOLATIONS:
        raise invalid("interpolation", interpolation, "one of " + ", ".join(map(repr, INTERPOLATIONS)))


def _index(directory, image_size, validation_split, subset, seed, class_names):
    """``(class_names, [file paths of each returned subset])`` from Keras."""
    import keras

    # Keras prints "Using N files for training." whatever `verbose` says.
    with contextlib.redirect_stdout(io.StringIO()):
        result = keras.utils.image_dataset_from_directory(
            directory,
            labels="inferred",
            label_mode="int",
            class_names=class_names,
            image_size=image_size,
            batch_size=None,
            shuffle=True,
            seed=int(seed),
            validation_split=validation_split,
            subset=subset,
            verbose=False,
        )
    subsets = list(result) if isinstance(result, (list, tuple)) else [result]
    return list(subsets[0].class_names), [list(s.file_paths) for s in subsets]


def _other_files(directory, class_names):
    """Files of the class folders that are not read (not an image extension)."""
    others = []
    for name in class_names:
        for root, _, files in os.walk(os.path.join(directory, name)):
            for file in files:
                if not file.startswith(".") and not file.lower().endswith(IMAGE_FORMATS):
                    others.append(os.path.join(root, file))
    return sorted(others)


def _undecodable(tf, paths):
    """The paths that TensorFlow cannot decode (one parallel pass)."""
    if not paths:
        return set()

    def decodes(index, path):
        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        return index, tf.shape(image)[0]

    data = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), paths))
    data = data.map(decodes, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    good = {int(index) for index, _ in data.as_numpy_iterator()}
    return {path for i, path in enumerate(paths) if i not in good}


def _mask_path(masks, directory, path):
    relative = os.path.relpath(path, directory)
    return os.path.join(masks, os.path.splitext(relative)[0] + ".png")


def _loader(tf, image_size, interpolation, crop_to_aspect_ratio, with_masks, normalize=None):
    height, width = image_size

    def crop(image):
        shape = tf.shape(image)
        h, w = shape[0], shape[1]
        crop_h = tf.minimum(h, tf.maximum(1, tf.cast(tf.round(tf.cast(w, "float32") * height / width), "int32")))
        crop_w = tf.minimum(w, tf.maximum(1, tf.cast(tf.round(tf.cast(h, "float32") * width / height), "int32")))
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        return image[top : top + crop_h, left : left + crop_w]

    def resize(image, method):
        if crop_to_aspect_ratio:
            image = crop(image)
        return tf.image.resize(image, (height, width), method=method)

    def load_image(path):
        # dtype float32: 8- and 16-bit files both scaled to [0, 1] at full
        # precision; channels=3: grey replicated, alpha dropped.
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=3, dtype=tf.float32, expand_animations=False
        )
        image = tf.clip_by_value(resize(image, interpolation), 0.0, 1.0)
        if normalize is not None:
            image = normalize(image)
        image.set_shape((height, width, 3))
        return image

    def load_mask(path):
        mask = tf.io.decode_image(tf.io.read_file(path), channels=1, expand_animations=False)
        mask = tf.cast(mask > 0, "float32")
        mask = resize(mask, "bilinear")[..., 0] >= 0.5
        mask.set_shape((height, width))
        return mask

    if with_masks:
        return lambda path, label, mask_path: (load_image(path), label, load_mask(mask_path))
    return lambda path, label: (load_image(path), label)


def _warn_skipped(directory, bad, others):
    lines = []
    for title, files in (("cannot be decoded", sorted(bad)), ("are not images", others)):
        if not files:
            continue
        names = [os.path.relpath(f, directory) for f in files[:_LISTED]]
        more = f" and {len(files) - _LISTED} more" if len(files) > _LISTED else ""
        lines.append(f"{len(files)} file(s) {title}: {', '.join(names)}{more}")
    if lines:
        warnings.warn(
            f"image_folder({os.fspath(directory)!r}) skips " + "; ".join(lines),
            BRNPAWarning,
            stacklevel=3,
        )


def image_folder(
    directory,
    image_size,
    batch_size=32,
    validation_split=None,
    subset=None,
    seed=0,
    masks=None,
    shuffle=True,
    interpolation="bilinear",
    crop_to_aspect_ratio=False,
    class_names=None,
    as_numpy=False,
    normalization=None,
):
    """Images in a class-per-subfolder folder, ready for ``fit`` and the metrics.

    ``directory`` holds one subfolder per class (``directory/cat/1.jpg``,
    ``directory/dog/a.png``, nested folders allowed), the convention of
    ``keras.utils.image_dataset_from_directory``, which indexes the folder
    and splits it here: the classes are the subfolder names in
    alphanumeric order (or ``class_names``), the files those ending in
    ``.bmp .gif .jpeg .jpg .png``, and ``validation_split`` keeps the last
    share of the file list shuffled with ``seed``, so that ``"training"``
    and ``"validation"`` with the same seed never overlap (the split is
    made before bad files are removed, so it does not move when a file
    breaks).

    Images are float32 in ``[0, 1]``, channels last, resized to
    ``image_size``: the package's input convention (the synthetic data and
    the tfds loaders give the same); ``normalization="imagenet"`` gives
    ImageNet mean/std normalised images instead, for pretrained weights
    that expect them. Grayscale images are replicated to 3
    channels, the alpha channel of RGBA images is dropped (not composited),
    and 16-bit PNGs are scaled by 1/65535 (full scale -> 1.0). Labels are
    int64 class indices into ``class_names``.

    Bad files are skipped, with ONE ``UserWarning`` naming them: files that
    TensorFlow cannot decode (corrupt, empty, truncated, or not an image
    despite their extension) and other files in the class folders (e.g.
    ``notes.txt``; hidden files are ignored silently). To make them an error
    instead, run under ``warnings.simplefilter("error")``. Checking the
    files reads each of them once when the function is called.

    TensorFlow is required, whatever the Keras backend:
    ``image_dataset_from_directory`` and the file reading use ``tf.data``.
    Without TensorFlow an ``ImportError`` says so. The result works with
    ``model.fit`` on TensorFlow, JAX and PyTorch.

    Args:
        directory: path of the folder of class subfolders.
        image_size: int or ``(height, width)``.
        batch_size: int >= 1.
        validation_split: ``None`` or a float in (0, 1), the share of the
            files held out for validation.
        subset: with ``validation_split``: ``"training"``,
            ``"validation"`` or ``"both"`` (returns the two).
        seed: int, seed of the split and of the shuffling.
        masks: ``None`` or a folder of ground-truth masks with the same
            relative paths as the images and the extension ``.png``
            (``masks/cat/1.png`` for ``directory/cat/1.jpg``), the same size
            as their image; non-zero pixels are the region. A readable image
            without a mask is an error; a mask that cannot be decoded skips
            its image (and is named in the warning). Masks are cropped and resized like
            their image and yielded as boolean ``(height, width)`` arrays,
            for ``keras_brnpa.metrics.pointing_game`` and
            ``energy_in_mask``.
        shuffle: bool; shuffle the training data at every epoch. Validation
            data (``subset="validation"``, the second of ``"both"``) is
            never shuffled.
        interpolation: resizing method of ``tf.image.resize``
            (``"bilinear"``, ``"nearest"``, ``"bicubic"``, ``"area"``, ...).
        crop_to_aspect_ratio: bool; crop the centre of each image to the
            aspect ratio of ``image_size`` before resizing, instead of
            stretching it.
        class_names: ``None`` or the list of class subfolders to use, in
            label order.
        as_numpy: bool; ``False`` streams the files with ``tf.data``;
            ``True`` loads everything in memory and returns an
            ``ArrayDataset`` (every array reachable as NumPy, the order of
            each epoch a function of ``seed`` and the epoch number, so that
            a resumed ``keras_brnpa.training.fit_resumable`` run sees the
            same batches).
        normalization: ``None`` (images in ``[0, 1]``, the default),
            ``"imagenet"`` (minus ``IMAGENET_MEAN``, over
            ``IMAGENET_STD``) or a pair ``(mean, std)``; see
            ``keras_brnpa.datasets.normalization_layer``. Masks are not
            affected.

    Returns:
        With ``as_numpy=False``, a batched ``tf.data.Dataset`` of
        ``(images, labels)``, or ``(images, labels, masks)`` with
        ``masks``; map the masks away before ``fit``
        (``data.map(lambda x, y, m: (x, y))``), which would read a third
        element as sample weights. With ``as_numpy=True``, an
        ``ArrayDataset`` of ``(images, labels)`` batches whose ``x`` and
        ``y`` are the NumPy arrays and ``masks`` the boolean masks (or
        ``None``). Both have the attributes ``class_names`` and
        ``file_paths`` (the files kept, in the order of the arrays for
        ``as_numpy=True``). With ``subset="both"``, a tuple
        ``(training, validation)`` of them.

    Raises:
        ValueError: invalid arguments, no class subfolder or no readable
            image, a missing mask or a mask of another size than its image.
        ImportError: TensorFlow is not installed.

    Example:

    >>> import os, tempfile, numpy as np, keras_brnpa
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> for name, value in (("cat", 50), ("dog", 200)):
    ...     os.makedirs(os.path.join(root, name))
    ...     for i in range(3):
    ...         Image.fromarray(np.full((40, 30, 3), value, "uint8")).save(
    ...             os.path.join(root, name, f"{i}.png"))
    >>> data = keras_brnpa.datasets.image_folder(root, 32, batch_size=4, as_numpy=True)
    >>> data.class_names, data.x.shape, data.x.dtype, sorted(data.y.tolist())
    (['cat', 'dog'], (6, 32, 32, 3), dtype('float32'), [0, 0, 0, 1, 1, 1])
    >>> round(float(data.x[data.y == 1].max()), 4)  # 200 / 255
    0.7843
    """
    _check_arguments(directory, validation_split, subset, seed, masks, shuffle, interpolation, as_numpy)
    image_size = _check_image_size(image_size)
    batch_size = check_positive_int("batch_size", batch_size)
    crop_to_aspect_ratio = check_bool("crop_to_aspect_ratio", crop_to_aspect_ratio)
    values = check_normalization(normalization)
    tf = _import_tensorflow()

    names, subsets = _index(directory, image_size, validation_split, subset, seed, class_names)
    class_index = {name: i for i, name in enumerate(names)}
    every = [path for paths in subsets for path in paths]
    bad = _undecodable(tf, every)
    mask_of = {}
    if masks is not None:
        # Only the readable images need a mask.
        mask_of = {p: _mask_path(masks, directory, p) for p in every if p not in bad}
        missing = [m for m in mask_of.values() if not os.path.isfile(m)]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ValueError(f"image_folder: no mask {missing[0]} for its image{more}")
        bad |= _undecodable(tf, list(mask_of.values()))
    _warn_skipped(directory, bad, _other_files(directory, names))
    if masks is not None:
        _check_mask_sizes([(p, mask_of[p]) for p in every if p not in bad and mask_of[p] not in bad])

    normalize = None if values is None else normalization_layer(values)
    load = _loader(tf, image_size, interpolation, crop_to_aspect_ratio, masks is not None, normalize)
    results = []
    for position, paths in enumerate(subsets):
        training = position == 0 and subset != "validation"
        kept = sorted(
            (p for p in paths if p not in bad and (masks is None or mask_of[p] not in bad)),
            key=lambda p: (class_index[os.path.relpath(p, directory).split(os.sep)[0]], p),
        )
        if not kept:
            raise ValueError(
                f"image_folder: no readable image in {os.fspath(directory)}"
                + (f" for subset {('training', 'validation')[position]!r}" if subset else "")
            )
        labels = np.array(
            [class_index[os.path.relpath(p, directory).split(os.sep)[0]] for p in kept], "int64"
        )
        columns = (kept, labels) + ((([mask_of[p] for p in kept]),) if masks is not None else ())
        data = tf.data.Dataset.from_tensor_slices(columns)
        if as_numpy:
            data = data.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(256)
            arrays = [np.concatenate(parts) for parts in zip(*data.as_numpy_iterator())]
            result = _array_dataset(arrays, batch_size, shuffle and training, seed)
        else:
            if shuffle and training:
                data = data.shuffle(len(kept), seed=int(seed), reshuffle_each_iteration=True)
            data = data.map(load, num_parallel_calls=tf.data.AUTOTUNE)
            result = data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        result.class_names = list(names)
        result.file_paths = kept
        results.append(result)
    return tuple(results) if subset == "both" else results[0]


def _array_dataset(arrays, batch_size, shuffle, seed):
    data = ArrayDataset(arrays[0], arrays[1], batch_size=batch_size, shuffle=shuffle, seed=seed)
    data.masks = arrays[2] if len(arrays) > 2 else None
    return data


def _check_mask_sizes(pairs):
    from PIL import Image

    for image_path, mask_path in pairs:
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            if image.size != mask.size:
                raise ValueError(
                    f"image_folder: the mask {mask_path} is {mask.size[0]}x{mask.size[1]} "
                    f"but its image {image_path} is {image.size[0]}x{image.size[1]} "
                    "(width x height); masks must have the size of their image"
                )
