"""The ``brnpa`` command line: demo, train, distill, explain, evaluate.

Run ``brnpa --help`` or ``brnpa COMMAND --help``. Every command prints its
progress on stdout; a user error (unknown dataset or backbone, missing or
corrupt model file, unreadable image, output folder not writable, a finished
run in the output folder) prints ONE line on stderr and exits with a
non-zero status, without a traceback (set ``BRNPA_DEBUG=1`` to get the
traceback). Training (``train``, ``distill`` and the models of ``demo``)
saves its state at the end of every epoch in ``OUTPUT/backup``: after an
interruption (Ctrl-C, a kill, a crash) the same command resumes from the
last finished epoch. A folder holding a finished run is never overwritten
without ``--overwrite``.
"""

import argparse
import contextlib
import json
import math
import os
import sys
import time
import warnings

from keras_brnpa import training
from keras_brnpa.training import BACKUP_DIR  # noqa: F401  (public constants of the CLI)
from keras_brnpa.training import HISTORY_FILE  # noqa: F401
from keras_brnpa.training import MODEL_FILE
from keras_brnpa.training import RUN_FILE
from keras_brnpa.training import discard_backup
from keras_brnpa.training import finish_run
from keras_brnpa.training import save_model

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
#: What ``--overwrite`` removes from an output folder (nothing else).
RUN_ARTEFACTS = training.RUN_FILES + (METRICS_FILE, REPORT_FILE)

BACKBONES = ("tiny", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
HEADS = ("brnpa", "bcnn", "gap")
SYNTHETIC = "synthetic"


class CLIError(Exception):
    """A user error: reported as one line on stderr, exit status ``code``."""

    def __init__(self, message, code=EXIT_ERROR):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CLIError(f"{message} (see '{self.prog} --help')", code=EXIT_USAGE)


def _say(message):
    print(f"[brnpa] {message}", flush=True)


def _first_line(error):
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) < 400 else line[:397] + "..."


@contextlib.contextmanager
def _stderr_silenced():
    """Hide what C++ libraries write on stderr while TensorFlow is imported."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)
        os.close(saved)


def _import_keras():
    """Import keras and keras_brnpa quietly (no TensorFlow log lines)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_silenced():
        import keras

        import keras_brnpa  # noqa: F401  (imports the backbones' keras-cv)
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    return keras


def _optional_module(name):
    """``keras_brnpa.<name>``, or ``None`` when that part is not installed."""
    import importlib

    try:
        return importlib.import_module(f"keras_brnpa.{name}")
    except ImportError:
        return None


# --------------------------------------------------------------- arguments
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _unit_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def _add_data_options(parser, image_size=64):
    parser.add_argument(
        "--dataset",
        default=SYNTHETIC,
        help="'synthetic' (the embedded data, default) or a TensorFlow Datasets "
        "name: caltech_birds2011, oxford_iiit_pet, stanford_dogs, cars196, ...",
    )
    parser.add_argument("--data-dir", default=None, help="tfds data folder")
    parser.add_argument(
        "--download", action="store_true", help="let tfds download a missing data set"
    )
    parser.add_argument("--image-size", type=_positive_int, default=image_size)
    parser.add_argument("--batch-size", type=_positive_int, default=32)
    parser.add_argument(
        "--num-images",
        type=_positive_int,
        default=3000,
        help="synthetic data: number of training images",
    )
    parser.add_argument(
        "--num-classes", type=_positive_int, default=5, help="synthetic data: number of classes"
    )
    parser.add_argument("--seed", type=int, default=0)


def _add_training_options(parser, epochs):
    parser.add_argument("--epochs", type=_positive_int, default=epochs)
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default=None,
                        help="default: adam from scratch, sgd (momentum 0.9) with --weights")
    parser.add_argument("--learning-rate", type=_positive_float, default=None,
                        help="default: 2e-3 (adam) or 1e-3 (sgd)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run in the output folder")
    parser.add_argument("--distribute", action="store_true",
                        help="data-parallel training over all devices (keras_brnpa.distribute)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    parser.add_argument("--eager", action="store_true",
                        help="run eagerly, without graph compilation (debugging, tiny runs)")


def _train_compile_mode(args):
    if args.eager:
        return {"run_eagerly": True, "jit_compile": False}
    return {"jit_compile": _jit_compile()}


