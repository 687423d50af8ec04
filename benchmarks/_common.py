"""Helpers shared by the benchmark scripts of this folder (not a benchmark).

The scripts import it as ``import _common`` (Python puts the folder of the
script it runs on ``sys.path``). Importing it puts the repository root on
``sys.path`` too, so that every script runs from a checkout without
installing keras_brnpa, e.g.::

    KERAS_BACKEND=jax python benchmarks/bench_explain.py --quick

It holds what the scripts used to repeat: the device name, waiting for a
result (``sync``), median timing after a warm-up (``timed``), one timed call
(``timed_call``), the small convolutional backbone of the ``--quick`` runs
and the classifier built on it (``classifier``), the study scripts'
training (``fit_cosine``), the header line and the
Markdown table printing, and the number format (``sig``).
"""

import datetime
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

BACKEND = keras.config.backend()


# -------------------------------------------------------------- the machine
def device_name():
    """``"CPU"`` or ``"GPU"`` (``"TPU"`` on JAX): where the backend computes."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    if BACKEND == "jax":
        import jax

        return jax.default_backend().upper()
    import torch

    return "GPU" if torch.cuda.is_available() else "CPU"


def header(name, **fields):
    """The first line of a benchmark's output: machine, versions, settings."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    base = (
        f"# {name}: backend={BACKEND} device={device_name()} cpus={os.cpu_count()} "
        f"python={platform.python_version()} keras={keras.__version__} date={stamp}"
    )
    return " ".join([base] + [f"{key}={value}" for key, value in fields.items()])


# ------------------------------------------------------------------- timing
def sync(value):
    """Wait until ``value`` (a tensor or a structure of them) is computed.

    JAX: ``block_until_ready``; torch: synchronise CUDA; TensorFlow: read the
    first tensor back (``.numpy()``), as little as possible is copied.
    NumPy values are already there.
    """
    if BACKEND == "jax":
        import jax

        jax.block_until_ready(value)
    elif BACKEND == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    else:
        for leaf in keras.tree.flatten(value):
            if hasattr(leaf, "numpy") and not isinstance(leaf, np.ndarray):
                leaf.numpy()
                break
    return value


