"""Data-parallel training on 2 virtual CPU devices matches one device.

The device count must be fixed before the backend starts (JAX reads
``XLA_FLAGS`` at import, TensorFlow's logical devices are set before its
runtime initialises), so each check runs in a fresh subprocess with the
current ``KERAS_BACKEND``.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_brnpa import distribute

BACKEND = keras.config.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# float32 losses of the same global batch, summed in another order.
LOSS_RTOL = 1e-4

needs_engine = pytest.mark.skipif(
    BACKEND not in distribute.SUPPORTED_BACKENDS,
    reason=f"Keras has no multi-device engine on the {BACKEND} backend "
    "(distribution_scope raises NotImplementedError there; tested below)",
)

CHECK = textwrap.dedent(
    """
    import contextlib, json, os, sys
    backend = os.environ["KERAS_BACKEND"]
    if backend == "jax":
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + " --xla_force_host_platform_device_count=2")
    else:
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    import keras
    import keras_brnpa
    from keras_brnpa import distribute

    rng = np.random.default_rng(0)
    x = rng.random((8, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 3, 8)

    def train(scope, weights=None):
        with scope as replicas:
            inputs = keras.Input((32, 32, 3))
            h = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)
            h = keras.layers.BatchNormalization()(h)
            h = keras.layers.Activation("relu")(h)
            h = keras.layers.Conv2D(
                16, 3, strides=2, padding="same", activation="relu")(h)
            model = keras_brnpa.models.build_classifier(
                3, backbone=keras.Model(inputs, h), head="brnpa", n_parts=3)
            synced = distribute.synchronize_batch_norm(model)
            if weights is not None:
                model.set_weights(weights)
            initial = model.get_weights()
            model.compile(
                optimizer=keras.optimizers.SGD(0.05),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            history = model.fit(
                x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
        return history.history["loss"], replicas, initial, synced

    one, _, weights, _ = train(contextlib.nullcontext())
    two, replicas, _, synced = train(distribute.distribution_scope(2), weights)
    print("RESULT " + json.dumps({
        "one": one, "two": two, "devices": list(replicas.devices),
        "num_replicas": replicas.num_replicas,
        "engine": type(replicas.engine).__name__, "synced": synced}))
    """
)


@needs_engine
def test_two_devices_follow_the_one_device_loss_trajectory():
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["num_replicas"] == 2
    assert result["devices"] == ["cpu:0", "cpu:1"]
    expected_engine = "DataParallel" if BACKEND == "jax" else "MirroredStrategy"
    assert result["engine"] == expected_engine
    # TensorFlow needs the synchronised batch norm for global statistics;
    # on JAX the statistics are already global and nothing is changed.
    assert result["synced"] == (1 if BACKEND == "tensorflow" else 0)
    one, two = np.array(result["one"]), np.array(result["two"])
    assert one.shape == (3,) and np.all(np.isfinite(one))
    # The model really trained (the trajectory is not flat)...
    assert abs(one[-1] - one[0]) > 1e-3
    # ... and the 2-device run followed it.
    np.testing.assert_allclose(two, one, rtol=LOSS_RTOL)


@needs_engine
def test_devices_are_validated():
    available = distribute.list_devices()
    assert available and all(":" in d for d in available)
    with pytest.raises(ValueError, match="argument devices"):
        distribute.data_parallel(0)
    with pytest.raises(ValueError, match="argument devices"):
        distribute.data_parallel(len(available) + 1)
    with pytest.raises(ValueError, match="argument devices"):
        distribute.data_parallel(["tpu:99"])
    with pytest.raises(ValueError, match="argument devices"):
        distribute.data_parallel("cpu:0")
    with pytest.raises(ValueError, match="argument device_type"):
        distribute.list_devices("npu")
    with distribute.distribution_scope([available[0]]) as replicas:
        assert replicas.devices == (available[0],)
        assert replicas.num_replicas == 1
        assert replicas.backend == BACKEND


@pytest.mark.skipif(BACKEND != "torch", reason="the torch refusal is tested on torch")
def test_torch_says_clearly_that_it_is_not_supported():
    with pytest.raises(NotImplementedError, match="torchrun"):
        with distribute.distribution_scope():
            pass
    with pytest.raises(NotImplementedError, match="single device"):
        distribute.list_devices()


def test_synchronize_batch_norm_sets_every_nested_layer_on_tensorflow():
    inputs = keras.Input((8, 8, 3))
    inner = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.BatchNormalization(), keras.layers.Conv2D(4, 1)]
    )
    outputs = keras.layers.BatchNormalization()(inner(inputs))
    model = keras.Model(inputs, outputs)
    layers = [l for l in inner.layers + model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(layers) == 2
    changed = distribute.synchronize_batch_norm(model)
    if BACKEND == "tensorflow":
        assert changed == 2 and all(l.synchronized for l in layers)
        # Outside a strategy a synchronised layer gives the ordinary output.
        x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(layers[0](x, training=True)),
            (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + 1e-3),
            rtol=1e-4,
            atol=1e-4,
        )
    else:
        assert changed == 0 and not any(l.synchronized for l in layers)
    assert distribute.synchronize_batch_norm(model) == 0  # idempotent
    with pytest.raises(ValueError, match="argument model"):
        distribute.synchronize_batch_norm("not a model")
