"""``brnpa train``: train a classifier on the embedded data, a tfds set or your folder."""

import contextlib
import os
import sys

from keras_brnpa.cli import _common
from keras_brnpa.cli import _data
from keras_brnpa.cli._common import CLIError
from keras_brnpa.cli._common import UsageError
from keras_brnpa.cli._common import say

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"


def run_files():
    """What ``--overwrite`` removes from an output folder (nothing else)."""
    from keras_brnpa import training

    return training.RUN_FILES + (METRICS_FILE, REPORT_FILE)


def add_training_options(parser, epochs):
    parser.add_argument("--epochs", type=_common.positive_int, default=epochs,
                        help="number of epochs")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default=None,
                        help="default: adam from scratch, sgd (momentum 0.9) with --weights")
    parser.add_argument("--learning-rate", type=_common.positive_float, default=None,
                        help="default: 2e-3 (adam) or 1e-3 (sgd)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run in the output folder")
    parser.add_argument("--distribute", action="store_true",
                        help="data-parallel training over all devices (keras_brnpa.distribute)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    parser.add_argument("--eager", action="store_true",
                        help="run eagerly, without graph compilation (debugging, tiny runs)")


def add_parser(commands):
    parser = commands.add_parser(
        "train", help="train a classifier (resumable)",
        description="Train a classifier (ResNet or tiny backbone, BR-NPA, B-CNN or GAP head) "
        "on the embedded synthetic data, a TensorFlow Datasets set or your own folder of "
        "class subfolders (--data). Rerun the same command after an interruption to resume.")
    _data.add_data_options(parser)
    add_training_options(parser, epochs=5)
    parser.add_argument("--backbone", choices=_common.BACKBONES, default="tiny",
                        help="the feature extractor")
    parser.add_argument("--head", choices=_common.HEADS, default="brnpa",
                        help="brnpa (the paper), bcnn (learned attention) or gap (plain CNN)")
    parser.add_argument("--resolution", choices=("low", "high"), default="low",
                        help="high: strides of the last two stages set to 1 (4x finer maps)")
    parser.add_argument("--n-parts", type=_common.positive_int, default=3,
                        help="attention parts of the brnpa and bcnn heads")
    parser.add_argument("--dropout", type=_common.dropout, default=0.0,
                        help="dropout before the last dense layer")
    parser.add_argument("--weights", default=None,
                        help="backbone weights: a keras-cv preset name or a weights file")
    parser.add_argument("--output", default=os.path.join("runs", "train"), help="run folder")
    parser.set_defaults(run=run)


# ------------------------------------------------------- shared recipe
def jit_compile():
    """XLA where it helps: TensorFlow on a GPU/TPU, always on JAX.

    On CPUs XLA makes TensorFlow convolution training about 2x slower
    (docs/backends.md), so TensorFlow on a CPU runs without it.
    """
    import keras

    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"))
    return backend == "jax"


def compile_mode(args):
    if getattr(args, "eager", False):
        return {"run_eagerly": True, "jit_compile": False}
    return {"jit_compile": jit_compile()}


def loss():
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def optimizer(name, learning_rate, pretrained):
    import keras

    name = name or ("sgd" if pretrained else "adam")
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate or 1e-3, momentum=0.9)
    return keras.optimizers.Adam(learning_rate or 2e-3)


def set_batch_norm_momentum(model, momentum=0.9):
    """Faster-adapting batch-norm statistics for short runs from scratch."""
    import keras

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


@contextlib.contextmanager
def distribution(enabled):
    if not enabled:
        yield None
        return
    from keras_brnpa import distribute

    try:
        scope = distribute.distribution_scope()
        replicas = scope.__enter__()
    except (ValueError, RuntimeError) as error:
        raise CLIError(f"--distribute: {_common.first_line(error)}") from None
    try:
        yield replicas
    except BaseException:
        if not scope.__exit__(*sys.exc_info()):
            raise
    else:
        scope.__exit__(None, None, None)


def sync_batch_norm(model, replicas):
    if replicas is not None:
        from keras_brnpa import distribute

        distribute.synchronize_batch_norm(model)


def fit_and_save(model, train_data, val_data, epochs, folder, callbacks, verbose, **info):
    """Resumable fit in ``folder``; saves the trained classifier, finishes the run.

    The saved model is ``model``, or the student of a ``Distiller``.
    ``info`` (e.g. the class names, where ``explain`` and ``evaluate`` find
    them next to ``model.keras``) goes into ``run.json``.

    Returns:
        ``(saved model, logs of the last epoch)``.
    """
    from keras_brnpa import training

    history = training.fit_resumable(model, train_data, val_data, epochs, folder, callbacks,
                                     verbose=verbose, finish=False)
    target = model.student if hasattr(model, "student") else model
    training.save_model(target, os.path.join(folder, training.MODEL_FILE))
    training.discard_backup(folder)
    final = history[-1] if history else {}
    training.finish_run(folder, epochs_done=len(history), final=final, **info)
    return target, final


def config_of(args, keys):
    config = {key: getattr(args, key) for key in keys}
    config.update(_data.data_source(args))
    return config


DATA_KEYS = ("image_size", "batch_size", "num_images", "num_classes", "seed",
             "validation_split", "epochs", "optimizer", "learning_rate")


# --------------------------------------------------------------- command
def run(args, callbacks=()):
    """``brnpa train``: validate, load, build, then claim the folder and fit."""
    _data.check_data_options(args)
    if args.weights is not None and os.sep in args.weights and not os.path.exists(args.weights):
        raise UsageError(f"--weights: file not found: {args.weights}")
    keras = _common.import_keras()
    from keras_brnpa import models

    keras.utils.set_random_seed(args.seed)
    train, val, class_names = _data.load_training_data(args)
    with distribution(args.distribute) as replicas:
        try:
            model = models.build_classifier(
                len(class_names), backbone=args.backbone, head=args.head, n_parts=args.n_parts,
                dropout=args.dropout, resolution=args.resolution, weights=args.weights,
                input_shape=(args.image_size, args.image_size, 3))
        except (ValueError, RuntimeError, OSError) as error:
            raise UsageError(_common.first_line(error)) from None
        config = config_of(args, DATA_KEYS + ("backbone", "head", "resolution", "n_parts",
                                              "dropout", "weights"))
        with _common.output_lock(args.output):
            resumed = _common.claim_run(args.output, "train", config, args.overwrite, run_files())
            say(("resuming" if resumed else "starting") + f" training in {args.output} "
                f"({len(class_names)} classes)", args.quiet)
            if args.weights is None:
                set_batch_norm_momentum(model)
            sync_batch_norm(model, replicas)
            model.compile(optimizer=optimizer(args.optimizer, args.learning_rate,
                                              args.weights is not None),
                          loss=loss(), metrics=["accuracy"], **compile_mode(args))
            _, final = fit_and_save(model, train, val, args.epochs, args.output, callbacks,
                                    _common.verbose_level(args), class_names=list(class_names))
    say(f"done: val_accuracy {final.get('val_accuracy', float('nan')):.3f}; model saved to "
        f"{os.path.join(args.output, 'model.keras')}", args.quiet)
    return 0

