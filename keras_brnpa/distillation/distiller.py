"""Knowledge distillation: a teacher's soft predictions train a student."""

import numbers

import keras
from keras import ops

from keras_brnpa._checks import check_bool
from keras_brnpa._checks import invalid

#: Default softmax temperature of ``Distiller``. See its docstring for why.
DEFAULT_TEMPERATURE = 4.0
#: Default weight of the distillation term of ``Distiller``.
DEFAULT_ALPHA = 0.5


class _SoftTargetKL(keras.losses.Loss):
    """Per-sample ``T**2 * KL(softmax(t / T) || softmax(s / T))``.

    ``y_true`` are the teacher's outputs, ``y_pred`` the student's. The
    reduction over the batch (and ``sample_weight``) is Keras's own
    ``"sum_over_batch_size"``, the same as the compiled student loss, so
    the two terms are weighted alike.
    """

    def __init__(self, temperature, from_logits, name="distillation_loss"):
        super().__init__(name=name, reduction="sum_over_batch_size", dtype="float32")
        self.temperature = temperature
        self.from_logits = from_logits

    def _tempered_log_probs(self, outputs):
        outputs = ops.cast(outputs, "float32")
        if not self.from_logits:
            # Probabilities p: log p are logits up to a constant, so the
            # tempered distribution is softmax(log p / T) = p**(1/T) / Z.
            outputs = ops.log(ops.clip(outputs, keras.config.epsilon(), 1.0))
        return ops.log_softmax(outputs / self.temperature, axis=-1)

    def call(self, y_true, y_pred):
        log_p_teacher = self._tempered_log_probs(y_true)
        log_p_student = self._tempered_log_probs(y_pred)
        kl = ops.sum(ops.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
        return kl * (self.temperature**2)


def _output_classes(model, argument):
    """Number of classes of ``model``'s single output, or None if unknown."""
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError, TypeError):
        return None  # a subclassed model that was never called
    if not isinstance(shape, tuple) or len(shape) < 2 or isinstance(shape[0], (tuple, list)):
        raise invalid(
            argument,
            f"<{type(model).__name__} {model.name!r} with output shape {shape}>",
            "a keras.Model with one output of shape (batch, num_classes)",
        )
    return shape[-1]