def timed(fn, repeats, warmup=1):
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs.

    Each run waits for its result (``sync``); the warm-up runs pay for
    tracing, compilation and caches.
    """
    for _ in range(warmup):
        sync(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def timed_pair(first, second, repeats):
    """Median seconds of ``first()`` and of ``second()``, runs interleaved.

    ``first, second, first, second, ...``: a drift of the machine (another
    job, the clock, a state one side leaves behind) falls on both alike.
    """
    times = ([], [])
    for _ in range(repeats):
        for fn, bucket in zip((first, second), times):
            start = time.perf_counter()
            sync(fn())
            bucket.append(time.perf_counter() - start)
    return float(np.median(times[0])), float(np.median(times[1]))


def timed_call(fn, *args, **kwargs):
    """``(seconds, result)`` of one call ``fn(*args, **kwargs)``."""
    start = time.perf_counter()
    result = sync(fn(*args, **kwargs))
    return time.perf_counter() - start, result


# -------------------------------------------------------------- the models
def conv_backbone(size, filters=(16, 32, 64), name="backbone"):
    """Three 3x3 convolutions, stride 4 in all, no keras-cv (``--quick``)."""
    strides = (2, 2, 1)
    layers = [keras.Input((size, size, 3))]
    layers += [
        keras.layers.Conv2D(f, 3, strides=s, padding="same", activation="relu")
        for f, s in zip(filters, strides)
    ]
    return keras.Sequential(layers, name=name)


#: keras.applications constructors by ResNet name: the ResNets of the
#: benchmarks where keras-cv does not import (it needs TensorFlow).
APPLICATIONS = {"resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152"}


def keras_cv_available():
    """Whether keras-cv imports (it needs TensorFlow, whatever the backend)."""
    try:
        import keras_cv  # noqa: F401
    except Exception:  # ImportError, or keras-cv's own check for TensorFlow
        return False
    return True


def backbone_source(source="auto"):
    """``"keras_cv"`` or ``"applications"``: where ``classifier``'s ResNets come from.

    ``"auto"``: keras-cv (``build_backbone``) when it imports, else
    ``keras.applications`` (a machine with JAX or torch and no TensorFlow).
    """
    if source == "auto":
        return "keras_cv" if keras_cv_available() else "applications"
    if source not in ("keras_cv", "applications"):
        raise ValueError(
            "Invalid value for argument source. Expected 'auto', 'keras_cv' or "
            f"'applications'. Received: source={source!r}"
        )
    return source


def classifier(backbone, size, num_classes=10, head="brnpa", resolution="low",
               source="auto", **kwargs):
    """``build_classifier`` on ``size`` px images.

    ``backbone="conv"``: ``conv_backbone``. A ResNet name: keras-cv's
    (``build_backbone``), or with ``source="applications"`` (``"auto"``
    where keras-cv is missing) ``keras.applications``' ResNet50/101/152 (the
    same network with biases in its convolutions), made high resolution by
    ``keras_brnpa.models.to_high_resolution``.
    """
    import keras_brnpa

    shape = (size, size, 3)
    if backbone == "conv":
        backbone = conv_backbone(size)
    elif backbone_source(source) == "applications":
        if backbone not in APPLICATIONS:
            raise ValueError(
                f"Invalid value for argument backbone. Without keras-cv (it needs "
                f"TensorFlow), expected 'conv' or one of {sorted(APPLICATIONS)} "
                f"(keras.applications). Received: backbone={backbone!r}"
            )
        constructor = getattr(keras.applications, APPLICATIONS[backbone])
        backbone = constructor(include_top=False, weights=None, input_shape=shape)
        if resolution == "high":
            backbone = keras_brnpa.models.to_high_resolution(backbone)
    return keras_brnpa.models.build_classifier(
        num_classes, backbone=backbone, head=head, input_shape=shape,
        resolution=resolution, **kwargs
    )


def fit_cosine(model, x, y, epochs, lr, batch_size, eager=False, warmup_epochs=0.0,
               clipnorm=None, validation_data=None):
    """Train a classifier of logits as the study scripts do; the seconds ``fit`` took.

    Adam with a cosine decay of the learning rate from ``lr`` to 0 over the
    run (``keras_brnpa.distillation.recipe_optimizer``), sparse categorical
    cross-entropy on logits, accuracy; ``eager``: ``run_eagerly`` (a
    ``--quick`` step, where tracing would cost more). ``warmup_epochs``: a
    linear warm-up from 0 to ``lr`` first (the decay then takes the
    remaining steps); ``clipnorm``: Adam's gradient clipping;
    ``validation_data``: ``(images, labels)`` scored after every epoch
    (``val_loss`` / ``val_accuracy`` in ``model.history``; inference only,
    the training is the same).
    """
    import keras_brnpa

    per_epoch = int(np.ceil(len(x) / batch_size))
    steps = epochs * per_epoch
    warmup_steps = min(int(round(warmup_epochs * per_epoch)), steps - 1)
    if warmup_steps or clipnorm is not None:
        if warmup_steps:
            schedule = keras.optimizers.schedules.CosineDecay(
                0.0, steps - warmup_steps, warmup_target=lr, warmup_steps=warmup_steps)
        else:
            schedule = keras.optimizers.schedules.CosineDecay(lr, steps)
        optimizer = keras.optimizers.Adam(schedule, clipnorm=clipnorm)
    else:
        optimizer = keras_brnpa.distillation.recipe_optimizer(steps, lr)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        run_eagerly=eager,
    )
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0,
              validation_data=validation_data)
    return time.perf_counter() - start


def fill_defaults(args, quick, full):
    """Set the arguments left at ``None`` from ``quick`` or ``full`` (by ``args.quick``)."""
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# ------------------------------------------------------------------ output
def sig(value):
    """A positive number with about 3 significant digits, no exponent."""
    for bound, digits in ((100, 0), (10, 1), (1, 2), (0.1, 3), (0.01, 4)):
        if value >= bound:
            return f"{value:.{digits}f}"
    return f"{value:.6f}"


def print_table(columns, rows):
    """Print a Markdown table: a header of ``columns``, then ``rows`` of cells."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
