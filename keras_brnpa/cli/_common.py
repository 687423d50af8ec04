"""What the ``brnpa`` commands share: errors, option types, quiet imports,
model files, the output-folder lock and the data options.

Nothing here imports Keras or a backend at module level: ``brnpa --help``
must answer at once.
"""

import argparse
import contextlib
import math
import os
import sys

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

SYNTHETIC = "synthetic"
BACKBONES = ("tiny", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
HEADS = ("brnpa", "bcnn", "gap")
LOCK_FILE = ".brnpa.lock"


class CLIError(Exception):
    """A user error: reported as one line on stderr, exit status ``code``.

    Example:

    >>> from keras_brnpa import cli
    >>> error = cli.CLIError("--model: model file not found: m.keras")
    >>> error.code, str(error)
    (1, '--model: model file not found: m.keras')
    """

    def __init__(self, message, code=EXIT_ERROR):
        super().__init__(message)
        self.code = code


class UsageError(CLIError):
    """A wrong option: exit status 2, like argparse's own errors."""

    def __init__(self, message):
        super().__init__(message, code=EXIT_USAGE)


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help with every option's default, descriptions kept as written.

    A default the help text already states ("default: ..."), an unset
    default (``None``), a flag's ``False`` and a required option's are not
    repeated.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.default is None
            or action.default is False
            or action.default == argparse.SUPPRESS
            or action.required
        ):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def say(message, quiet=False):
    if not quiet:
        print(f"[brnpa] {message}", flush=True)


def first_line(error):
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) < 400 else line[:397] + "..."


# ----------------------------------------------------------- option types
def _number(kind, text, test, expected):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value) or not test(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text):
    return _number(int, text, lambda v: v >= 1, "an integer >= 1")


def class_count(text):
    return _number(int, text, lambda v: v >= 2, "an integer >= 2 (a classifier needs two classes)")


def seed(text):
    return _number(int, text, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)")


def positive_float(text):
    return _number(float, text, lambda v: v > 0, "a number > 0")


