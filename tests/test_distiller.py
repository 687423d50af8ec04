"""Tests of keras_brnpa.Distiller and the high-resolution distillation recipe."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import to_numpy

import keras_brnpa
from keras_brnpa import Distiller

BACKEND = keras.config.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "distill_high_resolution.py")
NUM_CLASSES = 3
SHAPE = (6, 6, 2)


def small_classifier(seed, num_classes=NUM_CLASSES, probabilities=False, batch_norm=True):
    """A few-layer conv classifier; BatchNorm so that moving statistics exist."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input(SHAPE), keras.layers.Conv2D(4, 3, activation="relu")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers += [
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes, activation="softmax" if probabilities else None),
    ]
    return keras.Sequential(layers)


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + SHAPE).astype("float32")
    y = np.arange(n) % NUM_CLASSES
    return x, y


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def numpy_loss(teacher_out, student_out, y, temperature, alpha, from_logits, weights=None):
    """The distillation loss written out in NumPy (float64)."""
    t, s = teacher_out.astype("float64"), student_out.astype("float64")
    if not from_logits:
        t, s = np.log(np.clip(t, 1e-7, 1)), np.log(np.clip(s, 1e-7, 1))
    log_pt, log_ps = log_softmax(t / temperature), log_softmax(s / temperature)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(-1) * temperature**2
    log_p = log_softmax(s) if from_logits else np.log(student_out.astype("float64"))
    ce = -log_p[np.arange(len(y)), y]
    w = np.ones(len(y)) if weights is None else weights
    kl, ce = (kl * w).mean(), (ce * w).mean()  # Keras' "sum_over_batch_size"
    return alpha * kl + (1 - alpha) * ce, ce, kl


@pytest.mark.parametrize(
    "from_logits, temperature, alpha, weighted",
    [(True, 4.0, 0.5, False), (True, 2.5, 0.3, True), (False, 3.0, 0.7, False)],
)
def test_loss_matches_numpy(from_logits, temperature, alpha, weighted):
    teacher = small_classifier(0, probabilities=not from_logits)
    student = small_classifier(1, probabilities=not from_logits)
    distiller = Distiller(
        teacher, student, temperature=temperature, alpha=alpha, from_logits=from_logits
    )
    distiller.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    )
    x, y = batch()
    weights = np.linspace(0.2, 1.5, len(y)).astype("float32") if weighted else None
    student_out = distiller(x, training=False)
    loss = distiller.compute_loss(x, y, student_out, sample_weight=weights, training=False)
    expected, ce, kl = numpy_loss(
        to_numpy(teacher(x, training=False)),
        to_numpy(student_out),
        y,
        temperature,
        alpha,
        from_logits,
        weights,
    )
    assert kl > 1e-3  # teacher and student differ: the test can fail
    np.testing.assert_allclose(float(to_numpy(loss)), expected, rtol=1e-5, atol=1e-6)
    results = {m.name: float(to_numpy(m.result())) for m in distiller.metrics if m.name != "loss"}
    np.testing.assert_allclose(results["student_loss"], ce, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results["distillation_loss"], kl, rtol=1e-5, atol=1e-6)


def test_fit_trains_student_only_and_reports_metrics():
    teacher, student = small_classifier(0), small_classifier(1)
    distiller = Distiller(teacher, student)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    assert not teacher.trainable
    assert len(distiller.trainable_variables) == len(student.trainable_variables) > 0
    teacher_before = [w.copy() for w in teacher.get_weights()]  # BN statistics included
    student_before = [w.copy() for w in student.get_weights()]
    seen = []
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs))
    x, y = batch()
    history = distiller.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[callback])

    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    changed = [not np.allclose(b, a) for b, a in zip(student_before, student.get_weights())]
    assert all(changed), "every student weight (and BN statistic) should move"
    expected = {"loss", "accuracy", "student_loss", "distillation_loss"}
    assert set(history.history) == expected and set(seen[-1]) == expected
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == expected
    # loss = alpha * distillation + (1 - alpha) * student, averaged alike.
    np.testing.assert_allclose(
        logs["loss"], 0.5 * logs["distillation_loss"] + 0.5 * logs["student_loss"], rtol=1e-5
    )
    np.testing.assert_allclose(
        distiller.predict(x, verbose=0), to_numpy(student(x, training=False)), rtol=1e-5, atol=1e-6
    )


def test_alpha_zero_equals_plain_training():
    x, y = batch(12, seed=3)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    plain = small_classifier(1)
    plain.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=loss)
    student = small_classifier(1)
    distiller = Distiller(small_classifier(0), student, alpha=0.0)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=loss)
    initial = [w.copy() for w in student.get_weights()]
    for a, b in zip(initial, plain.get_weights()):
        np.testing.assert_array_equal(a, b)

    h_plain = plain.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    h_dist = distiller.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    for a, b, init in zip(plain.get_weights(), student.get_weights(), initial):
        assert not np.allclose(a, init)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(h_plain.history["loss"], h_dist.history["loss"], rtol=1e-5)
    np.testing.assert_allclose(h_dist.history["loss"], h_dist.history["student_loss"], rtol=1e-6)