def build_parser():
    """The ``argparse`` parser of the ``brnpa`` command.

    Returns:
        An ``argparse.ArgumentParser``.

    Example:

    >>> from keras_brnpa import cli
    >>> args = cli.build_parser().parse_args(["train", "--epochs", "2"])
    >>> args.command, args.epochs, args.dataset
    ('train', 2, 'synthetic')
    """
    from keras_brnpa.version import __version__

    parser = _Parser(
        prog="brnpa",
        description="BR-NPA for Keras 3: train, distill, explain and evaluate "
        "image classifiers that explain themselves.",
    )
    parser.add_argument("--version", action="version", version=f"keras_brnpa {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="the main job on the embedded data: train, distill, explain, evaluate, report",
        description="Train a CNN, a B-CNN and a low-resolution BR-NPA teacher on the "
        "embedded synthetic data, distill the high-resolution BR-NPA student, compare "
        "their explanations with Grad-CAM, Grad-CAM++, Score-CAM and RISE, and write "
        "report.md, metrics.json and PNG galleries.",
    )
    demo.add_argument("--output", default=os.path.join("runs", "demo"))
    demo.add_argument("--smoke", action="store_true", help="a few seconds, tiny sizes (tests)")
    demo.add_argument("--image-size", type=_positive_int, default=None)
    demo.add_argument("--epochs", type=_positive_int, default=None)
    demo.add_argument("--num-images", type=_positive_int, default=None)
    demo.add_argument("--batch-size", type=_positive_int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--overwrite", action="store_true")
    demo.add_argument("--quiet", action="store_true")

    train = commands.add_parser("train", help="train a classifier (resumable)")
    _add_data_options(train)
    _add_training_options(train, epochs=5)
    train.add_argument("--backbone", default="tiny", help=", ".join(BACKBONES))
    train.add_argument("--head", default="brnpa", help=", ".join(HEADS))
    train.add_argument("--resolution", choices=("low", "high"), default="low")
    train.add_argument("--n-parts", type=_positive_int, default=3)
    train.add_argument("--dropout", type=float, default=0.0)
    train.add_argument("--weights", default=None,
                       help="backbone weights: a keras-cv preset name or a file")
    train.add_argument("--output", default=os.path.join("runs", "train"))

    distill = commands.add_parser(
        "distill", help="distill a trained low-resolution model into its high-resolution twin"
    )
    _add_data_options(distill)
    _add_training_options(distill, epochs=3)
    distill.add_argument("--teacher", required=True, help="the teacher's .keras file")
    distill.add_argument("--temperature", type=_positive_float, default=4.0)
    distill.add_argument("--alpha", type=_unit_float, default=0.5)
    distill.add_argument("--output", default=os.path.join("runs", "distill"))

    explain = commands.add_parser("explain", help="overlay explanation maps on your images")
    explain.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    explain.add_argument("--model", required=True, help="a .keras classifier")
    explain.add_argument("--method", default="brnpa",
                         help="brnpa (default), attention, gradcam, gradcam++, scorecam, rise, ...")
    explain.add_argument("--image-size", type=_positive_int, default=None,
                         help="input size when the model accepts any size (default 224)")
    explain.add_argument("--output", default=os.path.join("runs", "explain"))
    explain.add_argument("--overwrite", action="store_true")

    evaluate = commands.add_parser(
        "evaluate", help="accuracy and explanation metrics of a model on a data set"
    )
    _add_data_options(evaluate)
    evaluate.set_defaults(num_images=200)
    evaluate.add_argument("--model", required=True, help="a .keras classifier")
    evaluate.add_argument("--methods", default="auto",
                          help="comma-separated explanation methods; auto: the model's own "
                          "maps for BR-NPA/B-CNN heads, Grad-CAM for others")
    evaluate.add_argument("--steps", type=_positive_int, default=24,
                          help="deletion/insertion steps")
    evaluate.add_argument("--rise-masks", type=_positive_int, default=250,
                          help="RISE: number of random masks")
    evaluate.add_argument("--score-channels", type=_positive_int, default=None,
                          help="Score-CAM: only the N most active channels per image")
    evaluate.add_argument("--output", default=None, help="folder for metrics.json")
    evaluate.add_argument("--overwrite", action="store_true")
    return parser


# ------------------------------------------------------------ output folder
def _write_json(path, data):
    """Write JSON atomically (a crash never leaves half a file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _check_writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".brnpa-write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise CLIError(
            f"cannot write to the output folder {path}: {error.strerror or _first_line(error)}"
        ) from None


# The run files are those of keras_brnpa.training (``clear_run``).
_remove_artefacts = training.clear_run


def start_run(path, command, config, overwrite, artefacts=RUN_ARTEFACTS):
    """Claim an output folder for a run (``keras_brnpa.training.start_run``).

    A finished run is refused unless ``overwrite``; an unfinished run with
    the same command and ``config`` is resumed, one with other settings is
    refused. Errors become one-line ``CLIError`` messages in the command
    line's words.

    Returns:
        ``True`` when an unfinished run is resumed.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"the output {path} exists and is not a folder")
    _check_writable(path)
    try:
        return training.start_run(
            path, config=config, name=command, overwrite=overwrite, files=artefacts
        )
    except ValueError as error:
        message = _first_line(error).replace("pass overwrite=True", "pass --overwrite")
        raise CLIError(message.replace("another directory", "another --output")) from None
    except OSError as error:
        raise CLIError(
            f"cannot write to the output folder {path}: {error.strerror or _first_line(error)}"
        ) from None


# ---------------------------------------------------------------- training
def _jit_compile():
    """XLA where it helps: TensorFlow on a GPU/TPU, always on JAX.

    On CPUs XLA makes TensorFlow convolution training about 2x slower here
    (DESIGN.md section 4), so TensorFlow on a CPU runs without it.
    """
    import keras

    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))
    if backend == "jax":
        return True
    return False


def _loss():
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _optimizer(name, learning_rate, pretrained):
    import keras

    name = name or ("sgd" if pretrained else "adam")
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate or 1e-3, momentum=0.9)
    return keras.optimizers.Adam(learning_rate or 2e-3)


def set_batch_norm_momentum(model, momentum=0.9):
    """Faster-adapting batch-norm statistics for short runs from scratch.

    With the Keras default (0.99) the moving statistics of a network trained
    from scratch for a few hundred steps lag far behind its weights and the
    model predicts badly in inference mode; 0.9 follows them.
    """
    import keras

    count = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            count += 1
    return count


def load_model(path):
    """Load a ``.keras`` model, or raise a one-line ``CLIError``."""
    import keras

    if not os.path.exists(path):
        raise CLIError(f"model file not found: {path}")
    if not os.path.isfile(path):
        raise CLIError(f"model path is not a file: {path}")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # zip, h5, json and deserialisation errors
        raise CLIError(f"cannot load the model {path}: {_first_line(error)}") from None


def _check_dataset(name):
    if name == SYNTHETIC:
        return
    from keras_brnpa.datasets.tfds_loaders import TFDS_DATASETS

    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise CLIError(
            f"unknown dataset {name!r}: tensorflow-datasets is not installed, so only "
            "'synthetic' is available (pip install 'keras-brnpa[tfds]')"
        ) from None
    try:
        tfds.builder_cls(name)
    except Exception:
        raise CLIError(
            f"unknown dataset {name!r}: use 'synthetic' or a TensorFlow Datasets name "
            f"such as {', '.join(TFDS_DATASETS)}"
        ) from None