def unit_float(text):
    return _number(float, text, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def dropout(text):
    return _number(float, text, lambda v: 0 <= v < 1, "a number in [0, 1)")


# ---------------------------------------------------------- quiet imports
@contextlib.contextmanager
def native_stderr_hidden():
    """Drop what C++ libraries (TensorFlow, XLA) write on stderr.

    While a command runs, file descriptor 2 points to ``/dev/null`` and
    Python's ``sys.stderr`` to the real stderr, so the command's messages
    and Python warnings still show. ``BRNPA_DEBUG=1`` keeps everything;
    ``TF_CPP_MIN_LOG_LEVEL`` set by the user is respected.
    """
    user_level = "TF_CPP_MIN_LOG_LEVEL" in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd != 2 or os.environ.get("BRNPA_DEBUG") or user_level:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    original = sys.stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
        yield
    finally:
        try:
            sys.stderr.flush()
            sys.stderr.close()
        finally:
            sys.stderr = original
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def import_keras():
    """Import Keras and the package quietly; returns ``keras``."""
    import logging
    import warnings

    import keras

    import keras_brnpa  # noqa: F401  (registers the package's layers)

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for category in (UserWarning, DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    return keras


# ---------------------------------------------------------------- models
def load_model(path, option="--model"):
    """Load a ``.keras`` classifier, or raise a one-line ``CLIError``."""
    import zipfile

    keras = import_keras()
    if not os.path.exists(path):
        raise CLIError(f"{option}: model file not found: {path}")
    if not os.path.isfile(path):
        raise CLIError(f"{option}: not a file: {path}")
    if not zipfile.is_zipfile(path):
        raise CLIError(
            f"{option}: {path} is not a valid .keras file (a .keras model is a zip archive; "
            "this file is truncated, corrupt or of another format)"
        )
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # zip, h5, json and deserialisation errors
        raise CLIError(f"{option}: {path} is not a valid .keras file: {first_line(error)}") from None


def model_image_size(model, fallback=None):
    """``(H, W)`` of the model's input, or ``fallback`` when it is free."""
    shape = tuple(model.input_shape[1:3])
    if None in shape:
        size = fallback or 224
        return (size, size)
    return shape


# ------------------------------------------------------ the output folder
@contextlib.contextmanager
def output_lock(path):
    """Hold ``path/.brnpa.lock`` for the whole command.

    A second ``brnpa`` run on the same folder is refused at once instead of
    mixing its files with the first's. The lock is an ``flock`` on the file,
    released by the system even when the process is killed.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    os.makedirs(path, exist_ok=True)
    handle = open(os.path.join(path, LOCK_FILE), "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CLIError(
                f"another brnpa command is using {path}; wait for it to finish, or choose "
                "another --output"
            ) from None
        yield
    finally:
        handle.close()


def check_writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".brnpa-write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise CLIError(
            f"--output: cannot write to {path}: {error.strerror or first_line(error)}"
        ) from None


def claim_run(path, command, config, overwrite, files):
    """``training.start_run`` with the CLI's one-line errors."""
    from keras_brnpa import training

    check_writable(path)
    try:
        return training.start_run(path, config=config, name=command, overwrite=overwrite,
                                  files=files)
    except ValueError as error:
        message = str(error).replace("overwrite=True", "--overwrite").replace(
            "choose another directory", "choose another --output")
        raise CLIError(message) from None


def verbose_level(args):
    """Keras ``verbose``: 0 with --quiet, a bar on a terminal, else one line per epoch."""
    if getattr(args, "quiet", False):
        return 0
    return 1 if sys.stdout.isatty() else 2


# ------------------------------------------------------------------ data
def add_data_options(parser, image_size=64, num_images=3000, training=True):
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset", default=SYNTHETIC,
        help="'synthetic' (the embedded data) or a TensorFlow Datasets name: "
        "caltech_birds2011, oxford_iiit_pet, stanford_dogs, cars196, ...")
    source.add_argument(
        "--data", default=None, metavar="DIR",
        help="your own images: a folder with one subfolder per class (PNG, JPEG, BMP, GIF)")
    parser.add_argument("--masks", default=None, metavar="DIR",
                        help="with --data: ground-truth masks, same relative paths, PNG")
    parser.add_argument("--validation-split", type=unit_float, default=0.2,
                        help="with --data: share of the images held out for validation")
    parser.add_argument("--data-dir", default=None, help="tfds data folder")
    parser.add_argument("--download", action="store_true",
                        help="let tfds download a missing data set")
    parser.add_argument("--image-size", type=positive_int, default=image_size,
                        help="images are resized to this many pixels per side")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per batch")
    parser.add_argument("--num-images", type=positive_int, default=num_images,
                        help="synthetic data: number of images (evaluate: at most this many "
                        "test images of any source)")
    parser.add_argument("--num-classes", type=class_count, default=5,
                        help="synthetic data: number of classes")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (data, weights)")


def data_source(args):
    """The data options as recorded in a run's settings."""
    if args.data is not None:
        return {"data": os.path.abspath(args.data)}
    return {"dataset": args.dataset}


def check_data_options(args):
    """Errors in the data options, before anything is loaded or written."""
    if args.data is not None:
        if not os.path.isdir(args.data):
            raise UsageError(f"--data: not a folder: {args.data}")
        if args.masks is not None and not os.path.isdir(args.masks):
            raise UsageError(f"--masks: not a folder: {args.masks}")
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


def load_training_data(args):
    """``(train, validation, class_names)`` for ``train`` and ``distill``."""
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
            args.dataset, "train", size, training=True, batch_size=args.batch_size,
            data_dir=args.data_dir, download=args.download, seed=args.seed, with_info=True)
        val = datasets.load_tfds(
            args.dataset, "test", size, training=False, batch_size=args.batch_size,
            data_dir=args.data_dir, download=args.download)
        return train, val, list(info.features["label"].names)
    except (ValueError, RuntimeError, OSError) as error:
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
    import json

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
        run = os.path.join(os.path.dirname(os.path.abspath(model_path)), "run.json")
        try:
            with open(run) as f:
                names = json.load(f).get("class_names")
        except (OSError, ValueError, AttributeError):
            return None
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return names
    return None
