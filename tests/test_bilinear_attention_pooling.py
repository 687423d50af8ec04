import keras
import numpy as np
import pytest
from helpers import run_layer_test
from helpers import to_numpy

from keras_brnpa import BilinearAttentionPooling


def test_layer_lifecycle(tmp_path):
    out = run_layer_test(
        BilinearAttentionPooling, {"n_parts": 2, "hidden_channels": 4}, (6, 6, 3), tmp_path
    )
    assert out.shape == (4, 6)


def test_matches_numpy_pooling():
    rng = np.random.default_rng(0)
    x = rng.random((2, 5, 4, 3)).astype("float32")
    layer = BilinearAttentionPooling(n_parts=2, hidden_channels=4)
    vectors, maps = layer(x, return_attention_maps=True)
    maps = to_numpy(maps)
    assert maps.shape == (2, 5, 4, 2) and np.all(maps >= 0)
    # Independent pooling: mean over space of map_k * features.
    expected = np.einsum("bhwp,bhwc->bpc", maps, x).reshape(2, -1) / 20.0
    np.testing.assert_allclose(to_numpy(vectors), expected, rtol=1e-5, atol=1e-6)
    # The maps come from conv -> BN(inference) -> ReLU -> 1x1 conv -> ReLU.
    hidden = to_numpy(layer.conv(x))
    bn = layer.norm
    hidden = (hidden - to_numpy(bn.moving_mean)) / np.sqrt(
        to_numpy(bn.moving_variance) + bn.epsilon
    ) * to_numpy(bn.gamma) + to_numpy(bn.beta)
    hidden = np.maximum(hidden, 0)
    logits = hidden @ to_numpy(layer.project.kernel)[0, 0] + to_numpy(layer.project.bias)
    np.testing.assert_allclose(maps, np.maximum(logits, 0), rtol=1e-4, atol=1e-5)


def test_channels_first():
    rng = np.random.default_rng(1)
    x = rng.random((2, 3, 5, 5)).astype("float32")
    layer = BilinearAttentionPooling(n_parts=3, data_format="channels_first")
    vectors, maps = layer(x, return_attention_maps=True)
    assert tuple(vectors.shape) == (2, 9)
    assert tuple(maps.shape) == (2, 3, 5, 5)
    expected = np.einsum("bphw,bchw->bpc", to_numpy(maps), x).reshape(2, -1) / 25.0
    np.testing.assert_allclose(to_numpy(vectors), expected, rtol=1e-5, atol=1e-6)


def test_symbolic_shapes_unknown_size():
    vectors, maps = BilinearAttentionPooling(n_parts=3)(
        keras.Input((None, None, 6)), return_attention_maps=True
    )
    assert tuple(vectors.shape) == (None, 18)
    assert tuple(maps.shape) == (None, None, None, 3)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"n_parts": 0}, "n_parts"), ({"hidden_channels": -1}, "hidden_channels"),
     ({"data_format": "x"}, "data_format"), ({"return_attention_maps": 1}, "return_attention_maps")],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"argument {name}.*Received: {name}="):
        BilinearAttentionPooling(**kwargs)


def test_invalid_rank():
    with pytest.raises(ValueError, match="4-D feature map"):
        BilinearAttentionPooling()(keras.Input((4, 3)))
