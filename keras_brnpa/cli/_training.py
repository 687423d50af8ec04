"""The training recipe ``train``, ``distill`` and ``demo`` share: compile
settings, loss and optimiser, data-parallel scope, the resumable fit and
save, and what a run records. Nothing here imports Keras at module level.
"""

import contextlib
import math
import os
import re
import sys

from keras_brnpa.cli import _common
from keras_brnpa.cli import _data
from keras_brnpa.cli._common import CLIError

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"

#: The settings every training run records in ``run.json`` (the data
#: source's own settings are added by ``config_of``).
DATA_KEYS = ("image_size", "batch_size", "seed", "epochs", "optimizer", "learning_rate",
             "augment")

#: Total stride of the backbones at each resolution (stem 4, stages 1-2-2-2
#: or 1-2-1-1): a side of ``image_size / stride`` map cells.
STRIDES = {"low": 32, "high": 8}
#: The fewest map cells per side that ``--resolution auto`` aims at.
MIN_CELLS = 8


def run_files():
    """What ``--overwrite`` removes from an output folder (nothing else)."""
    from keras_brnpa import training

    return training.RUN_FILES + (METRICS_FILE, REPORT_FILE)


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


def map_side(image_size, resolution):
    """Map cells per side of the backbones at ``image_size`` pixels."""
    return math.ceil(image_size / STRIDES[resolution])


def resolve_resolution(args):
    """``--resolution auto``: low when it gives >= 8x8 map cells, else high.

    Says in one line when the chosen resolution still gives fewer cells.
    """
    size, chosen = args.image_size, args.resolution
    if chosen == "auto":
        chosen = "low" if map_side(size, "low") >= MIN_CELLS else "high"
    side = map_side(size, chosen)
    if side < MIN_CELLS:
        advice = ("use --resolution high (4x finer)" if chosen == "low"
                  else f"use --image-size {STRIDES['high'] * (MIN_CELLS - 1) + 1} or more")
        _common.warn(args, f"--image-size {size} with --resolution {chosen} gives {side}x{side} "
                     f"map cells: the maps will be too coarse to show much; {advice}")
    return chosen


def resolve_optimizer(args, pretrained):
    """The optimiser and learning rate that apply (``None`` options resolved)."""
    args.optimizer = args.optimizer or ("sgd" if pretrained else "adam")
    args.learning_rate = args.learning_rate or (1e-3 if args.optimizer == "sgd" else 2e-3)


def model_error(error, args):
    """A model builder's ``ValueError`` as one line naming the CLI option."""
    text = _common.first_line(error)
    match = re.search(r"argument (\w+)", text)
    name = match.group(1) if match else None
    if name == "n_parts":
        side = map_side(args.image_size, args.resolution)
        return (f"--n-parts {args.n_parts}: the feature map at --image-size {args.image_size} "
                f"({args.resolution} resolution) has {side}x{side} cells, fewer than the parts; "
                "use a larger --image-size, --resolution high or a smaller --n-parts")
    return _common.name_option(text)


def optimizer(name, learning_rate, pretrained):
    import keras

    name = name or ("sgd" if pretrained else "adam")
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate or 1e-3, momentum=0.9)
    return keras.optimizers.Adam(learning_rate or 2e-3)


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


def build_student(teacher):
    """The high-resolution twin of ``teacher`` (same weights)."""
    from keras_brnpa import distillation
    from keras_brnpa import models

    if hasattr(distillation, "build_high_resolution_student"):
        return distillation.build_high_resolution_student(teacher)
    return models.to_high_resolution(teacher)


def fit_and_save(model, train_data, val_data, epochs, folder, callbacks, verbose, **info):
    """Resumable fit in ``folder``; saves the trained classifier, finishes the run.

    The saved model is ``model``, or the student of a ``Distiller``.
    ``info`` (e.g. the class names, where ``explain`` and ``evaluate`` find
    them next to ``model.keras``) goes into ``run.json``.

    Returns:
        ``(saved model, logs of the last epoch)``.
    """
    from keras_brnpa import training

    callbacks = list(callbacks)
    if verbose == "lines":
        from keras_brnpa._progress import training_lines

        callbacks, verbose = callbacks + [training_lines()], 0
    history = training.fit_resumable(model, train_data, val_data, epochs, folder, callbacks,
                                     verbose=verbose, finish=False)
    target = model.student if hasattr(model, "student") else model
    training.save_model(target, os.path.join(folder, training.MODEL_FILE))
    training.discard_backup(folder)
    final = history[-1] if history else {}
    training.finish_run(folder, epochs_done=len(history), final=final, **info)
    return target, final


def config_of(args, keys):
    """The settings that apply to this run, for ``run.json``."""
    config = {key: getattr(args, key) for key in keys}
    config.update(_data.data_source(args))
    return config
