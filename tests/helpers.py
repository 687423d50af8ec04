"""Shared test helper: run a layer through the Keras life cycle."""

import os

import keras
import numpy as np


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def run_layer_test(layer_cls, init_kwargs, input_shape, tmp_path, check_same_outputs=True):
    """Config round-trip, symbolic call, eager call, one fit step, save/load.

    Returns the eager output of the original layer for further checks.
    """
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((4,) + tuple(input_shape)).astype("float32")

    # 1. Config round-trip: every init argument survives.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert key in config, f"get_config() misses {key}"
        assert config[key] == value, (key, config[key], value)
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config

    # 2. Symbolic call: the shape is known and equals compute_output_shape.
    inputs = keras.Input(tuple(input_shape))
    symbolic = layer(inputs)
    expected = layer.compute_output_shape((None,) + tuple(input_shape))
    assert tuple(symbolic.shape) == tuple(expected)

    # 3. Eager call agrees with the symbolic shape.
    eager = to_numpy(layer(x))
    assert eager.shape[1:] == tuple(expected[1:])
    assert np.all(np.isfinite(eager))

    # 4. One fit step in a model: gradients reach the layer's input.
    model = keras.Sequential(
        [
            keras.Input(tuple(input_shape)),
            # softplus: positive features (as after a ReLU) but never a dead
            # unit, so the gradient check cannot fail by an unlucky init.
            keras.layers.Conv2D(input_shape[-1], 1, activation="softplus", name="conv"),
            layer_cls(**init_kwargs),
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = to_numpy(model.get_layer("conv").kernel).copy()
    history = model.fit(x, np.array([0, 1, 2, 0]), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = to_numpy(model.get_layer("conv").kernel)
    assert not np.allclose(before, after), "no gradient reached the conv before the layer"

    # 5. .keras save/load gives identical outputs.
    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    if check_same_outputs:
        np.testing.assert_allclose(
            to_numpy(model.predict(x, verbose=0)),
            to_numpy(loaded.predict(x, verbose=0)),
            rtol=1e-6,
            atol=1e-6,
        )
    return eager
