"""The paper's recipe: a low-resolution teacher trains its high-resolution twin."""

import os

import keras

from keras_brnpa.distillation.distiller import Distiller
from keras_brnpa._checks import check_choice
from keras_brnpa._checks import check_positive_float
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid
from keras_brnpa.models.backbones import RESNET_CONFIGS
from keras_brnpa.models.backbones import RESOLUTION_STRIDES
from keras_brnpa.models.backbones import build_backbone
from keras_brnpa.models.backbones import to_high_resolution

#: The BR-NPA authors' setup for the high-resolution student on
#: CUB-200-2011 (paper and released code, ``trainVal.py``). The temperature
#: and alpha were searched per run with Optuna over the ranges below; no
#: single value is published, hence the defaults of ``Distiller``
#: (``temperature=4.0``, ``alpha=0.5``, a common starting point inside
#: these ranges); ``distill`` uses the measured ``RECIPE_DEFAULTS``.
PAPER_DEFAULTS = {
    "dataset": "caltech_birds2011",
    "backbone": "resnet50",
    "backbone_weights": "ImageNet",
    "n_parts": 3,
    "teacher_strides": RESOLUTION_STRIDES["low"],
    "student_strides": RESOLUTION_STRIDES["high"],
    "image_size": 448,
    "train_augmentation": (
        "resize to 512",
        "random crop 448",
        "random horizontal flip",
        "colour jitter",
    ),
    "test_preprocessing": ("resize to 512", "centre crop 448"),
    "optimizer": "SGD",
    "learning_rate": 1e-3,
    "momentum": 0.9,
    "temperature_searched": (1.0, 6.0, 11.0, 16.0, 21.0),
    "alpha_searched": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    "kl_reduction": "sum over classes, mean over the batch",
    "student_initialisation": (
        "the backbone's ImageNet weights, not the teacher's (trainVal.py): "
        "build_high_resolution_student(teacher, init='backbone')"
    ),
}


#: The recipe measured on the embedded data (docs/distillation.md, "Which
#: recipe" and "Third study"): the defaults of ``distill`` and of ``brnpa
#: distill``. T = 1 and alpha = 0.1 (mostly the labels, a little of the
#: teacher), Adam with a cosine decay of the learning rate from 3e-3 to 0
#: over the distillation's steps (``recipe_optimizer``; 3e-3 beat 1e-3 in
#: the demo's setting, on the harder data and from a pretrained backbone),
#: the student starting from the teacher's weights. ``PAPER_DEFAULTS``
#: keeps the authors' setup (SGD 1e-3, momentum 0.9: ``paper_optimizer``;
#: T and alpha searched).
RECIPE_DEFAULTS = {
    "temperature": 1.0,
    "alpha": 0.1,
    "optimizer": "adam",
    "learning_rate": 3e-3,
    "schedule": "cosine decay to 0 over the training steps",
    "student_initialisation": "teacher",
}


def recipe_optimizer(decay_steps, learning_rate=None):
    """A new instance of the measured recipe's optimiser.

    Adam with ``keras.optimizers.schedules.CosineDecay`` from
    ``RECIPE_DEFAULTS["learning_rate"]`` (3e-3) to 0 over ``decay_steps``
    (the number of training steps: epochs x steps per epoch).

    Args:
        decay_steps: int >= 1.
        learning_rate: optional finite real number > 0 (a Python or NumPy
            scalar), the initial learning rate (default
            ``RECIPE_DEFAULTS["learning_rate"]``).

    Returns:
        A ``keras.optimizers.Adam``.

    Example:

    >>> import keras_brnpa
    >>> opt = keras_brnpa.distillation.recipe_optimizer(100)
    >>> type(opt).__name__, round(float(opt.learning_rate), 6)
    ('Adam', 0.003)
    """
    decay_steps = check_positive_int("decay_steps", decay_steps)
    if learning_rate is None:
        learning_rate = RECIPE_DEFAULTS["learning_rate"]
    learning_rate = check_positive_float("learning_rate", learning_rate)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    return keras.optimizers.Adam(schedule)


