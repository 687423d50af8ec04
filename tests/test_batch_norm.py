"""Tests of keras_brnpa.models.set_batch_norm_momentum."""

import keras
import pytest

import keras_brnpa


def _norms(model):
    return [layer for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)]


def test_every_batch_norm_layer_nested_ones_included():
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.BatchNormalization()], name="inner")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization()(inner(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    assert {layer.momentum for layer in _norms(model)} == {0.99}
    assert keras_brnpa.models.set_batch_norm_momentum(model, 0.5) == 2
    assert [layer.momentum for layer in _norms(model)] == [0.5, 0.5]
    # Keras's own batch norm uses the new momentum: one training step moves the
    # moving mean by (1 - momentum) of the batch mean.
    import numpy as np

    layer = keras.layers.BatchNormalization(center=False, scale=False)
    layer.build((None, 1))
    keras_brnpa.models.set_batch_norm_momentum(layer, 0.5)
    layer(np.full((4, 1), 2.0, "float32"), training=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), [1.0])


@pytest.mark.parametrize("momentum", [1.0, -0.1, True, "0.9"])
def test_bad_momentum_is_refused(momentum):
    model = keras.Sequential([keras.Input((2,)), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match="momentum"):
        keras_brnpa.models.set_batch_norm_momentum(model, momentum)


def test_not_a_model_is_refused():
    with pytest.raises(ValueError, match="model"):
        keras_brnpa.models.set_batch_norm_momentum("model.keras")
