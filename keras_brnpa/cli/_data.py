"""The data options of ``train``, ``distill`` and ``evaluate``: the embedded
synthetic data, a TensorFlow Datasets set, or your own folder (``--data``),
all loaded by ``keras_brnpa.datasets``."""

import os

from keras_brnpa.cli._common import SYNTHETIC
from keras_brnpa.cli._common import CLIError
from keras_brnpa.cli._common import UsageError
from keras_brnpa.cli._common import first_line
from keras_brnpa.cli._common import name_option


def data_source(args):
    """The data options that apply, as recorded in a run's settings."""
    if args.data is not None:
        return {"data": os.path.abspath(args.data), "validation_split": args.validation_split}
    if args.dataset == SYNTHETIC:
        return {"dataset": args.dataset, "num_images": args.num_images,
                "num_classes": args.num_classes}
    return {"dataset": args.dataset}


def check_data_options(args):
    """Errors in the data options, before anything is loaded or written."""
    if args.data is not None:
        if not os.path.isdir(args.data):
            raise UsageError(f"--data: not a folder: {args.data}")
        if args.masks is not None and not os.path.isdir(args.masks):
            raise UsageError(f"--masks: not a folder: {args.masks}")
        check_class_folders(args.data)
        return
    if args.masks is not None:
        raise UsageError("--masks goes with --data (your own image folder)")
    if args.dataset == SYNTHETIC:
        return
    from keras_brnpa.datasets.tfds_loaders import TFDS_DATASETS

    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UsageError(
            f"--dataset: unknown dataset {args.dataset!r}: tensorflow-datasets is not "
            "installed, so only 'synthetic' is available (pip install 'keras-brnpa[tfds]'); "
            "for your own images use --data DIR") from None
    try:
        tfds.builder_cls(args.dataset)
    except Exception:
        raise UsageError(
            f"--dataset: unknown dataset {args.dataset!r}: use 'synthetic', a TensorFlow "
            f"Datasets name such as {', '.join(TFDS_DATASETS)}, or --data DIR for a folder "
            "of your own images") from None


def check_class_folders(folder, option="--data"):
    """At least 2 class subfolders of at least 2 images each, or one line naming ``option``."""
    from keras_brnpa.datasets.image_folder import IMAGE_FORMATS

    counts = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            counts[name] = sum(
                file.lower().endswith(IMAGE_FORMATS)
                for _, _, files in os.walk(path, followlinks=True) for file in files)
    if len(counts) < 2:
        found = f" ({', '.join(counts)})" if counts else ""
        raise UsageError(f"{option}: {folder} has {len(counts)} class subfolder(s){found}; a "
                         "classifier needs at least 2: one subfolder of images per class")
    few = {name: n for name, n in counts.items() if n < 2}
    if few:
        listed = ", ".join(f"{name!r} ({n})" for name, n in list(few.items())[:5])
        raise UsageError(f"{option}: every class needs at least 2 images; too few in {listed}")
    return counts


def load_training_data(args):
    """``(train, validation, class_names)`` for ``train`` and ``distill``.

    With ``--augment`` the training batches (never the validation ones) are
    augmented: an ``AugmentedDataset`` over arrays, ``load_tfds``'s own
    training augmentation for a tfds set.
    """
    from keras_brnpa import datasets

    train, val, class_names = _load_training_data(args)
    tfds = args.data is None and args.dataset != SYNTHETIC  # load_tfds augments itself
    if getattr(args, "augment", False) and not tfds:
        train = datasets.AugmentedDataset(train, seed=args.seed)
    return train, val, class_names


def _load_training_data(args):
    from keras_brnpa import datasets

    size = args.image_size
    try:
        if args.data is not None:
            split = args.validation_split or None
            if split is None:
                train = datasets.image_folder(args.data, size, args.batch_size, seed=args.seed,
                                              as_numpy=True)
                return train, None, train.class_names
            train, val = datasets.image_folder(
                args.data, size, args.batch_size, validation_split=split, subset="both",
                seed=args.seed, as_numpy=True)
            return train, val, train.class_names
        if args.dataset == SYNTHETIC:
            x, y, _ = datasets.synthetic_parts(args.num_images, size, args.num_classes, args.seed)
            n_val = max(1, min(500, args.num_images // 5))
            vx, vy, _ = datasets.synthetic_parts(n_val, size, args.num_classes, args.seed + 1000)
            train = datasets.ArrayDataset(x, y, args.batch_size, shuffle=True, seed=args.seed)
            val = datasets.ArrayDataset(vx, vy, args.batch_size)
            return train, val, datasets.class_names(args.num_classes)
        train, info = datasets.load_tfds(
            args.dataset, "train", size, training=True, augment=getattr(args, "augment", False),
            batch_size=args.batch_size, data_dir=args.data_dir, download=args.download,
            seed=args.seed, with_info=True)
        val = datasets.load_tfds(
            args.dataset, "test", size, training=False, batch_size=args.batch_size,
            data_dir=args.data_dir, download=args.download)
        return train, val, list(info.features["label"].names)
    except ValueError as error:
        raise UsageError(name_option(first_line(error))) from None
    except (RuntimeError, OSError) as error:
        raise CLIError(first_line(error)) from None


def load_test_data(args):
    """``(images, labels, masks or None, class_names)`` NumPy arrays for ``evaluate``."""
    import numpy as np

    from keras_brnpa import datasets

    size, n = args.image_size, args.num_images
    try:
        if args.data is not None:
            data = datasets.image_folder(args.data, size, args.batch_size, shuffle=False,
                                         masks=args.masks, seed=args.seed, as_numpy=True)
            masks = data.masks[:n] if data.masks is not None else None
            return data.x[:n], data.y[:n], masks, data.class_names
        if args.dataset == SYNTHETIC:
            x, y, m = datasets.synthetic_parts(n, size, args.num_classes, args.seed + 2000)
            return x, y, m, datasets.class_names(args.num_classes)
        data, info = datasets.load_tfds(
            args.dataset, f"test[:{n}]", size, training=False, batch_size=args.batch_size,
            with_masks=True, data_dir=args.data_dir, download=args.download, with_info=True)
    except (ValueError, RuntimeError, OSError) as error:
        raise CLIError(first_line(error)) from None
    batches = list(data.as_numpy_iterator())
    return (
        np.concatenate([b[0] for b in batches]),
        np.concatenate([b[1] for b in batches]),
        np.concatenate([b[2] for b in batches]),
        list(info.features["label"].names),
    )


def read_class_names(option, model_path=None):
    """Class names from ``--class-names`` (a file, one per line, or a comma list),
    else from the run folder of the model (``run.json``), else ``None``."""
    if option:
        if os.path.isfile(option):
            with open(option) as f:
                names = [line.strip() for line in f if line.strip()]
        else:
            names = [name.strip() for name in option.split(",") if name.strip()]
        if not names:
            raise UsageError(f"--class-names: no class name in {option!r}")
        return names
    if model_path:
        names = recorded_run_field(model_path, "class_names")
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return names
    return None


def recorded_run_field(model_path, key):
    """The field ``key`` of ``run.json`` in the folder of the model file
    ``model_path``; ``None`` when the file is missing, unreadable, not JSON or
    not a JSON object, or has no such field."""
    import json

    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "run.json")
    try:
        with open(path) as f:
            return json.load(f).get(key)
    except (OSError, ValueError, AttributeError):
        return None
