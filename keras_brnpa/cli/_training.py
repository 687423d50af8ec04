"""The training recipe ``train``, ``distill`` and ``demo`` share: compile
settings, loss and optimiser, data-parallel scope, the resumable fit and
save, and what a run records. Nothing here imports Keras at module level.
"""

import contextlib
import os
import sys

from keras_brnpa.cli import _common
from keras_brnpa.cli import _data
from keras_brnpa.cli._common import CLIError

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"

#: The data and optimiser settings a training run records in ``run.json``.
DATA_KEYS = ("image_size", "batch_size", "num_images", "num_classes", "seed",
             "validation_split", "epochs", "optimizer", "learning_rate")


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