def load_data(args, training=True, with_masks=False):
    """Training or evaluation data for the CLI options.

    Returns:
        ``(train, validation, num_classes)`` for ``training=True``;
        ``(images, labels, masks, num_classes)`` NumPy arrays otherwise
        (``masks`` may be ``None``).
    """
    from keras_brnpa import datasets

    _check_dataset(args.dataset)
    size = args.image_size
    if args.dataset == SYNTHETIC:
        if training:
            x, y, _ = datasets.synthetic_parts(args.num_images, size, args.num_classes, args.seed)
            n_val = max(1, min(500, args.num_images // 5))
            vx, vy, _ = datasets.synthetic_parts(n_val, size, args.num_classes, args.seed + 1000)
            train = datasets.ArrayDataset(x, y, args.batch_size, shuffle=True, seed=args.seed)
            val = datasets.ArrayDataset(vx, vy, args.batch_size)
            return train, val, args.num_classes
        x, y, m = datasets.synthetic_parts(
            args.num_images, size, args.num_classes, args.seed + 2000
        )
        return x, y, m, args.num_classes
    try:
        if training:
            train, info = datasets.load_tfds(
                args.dataset, "train", size, training=True, batch_size=args.batch_size,
                data_dir=args.data_dir, download=args.download, seed=args.seed, with_info=True,
            )
            val = datasets.load_tfds(
                args.dataset, "test", size, training=False, batch_size=args.batch_size,
                data_dir=args.data_dir, download=args.download,
            )
            return train, val, info.features["label"].num_classes
        data, info = datasets.load_tfds(
            args.dataset, f"test[:{args.num_images}]", size, training=False,
            batch_size=args.batch_size, with_masks=with_masks, data_dir=args.data_dir,
            download=args.download, with_info=True,
        )
    except (ValueError, RuntimeError) as error:
        raise CLIError(_first_line(error)) from None
    import numpy as np

    batches = list(data.as_numpy_iterator())
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    masks = np.concatenate([b[2] for b in batches]) if with_masks else None
    return images, labels, masks, info.features["label"].num_classes


@contextlib.contextmanager
def _distribution(enabled):
    if not enabled:
        yield None
        return
    distribute = _optional_module("distribute")
    if distribute is None or not hasattr(distribute, "distribution_scope"):
        raise CLIError("--distribute needs keras_brnpa.distribute, which is not installed")
    try:
        scope = distribute.distribution_scope()
        replicas = scope.__enter__()
    except (ValueError, RuntimeError) as error:
        raise CLIError(f"--distribute: {_first_line(error)}") from None
    try:
        yield replicas
    except BaseException:
        if not scope.__exit__(*sys.exc_info()):
            raise
    else:
        scope.__exit__(None, None, None)


def _sync_batch_norm(model, replicas):
    if replicas is not None:
        distribute = _optional_module("distribute")
        if hasattr(distribute, "synchronize_batch_norm"):
            distribute.synchronize_batch_norm(model)


def _verbose(args):
    """No epoch lines with --quiet, a progress bar on a terminal, else one line per epoch."""
    if getattr(args, "quiet", False):
        return 0
    return 1 if sys.stdout.isatty() else 2


def cmd_train(args, callbacks=()):
    """``brnpa train``: train a classifier, resumably."""
    keras = _import_keras()
    from keras_brnpa import models

    if args.backbone not in BACKBONES:
        raise CLIError(f"unknown backbone {args.backbone!r}: use one of {', '.join(BACKBONES)}")
    if args.head not in HEADS:
        raise CLIError(f"unknown head {args.head!r}: use one of {', '.join(HEADS)}")
    if not 0 <= args.dropout < 1:
        raise CLIError(f"--dropout must be in [0, 1), got {args.dropout}")
    _check_dataset(args.dataset)
    config = {
        key: getattr(args, key)
        for key in (
            "dataset", "image_size", "batch_size", "num_images", "num_classes", "seed",
            "epochs", "optimizer", "learning_rate", "backbone", "head", "resolution",
            "n_parts", "dropout", "weights",
        )
    }
    output = args.output
    resumed = start_run(output, "train", config, args.overwrite)
    _say(("resuming" if resumed else "starting") + f" training in {output}")
    keras.utils.set_random_seed(args.seed)
    train, val, num_classes = load_data(args, training=True)
    with _distribution(args.distribute) as replicas:
        try:
            model = models.build_classifier(
                num_classes,
                backbone=args.backbone,
                head=args.head,
                n_parts=args.n_parts,
                dropout=args.dropout,
                resolution=args.resolution,
                weights=args.weights,
                input_shape=(args.image_size, args.image_size, 3),
            )
        except (ValueError, RuntimeError) as error:
            raise CLIError(_first_line(error)) from None
        if args.weights is None:
            set_batch_norm_momentum(model)
        _sync_batch_norm(model, replicas)
        model.compile(
            optimizer=_optimizer(args.optimizer, args.learning_rate, args.weights is not None),
            loss=_loss(),
            metrics=["accuracy"],
            **_train_compile_mode(args),
        )
        history = training.fit_resumable(
            model, train, val, args.epochs, output, callbacks, verbose=_verbose(args), finish=False
        )
    save_model(model, os.path.join(output, MODEL_FILE))
    discard_backup(output)
    final = history[-1] if history else {}
    finish_run(output, epochs_done=len(history), final=final)
    _say(
        f"done: {len(history)} epochs, val_accuracy "
        f"{final.get('val_accuracy', float('nan')):.3f}; model saved to "
        f"{os.path.join(output, MODEL_FILE)}"
    )
    return 0


def build_student(teacher):
    """The high-resolution twin of ``teacher`` (same weights)."""
    distillation = _optional_module("distillation")
    if distillation is not None and hasattr(distillation, "build_high_resolution_student"):
        return distillation.build_high_resolution_student(teacher)
    from keras_brnpa import models

    return models.to_high_resolution(teacher)


def make_distiller(teacher, student, temperature, alpha):
    """A ``keras_brnpa.Distiller``, or a clear error when it is missing."""
    import keras_brnpa

    distiller_cls = getattr(keras_brnpa, "Distiller", None)
    if distiller_cls is None:
        distillation = _optional_module("distillation")
        distiller_cls = getattr(distillation, "Distiller", None)
    if distiller_cls is None:
        raise CLIError("distillation needs keras_brnpa.Distiller, which is not installed")
    return distiller_cls(teacher, student, temperature=temperature, alpha=alpha)


def cmd_distill(args, callbacks=()):
    """``brnpa distill``: distill a low-resolution teacher into its twin."""
    _import_keras()
    import keras

    _check_dataset(args.dataset)
    teacher = load_model(args.teacher)
    config = {
        key: getattr(args, key)
        for key in (
            "dataset", "image_size", "batch_size", "num_images", "num_classes", "seed",
            "epochs", "optimizer", "learning_rate", "temperature", "alpha",
        )
    }
    config["teacher"] = os.path.abspath(args.teacher)
    output = args.output
    resumed = start_run(output, "distill", config, args.overwrite)
    _say(("resuming" if resumed else "starting") + f" distillation in {output}")
    keras.utils.set_random_seed(args.seed)
    train, val, num_classes = load_data(args, training=True)
    if teacher.output_shape[-1] != num_classes:
        raise CLIError(
            f"the teacher has {teacher.output_shape[-1]} classes but the data has {num_classes}"
        )
    with _distribution(args.distribute) as replicas:
        try:
            student = build_student(teacher)
        except ValueError as error:
            raise CLIError(_first_line(error)) from None
        distiller = make_distiller(teacher, student, args.temperature, args.alpha)
        _sync_batch_norm(student, replicas)
        distiller.compile(
            optimizer=_optimizer(args.optimizer, args.learning_rate, pretrained=True),
            loss=_loss(),
            metrics=["accuracy"],
            **_train_compile_mode(args),
        )
        sample = next(iter(train))[0] if not hasattr(train, "x") else train.x[:1]
        distiller(sample[:1])
        history = training.fit_resumable(
            distiller, train, val, args.epochs, output, callbacks, verbose=_verbose(args),
            finish=False,
        )
    save_model(distiller.student, os.path.join(output, MODEL_FILE))
    discard_backup(output)
    final = history[-1] if history else {}
    finish_run(output, epochs_done=len(history), final=final)
    _say(f"done: student saved to {os.path.join(output, MODEL_FILE)}")
    return 0


# ---------------------------------------------------------------- explain
def _read_image(path, size):
    """An image file as float32 ``(H, W, 3)`` in [0, 1], resized to ``size``."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(image, dtype="float32") / 255.0


def _model_image_size(model, fallback):
    shape = tuple(model.input_shape[1:3])
    if None in shape:
        return (fallback or 224, fallback or 224)
    return shape


def cmd_explain(args):
    """``brnpa explain``: overlays of explanation maps on image files."""
    _import_keras()
    import numpy as np

    from keras_brnpa import explain as explain_module
    from keras_brnpa import visualize

    model = load_model(args.model)
    try:
        method = explain_module.method_name(args.method)
    except ValueError:
        raise CLIError(
            f"unknown method {args.method!r}: use one of {', '.join(explain_module.METHODS)}"
        ) from None
    _check_writable(args.output)
    size = _model_image_size(model, args.image_size)
    failures = 0
    for path in args.images:
        stem = os.path.splitext(os.path.basename(path))[0]
        target = os.path.join(args.output, f"{stem}_{method.replace('+', 'p')}.png")
        if os.path.exists(target) and not args.overwrite:
            print(f"brnpa explain: error: {target} exists (pass --overwrite)", file=sys.stderr)
            failures += 1
            continue
        try:
            image = _read_image(path, size)
        except Exception as error:  # PIL raises OSError and others
            reason = error.strerror if isinstance(error, OSError) and error.strerror else _first_line(error)
            print(f"brnpa explain: error: cannot read image {path}: {reason}", file=sys.stderr)
            failures += 1
            continue
        batch = image[None]
        logits = np.asarray(model.predict(batch, verbose=0))[0]
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        label = int(probabilities.argmax())
        try:
            maps = explain_module.explain(method, model, batch, class_index=label)[0]
        except ValueError as error:
            raise CLIError(f"{method}: {_first_line(error)}") from None
        if maps.ndim == 3 and maps.shape[-1] > 3:
            maps = maps[..., :3]
        picture = visualize.overlay(image, maps)
        side = np.concatenate([np.round(image * 255).astype("uint8"), picture], axis=1)
        from PIL import Image

        Image.fromarray(side).save(target)
        _say(f"{path}: class {label} (p={probabilities[label]:.2f}) -> {target}")
    if failures:
        return EXIT_ERROR
    return 0


# --------------------------------------------------------------- evaluate
#: Post-hoc methods of the CNN baseline, in report order.
POST_HOC = {
    "Grad-CAM": "gradcam",
    "Grad-CAM++": "gradcam++",
    "Score-CAM": "scorecam",
    "RISE": "rise",
}


def _head_kind(model):
    from keras_brnpa.layers import BilinearAttentionPooling
    from keras_brnpa.layers import BRNPAAttention

    try:
        head = model.get_layer("head")
    except ValueError:
        return None
    if isinstance(head, BRNPAAttention):
        return "brnpa"
    if isinstance(head, BilinearAttentionPooling):
        return "bcnn"
    return "gap"


def _method_kwargs(method, settings):
    if method == "rise":
        return {"n_masks": settings.get("rise_masks", 250), "mask_size": settings.get("rise_grid", 6)}
    if method == "scorecam" and settings.get("score_channels"):
        return {"max_channels": settings["score_channels"]}
    return {}


def explanation(method, model, images, labels=None, settings=None):
    """An explanation map ``(B, h, w)`` for the predicted class."""
    from keras_brnpa import explain as explain_module

    kwargs = _method_kwargs(method, settings or {})
    kwargs["batch_size"] = (settings or {}).get("batch_size", 32)
    return explain_module.explain(method, model, images, **kwargs)


def _saliency_for_metrics(maps, image_size):
    """Maps whose size divides the image size (deletion/insertion cells)."""
    import numpy as np

    from keras_brnpa.explain import upsample

    h, w = maps.shape[1:3]
    if image_size[0] % h == 0 and image_size[1] % w == 0:
        return maps
    return np.asarray(upsample(maps, image_size))


def score_maps(model, images, labels, masks, maps, steps, batch_size=64, feature_norm=None):
    """Accuracy-independent scores of one explanation method.

    Returns:
        dict of per-image arrays: ``dauc``, ``iauc``, ``sparsity``, and
        with masks ``pointing_game``, ``energy_in_mask``.
    """
    import numpy as np

    from keras_brnpa import metrics

    saliency = _saliency_for_metrics(np.asarray(maps, "float32"), images.shape[1:3])
    out = {
        "dauc": metrics.deletion_auc(model, images, saliency, steps=steps, batch_size=batch_size),
        "iauc": metrics.insertion_auc(model, images, saliency, steps=steps, batch_size=batch_size),
        "sparsity": metrics.sparsity(maps),
    }
    if masks is not None:
        out["pointing_game"] = metrics.pointing_game(maps, masks).astype("float64")
        out["energy_in_mask"] = metrics.energy_in_mask(maps, masks)
    return out


def accuracy(model, images, labels, batch_size=64):
    import numpy as np

    logits = np.asarray(model.predict(images, batch_size=batch_size, verbose=0))
    return float(np.mean(logits.argmax(-1) == labels))


def _mean(values):
    import numpy as np

    values = np.asarray(values, "float64")
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def cmd_evaluate(args):
    """``brnpa evaluate``: accuracy and explanation metrics of a model."""
    _import_keras()
    model = load_model(args.model)
    _check_dataset(args.dataset)
    if args.output:
        if os.path.exists(os.path.join(args.output, METRICS_FILE)) and not args.overwrite:
            raise CLIError(f"{os.path.join(args.output, METRICS_FILE)} exists; pass --overwrite")
        _check_writable(args.output)
    size = _model_image_size(model, args.image_size)
    args.image_size = size[0]
    images, labels, masks, num_classes = load_data(args, training=False, with_masks=True)
    if model.output_shape[-1] != num_classes:
        raise CLIError(f"the model has {model.output_shape[-1]} classes but the data has {num_classes}")
    kind = _head_kind(model)
    if args.methods == "auto":
        methods = ["brnpa"] if kind in ("brnpa", "bcnn") else ["gradcam"]
    else:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    from keras_brnpa import explain as explain_module

    for method in methods:
        try:
            explain_module.method_name(method)
        except ValueError:
            raise CLIError(
                f"unknown method {method!r}: use one of {', '.join(explain_module.METHODS)}"
            ) from None
    _say(f"evaluating {args.model} on {len(images)} images of {args.dataset}")
    results = {"model": args.model, "dataset": args.dataset, "images": int(len(images))}
    results["accuracy"] = accuracy(model, images, labels, args.batch_size)
    _say(f"accuracy {results['accuracy']:.3f}")
    results["methods"] = {}
    for method in methods:
        start = time.time()
        maps = explanation(
            method,
            model,
            images,
            settings={
                "batch_size": args.batch_size,
                "rise_masks": args.rise_masks,
                "score_channels": args.score_channels,
            },
        )
        scores = score_maps(model, images, labels, masks, maps, args.steps, args.batch_size)
        summary = {name: _mean(value) for name, value in scores.items()}
        summary["map_size"] = list(maps.shape[1:3])
        summary["seconds"] = round(time.time() - start, 1)
        results["methods"][method] = summary
        _say(f"{method}: " + ", ".join(f"{k} {v:.3f}" for k, v in summary.items() if isinstance(v, float)))
    if args.output:
        _write_json(os.path.join(args.output, METRICS_FILE), results)
        _say(f"metrics written to {os.path.join(args.output, METRICS_FILE)}")
    return 0


# -------------------------------------------------------------------- demo
#: Sizes of the demo: the full run (``make demo``) and ``--smoke`` (tests).
DEMO_SETTINGS = {
    "full": {
        "image_size": 96,
        "num_images": 3000,
        "test_images": 120,
        "num_classes": 5,
        "epochs": 4,
        "distill_epochs": 2,
        "batch_size": 32,
        # Perturbation methods cost one forward pass per mask or channel and
        # image: 250 RISE masks, Score-CAM on the 32 most active channels.
        "rise_masks": 250,
        "rise_grid": 6,
        "score_channels": 32,
        "steps": 24,
        "gallery": 6,
        "run_eagerly": False,
        "validation": True,
    },
    "smoke": {
        "image_size": 64,
        "num_images": 16,
        "test_images": 6,
        "num_classes": 3,
        "epochs": 1,
        "distill_epochs": 1,
        "batch_size": 16,
        "rise_masks": 16,
        "rise_grid": 4,
        "score_channels": 4,
        "steps": 3,
        "gallery": 3,
        # Tracing/compiling a graph costs more than running 2 steps eagerly,
        # and the smoke run skips the validation passes.
        "run_eagerly": True,
        "validation": False,
    },
}

#: Metric name -> (label, True when higher is better).
METRICS = {
    "accuracy": ("accuracy", True),
    "dauc": ("DAUC", False),
    "iauc": ("IAUC", True),
    "sparsity": ("sparsity", True),
    "pointing_game": ("pointing game", True),
    "energy_in_mask": ("energy in mask", True),
}

DEMO_ARTEFACTS = RUN_ARTEFACTS + (
    "models",
    "gallery_attention.png",
    "gallery_explanations.png",
    "deletion_curves.png",
)


def _compile_mode(settings):
    if settings.get("run_eagerly"):
        return {"run_eagerly": True, "jit_compile": False}
    return {"jit_compile": _jit_compile()}


def _demo_train(name, model, data, settings, output, epochs, verbose, callbacks=()):
    """Train one demo model resumably in ``output/models/<name>``."""
    folder = os.path.join(output, "models", name)
    path = os.path.join(folder, MODEL_FILE)
    if os.path.exists(path):
        _say(f"{name}: already trained ({path})")
        return load_model(path), {"epochs": training.read_history(folder)}
    os.makedirs(folder, exist_ok=True)
    history = training.fit_resumable(
        model, data["train"], data["val"], epochs, folder, callbacks, verbose, finish=False
    )
    target = model.student if hasattr(model, "student") else model
    save_model(target, path)
    discard_backup(folder)
    finish_run(folder, epochs_done=len(history))
    return target, {"epochs": history}


def cmd_demo(args, callbacks=()):
    """``brnpa demo``: the main job on the embedded data, with a report."""
    started = time.time()
    keras = _import_keras()
    import numpy as np

    from keras_brnpa import datasets
    from keras_brnpa import models

    settings = dict(DEMO_SETTINGS["smoke" if args.smoke else "full"])
    for key in ("image_size", "epochs", "num_images", "batch_size"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    settings["seed"] = args.seed
    if settings["image_size"] % 32:
        raise CLIError(f"--image-size must be a multiple of 32, got {settings['image_size']}")
    output = args.output
    resumed = start_run(output, "demo", settings, args.overwrite, DEMO_ARTEFACTS)
    _say(
        ("resuming" if resumed else "starting")
        + f" the demo in {output} (backend {keras.config.backend()}, "
        f"{settings['image_size']} px, {settings['num_images']} training images)"
    )
    missing = [m for m in ("explain", "metrics", "visualize") if _optional_module(m) is None]
    if missing:
        raise CLIError("the demo needs keras_brnpa." + ", keras_brnpa.".join(missing))
    verbose = _verbose(args)
    keras.utils.set_random_seed(args.seed)
    size, k = settings["image_size"], settings["num_classes"]
    timings = {}

    # 1. Data.
    tick = time.time()
    x, y, _ = datasets.synthetic_parts(settings["num_images"], size, k, seed=args.seed)
    n_val = max(8, settings["num_images"] // 6)
    vx, vy, _ = datasets.synthetic_parts(n_val, size, k, seed=args.seed + 1000)
    tx, ty, tm = datasets.synthetic_parts(settings["test_images"], size, k, seed=args.seed + 2000)
    data = {
        "train": datasets.ArrayDataset(x, y, settings["batch_size"], shuffle=True, seed=args.seed),
        "val": datasets.ArrayDataset(vx, vy, settings["batch_size"])
        if settings["validation"]
        else None,
    }
    timings["data"] = time.time() - tick
    _say(f"[1/6] data: {len(x)} training, {len(vx)} validation, {len(tx)} test images")

    # 2-4. The three low-resolution models.
    trained = {}
    for step, (name, head) in enumerate(
        (("cnn", "gap"), ("bcnn", "bcnn"), ("brnpa_low", "brnpa")), start=2
    ):
        tick = time.time()
        _say(f"[{step}/6] training {name} (tiny ResNet, {head} head, {settings['epochs']} epochs)")
        model = models.build_classifier(
            k, backbone="tiny", head=head, input_shape=(size, size, 3), name=name
        )
        set_batch_norm_momentum(model)
        model.compile(
            optimizer=_optimizer("adam", None, False),
            loss=_loss(),
            metrics=["accuracy"],
            **_compile_mode(settings),
        )
        trained[name], _ = _demo_train(
            name, model, data, settings, output, settings["epochs"], verbose, callbacks
        )
        timings[f"train_{name}"] = time.time() - tick

    # 5. Distillation of the high-resolution student.
    tick = time.time()
    _say(f"[5/6] distilling the high-resolution BR-NPA student ({settings['distill_epochs']} epochs)")
    teacher = trained["brnpa_low"]
    student_path = os.path.join(output, "models", "brnpa_high", MODEL_FILE)
    if os.path.exists(student_path):
        distiller = None
    else:
        student = build_student(teacher)
        distiller = make_distiller(teacher, student, temperature=4.0, alpha=0.5)
        distiller.compile(
            optimizer=_optimizer("adam", 1e-3, False),
            loss=_loss(),
            metrics=["accuracy"],
            **_compile_mode(settings),
        )
        distiller(x[:1])
    trained["brnpa_high"], _ = _demo_train(
        "brnpa_high", distiller, data, settings, output, settings["distill_epochs"], verbose,
        callbacks,
    )
    timings["distill"] = time.time() - tick

    # 6. Explanations and metrics.
    tick = time.time()
    for model in trained.values():  # the inference mode of the metrics
        model.compile(**_compile_mode(settings))
    _say(f"[6/6] explaining and scoring {len(tx)} test images")
    results = evaluate_demo(trained, tx, ty, tm, settings)
    timings["evaluate"] = time.time() - tick
    timings["total"] = time.time() - started
    results["timings_s"] = {key: round(value, 1) for key, value in timings.items()}
    results["settings"] = settings
    results["backend"] = keras.config.backend()
    results["class_names"] = datasets.class_names(k)
    write_demo_report(output, results)  # removes the arrays from results
    _write_json(os.path.join(output, METRICS_FILE), results)
    finish_run(output)
    _say(
        f"done in {timings['total']:.0f} s: {os.path.join(output, REPORT_FILE)}, "
        f"{os.path.join(output, METRICS_FILE)}, galleries"
    )
    return 0


def evaluate_demo(trained, images, labels, masks, settings):
    """Accuracy of the four models and scores of the seven explanations."""
    import numpy as np

    from keras_brnpa import explain as explain_module
    from keras_brnpa import visualize

    batch = settings["batch_size"]
    results = {"models": {}, "methods": {}}
    from keras_brnpa import models as models_module

    for name, model in trained.items():
        results["models"][name] = {
            "accuracy": accuracy(model, images, labels, batch),
            "parameters": int(model.count_params()),
            "feature_map": list(models_module.feature_shape(model)),
        }
        _say(f"  {name}: accuracy {results['models'][name]['accuracy']:.3f}")
    plan = [
        ("BR-NPA (low res.)", "brnpa_low", "brnpa"),
        ("BR-NPA (high res.)", "brnpa_high", "brnpa"),
        ("B-CNN", "bcnn", "brnpa"),
    ] + [(label, "cnn", method) for label, method in POST_HOC.items()]
    all_maps = {}
    for label, model_name, method in plan:
        tick = time.time()
        model = trained[model_name]
        maps = explanation(method, model, images, settings=settings)
        scores = score_maps(model, images, labels, masks, maps, settings["steps"], 2 * batch)
        summary = {name: _mean(value) for name, value in scores.items()}
        summary.update(
            model=model_name,
            method=method,
            map_size=list(maps.shape[1:3]),
            accuracy=results["models"][model_name]["accuracy"],
            seconds=round(time.time() - tick, 1),
        )
        results["methods"][label] = summary
        all_maps[label] = maps
        _say(
            f"  {label}: DAUC {summary['dauc']:.3f}, IAUC {summary['iauc']:.3f}, sparsity "
            f"{summary['sparsity']:.2f}, pointing {summary['pointing_game']:.2f}, energy "
            f"{summary['energy_in_mask']:.2f} ({summary['seconds']} s)"
        )
    results["_maps"] = all_maps
    # Galleries.
    n = min(settings["gallery"], len(images))
    output_maps = {
        label: explain_module.attention_maps(trained[name], images[:n])
        for label, name in (
            ("BR-NPA low: parts", "brnpa_low"),
            ("BR-NPA high: parts", "brnpa_high"),
            ("B-CNN: parts", "bcnn"),
        )
    }
    output_maps["ground truth"] = masks[:n].astype("float32")
    results["_galleries"] = {
        "gallery_attention.png": (images[:n], output_maps),
        "gallery_explanations.png": (
            images[:n],
            {label: maps[:n] for label, maps in all_maps.items()},
        ),
    }
    results["_visualize"] = visualize
    results["_labels"] = labels[:n]
    return results


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _compare(a, b, metric, tolerance):
    """+1 when ``a`` is better than ``b`` on ``metric``, -1 worse, 0 on par."""
    higher = METRICS[metric][1]
    if not (math.isfinite(a) and math.isfinite(b)) or abs(a - b) <= tolerance:
        return 0
    return 1 if (a > b) == higher else -1


#: Differences smaller than this are reported as "on par".
TOLERANCE = {"accuracy": 0.02, "dauc": 0.01, "iauc": 0.01, "sparsity": 0.05,
             "pointing_game": 0.02, "energy_in_mask": 0.01}


def verdicts(methods, ours, baseline):
    """Sentences saying where ``ours`` wins or loses against ``baseline``."""
    wins, losses, ties = [], [], []
    for metric in ("accuracy", "dauc", "iauc", "sparsity", "pointing_game", "energy_in_mask"):
        a, b = methods[ours].get(metric), methods[baseline].get(metric)
        if a is None or b is None:
            continue
        text = f"{METRICS[metric][0]} ({_fmt(a)} vs {_fmt(b)})"
        sign = _compare(a, b, metric, TOLERANCE[metric])
        (wins if sign > 0 else losses if sign < 0 else ties).append(text)
    parts = []
    if wins:
        parts.append("better on " + ", ".join(wins))
    if losses:
        parts.append("worse on " + ", ".join(losses))
    if ties:
        parts.append("on par on " + ", ".join(ties))
    return f"Against {baseline}, {ours} is " + "; ".join(parts) + "."


def write_demo_report(output, results):
    """Write ``report.md`` and the PNG galleries of a demo run."""
    visualize = results.pop("_visualize")
    galleries = results.pop("_galleries")
    labels = results.pop("_labels")
    maps = results.pop("_maps")
    names = results.get("class_names", [])
    titles = [f"class {int(c)}" for c in labels]
    for filename, (images, by_method) in galleries.items():
        visualize.save_gallery(os.path.join(output, filename), images, by_method, titles=titles)
    curves_written = False
    plot = getattr(visualize, "plot_curves", None)
    methods = results["methods"]
    settings = results["settings"]
    lines = [
        "# BR-NPA demo report",
        "",
        f"Backend: `{results['backend']}`. Embedded synthetic data "
        f"(`keras_brnpa.datasets.synthetic_parts`): {settings['num_classes']} classes that differ "
        f"only by the colour and shape of three small part regions of an object, "
        f"{settings['image_size']} px images, {settings['num_images']} training and "
        f"{settings['test_images']} test images. Every model uses the tiny ResNet backbone "
        f"trained from scratch, {settings['epochs']} epochs each; the high-resolution student "
        f"is distilled for {settings['distill_epochs']} epochs from the low-resolution BR-NPA "
        "teacher.",
        "",
        "| model | head | feature map | parameters | test accuracy |",
        "|---|---|---|---|---|",
    ]
    heads = {"cnn": "global average pooling", "bcnn": "B-CNN (learned maps)",
             "brnpa_low": "BR-NPA", "brnpa_high": "BR-NPA (distilled student)"}
    for name, info in results["models"].items():
        h, w, c = info["feature_map"]
        lines.append(
            f"| {name} | {heads.get(name, name)} | {h}x{w}x{c} | {info['parameters']:,} | "
            f"{_fmt(info['accuracy'])} |"
        )
    lines += [
        "",
        "## Results",
        "",
        "| explanation | model | map | accuracy | DAUC (lower better) | IAUC (higher better) "
        "| sparsity (higher = sparser) | pointing game | energy in mask |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, m in methods.items():
        lines.append(
            f"| {label} | {m['model']} | {m['map_size'][0]}x{m['map_size'][1]} | "
            f"{_fmt(m['accuracy'])} | {_fmt(m['dauc'])} | {_fmt(m['iauc'])} | "
            f"{_fmt(m['sparsity'], 2)} | {_fmt(m.get('pointing_game'))} | "
            f"{_fmt(m.get('energy_in_mask'))} |"
        )
    lines += [
        "",
        "Accuracy is that of the model the explanation comes from (the post-hoc methods all "
        "explain the same plain CNN). DAUC/IAUC: deletion/insertion of the map's cells "
        f"({settings['steps']} steps), area under the probability of the predicted class. "
        "Sparsity: maximum over mean of the map (1 = uniform; its ceiling grows with the "
        "number of cells, so a finer map can score higher by construction). The maps do not "
        "share a resolution (see the map column): a finer map deletes or inserts smaller, "
        "better aimed regions at each step and can point more precisely, which favours "
        "RISE (pixel level) and the high-resolution BR-NPA on every column. Pointing game and "
        "energy in mask use the ground-truth part masks. RISE: "
        f"{settings['rise_masks']} random masks on a {settings['rise_grid']}x"
        f"{settings['rise_grid']} grid; Score-CAM: "
        + (f"the {settings['score_channels']} most active channels per image."
           if settings.get("score_channels") else "every channel."),
        "",
        "## Where BR-NPA wins and loses",
        "",
        "Computed from the table above (differences below "
        + ", ".join(f"{METRICS[k][0]} {v}" for k, v in TOLERANCE.items())
        + " are called on par):",
        "",
    ]
    for ours in ("BR-NPA (high res.)", "BR-NPA (low res.)"):
        for baseline in methods:
            if baseline.startswith("BR-NPA"):
                continue
            lines.append(f"- {verdicts(methods, ours, baseline)}")
    lines.append(f"- {verdicts(methods, 'BR-NPA (high res.)', 'BR-NPA (low res.)')}")
    lines += [
        "",
        f"These numbers come from {settings['test_images']} test images and a few epochs of a "
        "tiny network trained from scratch on CPU: differences of a few points are within the "
        "run-to-run noise, and they say nothing about ImageNet-pretrained ResNets on "
        "CUB-200-2011 (see the paper for those).",
        "",
        "## Pictures",
        "",
        "Attention maps of the models with an attention head (part 1 red, part 2 green, "
        "part 3 blue; last column: the ground-truth part masks):",
        "",
        "![attention maps](gallery_attention.png)",
        "",
        "All the explanation maps compared above:",
        "",
        "![explanations](gallery_explanations.png)",
        "",
    ]
    if names:
        lines += ["## Classes", ""] + [f"- class {i}: {n}" for i, n in enumerate(names)] + [""]
    timings = results.get("timings_s", {})
    if timings:
        lines += [
            "## Time",
            "",
            ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()),
            "",
        ]
    del curves_written, plot, maps
    with open(os.path.join(output, REPORT_FILE), "w") as f:
        f.write("\n".join(lines))


# -------------------------------------------------------------------- main
COMMANDS = {
    "demo": cmd_demo,
    "train": cmd_train,
    "distill": cmd_distill,
    "explain": cmd_explain,
    "evaluate": cmd_evaluate,
}


def main(argv=None, callbacks=None):
    """Run the ``brnpa`` command line.

    Args:
        argv: list of arguments (default ``sys.argv[1:]``).
        callbacks: optional extra ``keras.callbacks.Callback`` objects for
            the training commands (``train``, ``distill``, ``demo``), for
            programmatic use.

    Returns:
        The exit status: 0 on success, 1 on an error, 2 on a usage error,
        130 when interrupted (rerun the same command to resume).

    Example:

    >>> from keras_brnpa import cli
    >>> cli.main(["train", "--backbone", "no-such-net", "--output", "/nonexistent/x"])
    2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    prefix = f"brnpa {command}" if command else "brnpa"
    with _native_stderr_hidden():
        return _main(argv, callbacks, prefix)


@contextlib.contextmanager
def _native_stderr_hidden():
    """Drop what C++ libraries (TensorFlow, XLA) write on stderr.

    TensorFlow prints several log lines on the process's stderr at import
    and at its first operations, whatever ``TF_CPP_MIN_LOG_LEVEL`` says.
    While a command runs, file descriptor 2 points to ``/dev/null`` and
    Python's ``sys.stderr`` to the real stderr, so that the command's own
    messages and Python warnings still show. ``BRNPA_DEBUG=1`` keeps
    everything.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd != 2 or os.environ.get("BRNPA_DEBUG"):
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


def _main(argv, callbacks, prefix):
    try:
        args = build_parser().parse_args(argv)
        if args.command in ("train", "distill") and getattr(args, "backbone", "tiny") not in BACKBONES:
            raise CLIError(
                f"unknown backbone {args.backbone!r}: use one of {', '.join(BACKBONES)}",
                code=EXIT_USAGE,
            )
        function = COMMANDS[args.command]
        if args.command in ("train", "distill", "demo"):
            return function(args, callbacks=callbacks or ())
        return function(args)
    except CLIError as error:
        print(f"{prefix}: error: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        print(
            f"{prefix}: interrupted; run the same command again to resume from the last "
            "finished epoch",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except SystemExit as error:  # --help and --version
        return error.code if isinstance(error.code, int) else 0
    except Exception as error:
        if os.environ.get("BRNPA_DEBUG"):
            raise
        print(
            f"{prefix}: error: {type(error).__name__}: {_first_line(error)} "
            "(set BRNPA_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