def test_alpha_one_distills_without_labels():
    teacher, student = small_classifier(0), small_classifier(1)
    distiller = Distiller(teacher, student, alpha=1.0)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    x, _ = batch()
    before = distiller.evaluate(x, verbose=0, return_dict=True)["distillation_loss"]
    distiller.fit(x, epochs=3, batch_size=8, verbose=0)
    after = distiller.evaluate(x, verbose=0, return_dict=True)["distillation_loss"]
    assert after < before  # the student moves towards the teacher

    needs_labels = Distiller(small_classifier(0), small_classifier(1), alpha=0.5)
    needs_labels.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="alpha=0.5 < 1"):
        needs_labels.compute_loss(x, None, needs_labels(x))


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": "4"}, "temperature"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"from_logits": "yes"}, "from_logits"),
    ],
)
def test_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"Invalid value for argument {argument}.*Received"):
        Distiller(small_classifier(0), small_classifier(1), **kwargs)


def test_invalid_models():
    teacher = small_classifier(0)
    with pytest.raises(ValueError, match="argument teacher.*Received: teacher with 4 classes"):
        Distiller(small_classifier(0, num_classes=4), small_classifier(1))
    with pytest.raises(ValueError, match="argument teacher"):
        Distiller("teacher", small_classifier(1))
    with pytest.raises(ValueError, match="argument student"):
        Distiller(teacher, teacher)


def test_save_load_round_trip(tmp_path):
    teacher, student = small_classifier(0), small_classifier(1)
    distiller = Distiller(teacher, student, temperature=3.0, alpha=0.25)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = batch()
    distiller.fit(x, y, epochs=1, batch_size=8, verbose=0)
    config = distiller.get_config()
    assert (config["temperature"], config["alpha"], config["from_logits"]) == (3.0, 0.25, True)

    path = str(tmp_path / "distiller.keras")
    distiller.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Distiller)
    assert (loaded.temperature, loaded.alpha) == (3.0, 0.25)
    assert len(loaded.trainable_variables) == len(loaded.student.trainable_variables)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(loaded.compute_loss(x, y, loaded(x), training=False)),
        to_numpy(distiller.compute_loss(x, y, distiller(x), training=False)),
        rtol=1e-5,
    )
    # The documented one-liner: the trained student alone, a plain model.
    student_path = str(tmp_path / "student.keras")
    distiller.student.save(student_path)
    alone = keras.models.load_model(student_path)
    assert not isinstance(alone, Distiller)
    np.testing.assert_allclose(
        alone.predict(x, verbose=0), distiller.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )


@pytest.mark.skipif(
    BACKEND == "torch", reason="Keras has no jit_compile on the torch backend (eager only)"
)
def test_jit_compile_fit():
    x, y = batch()
    teacher, student = small_classifier(0), small_classifier(1)
    distiller = Distiller(teacher, student)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    assert distiller.jit_compile
    # The loss of the first (only) step, computed eagerly on the initial weights.
    expected = to_numpy(distiller.compute_loss(x, y, distiller(x, training=True)))
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [to_numpy(v).copy() for v in student.trainable_variables]
    history = distiller.fit(x, y, epochs=1, batch_size=len(x), verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)
    for before, after in zip(teacher_before, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    for before, variable in zip(student_before, student.trainable_variables):
        assert not np.allclose(before, to_numpy(variable))


def test_example_smoke_run(tmp_path):
    """The example runs to the end; the student's maps are 4x finer per side."""
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    # XLA (JAX) spends most of a one-step run compiling: compile cheaply.
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "")
        + " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    ).strip()
    result = subprocess.run(
        [sys.executable, EXAMPLE, "--smoke", "--output", str(tmp_path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(tmp_path / "summary.json") as handle:
        summary = json.load(handle)
    assert summary["backend"] == BACKEND
    teacher_shape, student_shape = summary["teacher_map_shape"], summary["student_map_shape"]
    assert [4 * s for s in teacher_shape] == student_shape
    for key in ("teacher_accuracy", "student_accuracy"):
        assert 0.0 <= summary[key] <= 1.0
    assert f"{student_shape[0]}x{student_shape[1]}" in result.stdout
    with open(tmp_path / "attention_maps.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    student = keras.models.load_model(str(tmp_path / "student.keras"))
    assert keras_brnpa.models.feature_shape(student)[:2] == tuple(student_shape)