def _steps_per_epoch(x, y, fit_kwargs):
    """The steps of one epoch of ``fit(x, y, **fit_kwargs)``, or ``None``."""
    if fit_kwargs.get("steps_per_epoch"):
        return int(fit_kwargs["steps_per_epoch"])
    if y is not None or hasattr(x, "shape"):  # arrays
        n = len(x)
        return max(1, -(-n // int(fit_kwargs.get("batch_size") or 32)))
    if isinstance(x, keras.utils.PyDataset) or hasattr(x, "__len__"):
        try:
            return max(1, len(x))
        except TypeError:
            return None
    cardinality = getattr(x, "cardinality", None)  # tf.data
    if callable(cardinality):
        value = int(cardinality())
        return value if value > 0 else None
    return None


def paper_optimizer():
    """A new instance of the paper's optimiser: SGD, lr 1e-3, momentum 0.9.

    Example:

    >>> import keras_brnpa
    >>> opt = keras_brnpa.distillation.paper_optimizer()
    >>> type(opt).__name__, round(float(opt.learning_rate), 6), opt.momentum
    ('SGD', 0.001, 0.9)
    """
    return keras.optimizers.SGD(
        learning_rate=PAPER_DEFAULTS["learning_rate"], momentum=PAPER_DEFAULTS["momentum"]
    )


#: ``init`` values of ``build_high_resolution_student``.
STUDENT_INITS = ("teacher", "backbone", "random")

#: The presets with ImageNet weights, per library (``source`` of
#: ``keras_brnpa.models.build_backbone``) and backbone architecture (the
#: names of ``keras_brnpa.models.backbones.RESNET_CONFIGS``): keras-cv's
#: ``ResNetBackbone`` (v1) publishes them for ResNet-50 only, keras-hub's for
#: ResNet-18, 50, 101 and 152.
IMAGENET_PRESETS = {
    "keras_cv": {"resnet50": "resnet50_imagenet"},
    "keras_hub": {
        "resnet18": "resnet_18_imagenet",
        "resnet50": "resnet_50_imagenet",
        "resnet101": "resnet_101_imagenet",
        "resnet152": "resnet_152_imagenet",
    },
}

# keras-hub's names of the block types (RESNET_CONFIGS uses keras-cv's).
_HUB_BLOCK_TYPES = {"basic_block": "basic_block", "block": "bottleneck_block"}


def build_high_resolution_student(
    teacher,
    init="teacher",
    strides=None,
    name=None,
    backbone_weights=None,
):
    """Build the high-resolution student of a low-resolution teacher.

    The student is the teacher's twin from
    ``keras_brnpa.models.to_high_resolution``: the per-stage strides of its
    ResNet backbone set to ``strides`` (default 1, 2, 1, 1: stages 3 and 4
    at stride 1, as in the paper; another CNN gets stride 1 in its last two
    downsampling steps): its feature map, and so its attention maps, are
    4x finer per side (16x more locations). Strides do not change weight
    shapes, so the student can start from:

    - ``init="teacher"``: a copy of all the teacher's weights
      (``keras_brnpa.models.to_high_resolution``);
    - ``init="backbone"``: the backbone's original weights, as the authors
      do (their student starts from ImageNet weights, not from the
      teacher); the head and the last layer are freshly initialised. By
      default these are the ImageNet weights of the teacher's
      architecture, a preset of the backbone's library
      (``IMAGENET_PRESETS``: keras-cv has ``"resnet50_imagenet"`` only,
      keras-hub ResNet-18/50/101/152), downloaded on first use; offline,
      or for a backbone without such weights (``"tiny"``, keras-cv
      ResNet-18/34/101/152, your own ResNet), it raises an error saying
      so: pass ``backbone_weights`` (a preset name of that library or a
      weights file of the same architecture) to say where the weights
      come from. Only for a keras-cv or keras-hub ``ResNetBackbone``;
    - ``init="random"``: fresh random weights everywhere (the initialisers
      of the layers), for training from scratch.

    The teacher is not modified, and its weights are never shared with the
    student.

    Args:
        teacher: a classifier from ``keras_brnpa.models.build_classifier``
            (or any CNN ``to_high_resolution`` takes).
        init: ``"teacher"``, ``"backbone"`` or ``"random"`` (see above).
        strides: ResNet backbones only: the student's 4 per-stage strides
            (``None``: 1, 2, 1, 1).
        name: the student's name (default ``"<teacher name>_high_resolution"``).
        backbone_weights: with ``init="backbone"`` only: ``None`` (the
            ImageNet preset of the teacher's architecture), a preset name
            of the backbone's library (keras-cv or keras-hub), or a path to a ``.weights.h5`` / ``.keras`` file
            holding the weights of the teacher's backbone architecture.

    Returns:
        A new ``keras.Model`` with the teacher's inputs and outputs.

    Raises:
        ValueError: invalid arguments; ``init="backbone"`` for a backbone
            without original weights and no ``backbone_weights``; weights
            of another architecture.
        RuntimeError: a preset that cannot be downloaded (offline).

    Example:

    >>> import numpy as np, keras_brnpa
    >>> teacher = keras_brnpa.models.build_classifier(
    ...     4, backbone="tiny", input_shape=(64, 64, 3))
    >>> student = keras_brnpa.distillation.build_high_resolution_student(teacher)
    >>> keras_brnpa.models.feature_shape(teacher)[:2], keras_brnpa.models.feature_shape(student)[:2]
    ((2, 2), (8, 8))
    >>> all(np.array_equal(a, b) for a, b in zip(teacher.get_weights(), student.get_weights()))
    True
    >>> fresh = keras_brnpa.distillation.build_high_resolution_student(teacher, init="random")
    >>> fresh.output_shape, np.array_equal(fresh.get_weights()[0], teacher.get_weights()[0])
    ((None, 4), False)
    """
    if not isinstance(teacher, keras.Model):
        raise invalid("teacher", teacher, "a keras.Model (a classifier from build_classifier)")
    check_choice("init", init, STUDENT_INITS)
    if name is not None and (not isinstance(name, str) or not name):
        raise invalid("name", name, "None or a non-empty string")
    if backbone_weights is not None and init != "backbone":
        raise invalid(
            "backbone_weights",
            backbone_weights,
            f"None with init={init!r} (backbone_weights is for init='backbone')",
        )
    if backbone_weights is not None and (
        not isinstance(backbone_weights, (str, os.PathLike)) or not os.fspath(backbone_weights)
    ):
        raise invalid(
            "backbone_weights", backbone_weights, "None, a keras-cv preset name or a file path"
        )
    twin = to_high_resolution(teacher, strides=strides)
    if init != "teacher":
        # Rebuilding from the config gives every layer its initialiser's
        # fresh values (the twin's copied weights are dropped).
        twin = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(twin))
    if init == "backbone":
        _load_original_backbone_weights(teacher, twin, strides, backbone_weights)
    twin.name = name or f"{teacher.name}_high_resolution"
    return twin


def _resnet_backbones(model):
    """The keras-cv ``ResNetBackbone`` models inside ``model`` (itself included)."""
    found, stack, seen = [], [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if type(layer).__name__ == "ResNetBackbone":
            found.append(layer)
            continue
        stack.extend(reversed(getattr(layer, "layers", []) or []))
    return found


def _architecture(backbone):
    """``(source, name)`` of a ResNetBackbone: its library (``"keras_cv"`` or
    ``"keras_hub"``) and its ``RESNET_CONFIGS`` name (``None`` if other)."""
    config = backbone.get_config()
    if "stackwise_num_filters" in config:  # keras-hub
        for arch, (filters, blocks, block_type) in RESNET_CONFIGS.items():
            if (
                list(config.get("stackwise_num_filters", [])) == [64] + list(filters[1:])
                and list(config.get("stackwise_num_blocks", [])) == list(blocks)
                and config.get("block_type") == _HUB_BLOCK_TYPES[block_type]
                and list(config.get("input_conv_filters", [])) == [16 if arch == "tiny" else 64]
            ):
                return "keras_hub", arch
        return "keras_hub", None
    for arch, (filters, blocks, block_type) in RESNET_CONFIGS.items():
        if (
            list(config.get("stackwise_filters", [])) == list(filters)
            and list(config.get("stackwise_blocks", [])) == list(blocks)
            and config.get("block_type") == block_type
        ):
            return "keras_cv", arch
    return "keras_cv", None


def _looks_like_file(value):
    return os.sep in value or value.endswith((".h5", ".keras")) or os.path.exists(value)


def _load_original_backbone_weights(teacher, student, strides, weights):
    targets = _resnet_backbones(student)
    if len(targets) != 1:
        raise invalid(
            "teacher",
            f"<{type(teacher).__name__} {teacher.name!r}>",
            "a model with exactly one keras-cv or keras-hub ResNetBackbone for "
            f"init='backbone' (found {len(targets)}); for another CNN use init='teacher' "
            "or 'random' and load its original weights into the student yourself",
        )
    target = targets[0]
    library, arch = _architecture(target)
    if weights is None:
        weights = IMAGENET_PRESETS[library].get(arch)
        if weights is None:
            described = repr(arch) if arch else "a custom ResNetBackbone"
            raise invalid(
                "init",
                "backbone",
                f"'teacher' or 'random' for a teacher whose backbone ({described}, "
                f"{library}) has no original weights: {library} publishes ImageNet "
                "weights only for "
                + ", ".join(f"{a!r} ({p!r})" for a, p in IMAGENET_PRESETS[library].items())
                + "; the from-scratch backbones ('tiny', ...) have none. Pass "
                "backbone_weights=<preset or weights file> to name them",
            )
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    is_preset = not _looks_like_file(weights)
    if arch is None and not is_preset:
        raise invalid(
            "backbone_weights",
            weights,
            "a preset name: the teacher's ResNetBackbone is not one of the package's "
            "architectures (" + ", ".join(RESNET_CONFIGS) + "), so load a weights file "
            "into the student's backbone yourself (load_weights)",
        )
    config = target.get_config()
    options = {"source": library}
    if library == "keras_cv":
        options["include_rescaling"] = bool(config.get("include_rescaling", False))
    try:
        source = build_backbone(
            arch or "resnet50",  # a preset sets its own architecture
            strides=list(RESOLUTION_STRIDES["high"] if strides is None else strides),
            weights=weights,
            input_shape=tuple(target.input_shape[1:]),
            **options,
        )
    except ValueError as error:
        raise invalid(
            "backbone_weights",
            weights,
            f"a {library} preset or a weights file of the teacher's backbone architecture "
            f"({arch}): {str(error).splitlines()[0]}",
        ) from error
    source_weights = source.get_weights()
    target_shapes = [tuple(w.shape) for w in target.weights]
    if [tuple(w.shape) for w in source_weights] != target_shapes:
        raise invalid(
            "backbone_weights",
            weights,
            f"weights of the teacher's backbone architecture ({arch or 'custom'}: "
            f"{len(target_shapes)} arrays), not {len(source_weights)} arrays of other shapes",
        )
    target.set_weights(source_weights)


def distill(
    teacher,
    train_data,
    epochs=1,
    validation_data=None,
    student=None,
    temperature=RECIPE_DEFAULTS["temperature"],
    alpha=RECIPE_DEFAULTS["alpha"],
    optimizer=None,
    loss=None,
    metrics=("accuracy",),
    from_logits=True,
    callbacks=None,
    jit_compile="auto",
    run_eagerly=False,
    verbose="auto",
    **fit_kwargs,
):
    """Distill a trained low-resolution teacher into its high-resolution twin.

    Build the student with ``build_high_resolution_student`` (unless
    ``student`` is given: by default from the teacher's weights), wrap both
    in a ``Distiller`` and ``fit`` it. The defaults are the recipe measured
    on the embedded data (``RECIPE_DEFAULTS``, docs/distillation.md):
    ``temperature=1``, ``alpha=0.1`` and, unless ``optimizer`` is given,
    Adam with a cosine decay from 3e-3 to 0 over the ``epochs`` x steps per
    epoch (``recipe_optimizer``). The paper's own values: pass
    ``optimizer=paper_optimizer()`` (SGD 1e-3, momentum 0.9) and search
    ``temperature`` and ``alpha`` over ``PAPER_DEFAULTS``' ranges. The
    paper's augmentation (resize 512, random crop 448, flip, colour jitter)
    belongs to ``train_data``: ``keras_brnpa.datasets.load_tfds`` applies
    it. See ``PAPER_DEFAULTS`` for the whole setup and the searched ranges
    of ``temperature`` and ``alpha``.

    ``jit_compile="auto"`` is Keras's rule: XLA on JAX, and on TensorFlow
    only when a GPU/TPU is present (XLA halves convolution training speed
    on CPU); pass ``True`` or ``False`` to force it.

    Args:
        teacher: a trained classifier from ``build_classifier`` (logits).
        train_data: what ``fit`` takes as ``x``: a ``tf.data.Dataset``, a
            ``keras.utils.PyDataset`` or a generator of ``(images, labels)``
            batches, or a tuple ``(images, labels)`` of arrays.
        epochs: int >= 1.
        validation_data: optional, as in ``fit``.
        student: optional student model (default: the teacher's
            high-resolution twin).
        temperature, alpha, from_logits: see ``Distiller`` (defaults:
            ``RECIPE_DEFAULTS``, 1.0 and 0.1).
        optimizer: a Keras optimiser (default: ``recipe_optimizer`` over
            the run's steps; it needs the number of steps per epoch: arrays,
            a ``PyDataset``, a finite ``tf.data.Dataset`` or
            ``steps_per_epoch``).
        loss: the student's loss (default:
            ``SparseCategoricalCrossentropy(from_logits=from_logits)``).
        metrics: compiled metrics of the student.
        callbacks: optional list of Keras callbacks.
        jit_compile: ``"auto"``, ``True`` or ``False`` (see above).
        run_eagerly: bool, run the training step eagerly (debugging, or a
            few steps on CPU where building the graph costs more).
        verbose: as in ``fit``.
        **fit_kwargs: other ``fit`` arguments (``batch_size``,
            ``steps_per_epoch``, ``shuffle``, ...).

    Returns:
        ``(student, history)``: the trained student (a plain classifier:
        save it with ``student.save("student.keras")``) and the ``History``
        of the distillation, with ``student_loss`` and
        ``distillation_loss`` logged.

    Example:

    >>> import keras, numpy as np, keras_brnpa
    >>> teacher = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", input_shape=(64, 64, 3))
    >>> images = np.random.rand(4, 64, 64, 3).astype("float32")
    >>> labels = np.array([0, 1, 2, 0])
    >>> student, history = keras_brnpa.distillation.distill(
    ...     teacher, (images, labels), epochs=1, batch_size=4, verbose=0)
    >>> keras_brnpa.models.feature_shape(student)[:2]
    (8, 8)
    >>> sorted(history.history)
    ['accuracy', 'distillation_loss', 'loss', 'student_loss']
    """
    epochs = check_positive_int("epochs", epochs)
    if student is None:
        student = build_high_resolution_student(teacher)
    distiller = Distiller(
        teacher, student, temperature=temperature, alpha=alpha, from_logits=from_logits
    )
    if loss is None:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    if isinstance(train_data, tuple) and len(train_data) in (2, 3):
        x, y = train_data[0], train_data[1]
        if len(train_data) == 3:
            fit_kwargs.setdefault("sample_weight", train_data[2])
    else:
        x, y = train_data, None
    if optimizer is None:
        steps = _steps_per_epoch(x, y, fit_kwargs)
        if steps is None:
            raise invalid(
                "optimizer", None,
                "an optimizer, or steps_per_epoch=..., for train data of unknown length "
                "(the default optimizer decays its learning rate over epochs x steps per epoch)",
            )
        optimizer = recipe_optimizer(epochs * steps)
    distiller.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=list(metrics) if metrics else None,
        jit_compile=jit_compile,
        run_eagerly=run_eagerly,
    )
    history = distiller.fit(
        x,
        y,
        epochs=epochs,
        validation_data=validation_data,
        callbacks=callbacks,
        verbose=verbose,
        **fit_kwargs,
    )
    return student, history