@keras.saving.register_keras_serializable(package="keras_brnpa")
class Distiller(keras.Model):
    """Train a student model on a teacher's softened predictions.

    The loss of a batch ``(x, y)`` is

    ```
    alpha * T**2 * KL(softmax(teacher(x) / T) || softmax(student(x) / T))
        + (1 - alpha) * L(y, student(x))
    ```

    where ``L`` is the loss given to ``compile`` (for logits,
    ``SparseCategoricalCrossentropy(from_logits=True)``), ``T`` is the
    ``temperature`` and the KL divergence is summed over classes and
    averaged over the batch (``sample_weight`` applies to both terms).
    ``alpha`` weights the distillation term, as in the BR-NPA authors'
    code; the ``T**2`` factor keeps the gradient scale of the soft term
    independent of ``T`` (Hinton et al., 2015). Regularisation losses of
    the student are added unweighted.

    Calling the distiller (``predict``, ``evaluate``, ``__call__``) runs the
    student. The teacher runs with ``training=False``, its outputs are
    constants for the gradient, and the distiller sets
    ``teacher.trainable = False``: the teacher's weights never change.
    ``fit`` logs ``student_loss`` (``L`` alone) and ``distillation_loss``
    (``T**2 * KL``, before the ``alpha`` weighting) beside ``loss`` and the
    compiled metrics, which are computed on the student's outputs. With
    ``alpha=1`` no compiled loss is needed and ``y`` may be omitted
    (distillation on unlabelled images).

    The loss is implemented once, in ``compute_loss``, so ``fit`` works on
    TensorFlow and JAX (``jit_compile=True`` included) and PyTorch.

    Defaults: the paper's code searched ``T`` in {1, 6, 11, 16, 21} and
    ``alpha`` in {0.1, ..., 1.0} per dataset and published no single
    value (see ``keras_brnpa.distillation.PAPER_DEFAULTS``). The defaults
    here, ``temperature=4.0`` and ``alpha=0.5``, are the usual starting
    point of knowledge distillation: ``T=4`` softens the teacher enough to
    expose the ranking of the wrong classes without flattening it, and
    ``alpha=0.5`` gives labels and teacher equal weight. Search both on
    validation data for a new dataset.

    Args:
        teacher: a trained ``keras.Model`` with one output of shape
            ``(batch, num_classes)``.
        student: a ``keras.Model`` with the same inputs and number of
            classes (for BR-NPA, the high-resolution twin of the teacher
            from ``keras_brnpa.distillation.build_high_resolution_student``).
        temperature: float > 0, the softmax temperature ``T``.
        alpha: float in ``[0, 1]``, weight of the distillation term;
            ``alpha=0`` is ordinary training of the student.
        from_logits: ``True`` if teacher and student output logits,
            ``False`` if they output probabilities (then the tempered
            distribution is ``softmax(log(p) / T)``). The compiled loss must
            match (e.g. ``SparseCategoricalCrossentropy(from_logits=...)``).
        **kwargs: passed to ``keras.Model`` (e.g. ``name``).

    Call arguments:
        inputs: the student's inputs.
        training: whether the student runs in training mode.

    Returns:
        The student's outputs.

    Example:

    >>> import keras, numpy as np, keras_brnpa
    >>> def classifier(seed):
    ...     keras.utils.set_random_seed(seed)
    ...     return keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    >>> teacher, student = classifier(0), classifier(1)
    >>> distiller = keras_brnpa.Distiller(teacher, student, temperature=4.0, alpha=0.5)
    >>> distiller.compile(
    ...     optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
    ...     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...     metrics=["accuracy"])
    >>> x, y = np.random.rand(16, 8).astype("float32"), np.arange(16) % 3
    >>> history = distiller.fit(x, y, epochs=1, batch_size=8, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'distillation_loss', 'loss', 'student_loss']
    >>> distiller.predict(x, verbose=0).shape  # the student's logits
    (16, 3)

    Save the trained student alone (a plain Keras model) with one line:
    ``distiller.student.save("student.keras")``.

    Reference:
        Gomez, Ling, Fréour, Mouchère. "BR-NPA: A non-parametric
        high-resolution attention model to improve the interpretability of
        attention." Pattern Recognition, 2022. Hinton, Vinyals, Dean.
        "Distilling the knowledge in a neural network." 2015.
    """

    def __init__(
        self,
        teacher,
        student,
        temperature=DEFAULT_TEMPERATURE,
        alpha=DEFAULT_ALPHA,
        from_logits=True,
        **kwargs,
    ):
        kwargs.setdefault("name", "distiller")
        super().__init__(**kwargs)
        for argument, model in (("teacher", teacher), ("student", student)):
            if not isinstance(model, keras.Model):
                raise invalid(argument, model, "a keras.Model")
        if teacher is student:
            raise invalid(
                "student",
                f"<{type(student).__name__} {student.name!r}>",
                "a model other than the teacher (the teacher is frozen)",
            )
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, numbers.Real)
            or not temperature > 0
        ):
            raise invalid("temperature", temperature, "a float > 0")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
            raise invalid("alpha", alpha, "a float in [0, 1]")
        from_logits = check_bool("from_logits", from_logits)
        teacher_classes = _output_classes(teacher, "teacher")
        student_classes = _output_classes(student, "student")
        self._check_classes(teacher_classes, student_classes)

        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.from_logits = from_logits
        teacher.trainable = False
        # The setter above does not reach every variable of some nested
        # models (a deserialized keras-cv backbone on TensorFlow): freeze
        # each variable too, so that no teacher weight is ever trained.
        for variable in teacher.variables:
            variable.trainable = False
        self.teacher = teacher
        self.student = student
        self._distillation_loss_fn = _SoftTargetKL(self.temperature, from_logits)
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        if teacher.built and student.built:
            self.built = True

    @staticmethod
    def _check_classes(teacher_classes, student_classes):
        if (
            teacher_classes is not None
            and student_classes is not None
            and teacher_classes != student_classes
        ):
            raise ValueError(
                "Invalid value for argument teacher. Expected a teacher with "
                f"as many classes as the student ({student_classes}). "
                f"Received: teacher with {teacher_classes} classes"
            )

    def build(self, input_shape):
        for model in (self.teacher, self.student):
            if not model.built:
                model.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return self.student.compute_output_shape(input_shape)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The distillation loss of a batch (see the class docstring).

        Also updates the ``student_loss`` and ``distillation_loss``
        metrics.

        Args:
            x: the inputs.
            y: the targets of the compiled loss (may be ``None`` when
                ``alpha == 1``).
            y_pred: the student's outputs on ``x`` (computed if ``None``).
            sample_weight: optional per-sample weights.
            training: whether the student ran in training mode.

        Returns:
            The scalar total loss.
        """
        if y_pred is None:
            y_pred = self(x, training=training)
        # Keras keeps the loss given to compile() (a CompileLoss, which
        # handles strings, dicts and lists of losses) in `_compile_loss`.
        compile_loss = getattr(self, "_compile_loss", None)
        if self.alpha < 1 and (compile_loss is None or y is None):
            raise ValueError(
                "The Distiller needs a loss in compile() and targets y for its "
                f"student term, since alpha={self.alpha} < 1. Pass loss=... to "
                "compile() and labels to fit(), or use alpha=1.0 for pure "
                "distillation."
            )
        # Regularisation losses of the student (before calling the teacher,
        # so that nothing the teacher adds is counted).
        extra_losses = [ops.sum(ops.cast(loss, "float32")) for loss in self.losses]

        teacher_pred = ops.stop_gradient(self.teacher(x, training=False))
        if len(teacher_pred.shape) and len(y_pred.shape):
            self._check_classes(teacher_pred.shape[-1], y_pred.shape[-1])
        distillation_loss = self._distillation_loss_fn(teacher_pred, y_pred, sample_weight)
        if compile_loss is not None and y is not None:
            student_loss = ops.cast(compile_loss(y, y_pred, sample_weight), "float32")
        else:
            student_loss = ops.zeros((), dtype="float32")

        total = self.alpha * distillation_loss + (1.0 - self.alpha) * student_loss
        for loss in extra_losses:
            total = total + loss

        batch_size = ops.shape(next(t for t in keras.tree.flatten(x) if t is not None))[0]
        self.student_loss_tracker.update_state(student_loss, sample_weight=batch_size)
        self.distillation_loss_tracker.update_state(distillation_loss, sample_weight=batch_size)
        return total

    @property
    def metrics(self):
        """The loss, the compiled metrics, ``student_loss``, ``distillation_loss``."""
        metrics = list(super().metrics)
        for tracker in (self.student_loss_tracker, self.distillation_loss_tracker):
            if not any(metric is tracker for metric in metrics):
                metrics.append(tracker)
        return metrics

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "teacher": keras.saving.serialize_keras_object(self.teacher),
                "student": keras.saving.serialize_keras_object(self.student),
                "temperature": self.temperature,
                "alpha": self.alpha,
                "from_logits": self.from_logits,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        teacher = keras.saving.deserialize_keras_object(
            config.pop("teacher"), custom_objects=custom_objects
        )
        student = keras.saving.deserialize_keras_object(
            config.pop("student"), custom_objects=custom_objects
        )
        return cls(teacher=teacher, student=student, **config)
