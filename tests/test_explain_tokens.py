"""CAMs on transformer tokens (issue 21 part 3): (B, N, C) and (B, 1 + N, C)
outputs reshaped to a sqrt(N) x sqrt(N) grid, or by a reshape_transform."""

import keras
import numpy as np
import pytest
from helpers import to_numpy

from keras_brnpa import explain

CAMS = ["gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "scorecam", "eigencam",
        "ablationcam"]


def tiny_vit():
    """Patches (4x4 grid of 8-dim tokens), a class token, a token-wise
    block, mean over the tokens, a linear head: d logit_c / d token is
    W[:, c] / 17 for every token."""
    keras.utils.set_random_seed(11)
    inputs = keras.Input((16, 16, 3))
    patches = keras.layers.Conv2D(8, 4, strides=4, name="patchify")(inputs)
    tokens = keras.layers.Reshape((16, 8), name="tokens")(patches)
    cls = keras.layers.Reshape((1, 8))(keras.layers.GlobalAveragePooling1D()(tokens))
    x = keras.layers.Concatenate(axis=1)([cls, tokens])
    x = keras.layers.Dense(8, activation="relu", name="block")(x)
    dense = keras.layers.Dense(3, name="logits")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling1D()(x)))
    return model, keras.Model(inputs, x), to_numpy(dense.kernel).astype("float64")


def _images(n=2):
    return np.random.default_rng(0).random((n, 16, 16, 3)).astype("float32")


def test_grad_cam_on_class_token_layer_matches_numpy():
    model, block, kernel = tiny_vit()
    x = _images()
    classes = np.array([1, 2])
    tokens = to_numpy(block(x)).astype("float64")  # (2, 17, 8)
    grid = tokens[:, 1:].reshape(2, 4, 4, 8)  # the class token dropped
    expected = np.maximum(np.einsum("bhwk,bk->bhw", grid, kernel.T[classes] / 17.0), 0)
    got = explain.grad_cam(model, x, layer_name="block", class_index=classes)
    assert got.shape == (2, 4, 4) and expected.max() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", CAMS)
def test_every_cam_on_tokens_equals_its_reshape_transform(method):
    model, _, _ = tiny_vit()
    x = _images()
    options = {"class_index": [0, 2], "max_channels": 3} if method == "scorecam" else {
        "class_index": [0, 2]}
    default = explain.explain(method, model, x, layer_name="block", **options)
    assert default.shape == (2, 4, 4) and np.all(np.isfinite(default))

    def to_grid(t):  # pytorch-grad-cam's ViT recipe, channels last
        return keras.ops.reshape(t[:, 1:], (-1, 4, 4, t.shape[-1]))

    custom = explain.explain(method, model, x, layer_name="block", reshape_transform=to_grid,
                             **options)
    np.testing.assert_allclose(default, custom, rtol=1e-5, atol=1e-7)
    # Tokens without a class token: (B, 16, C) -> 4 x 4.
    assert explain.explain(method, model, x, layer_name="tokens", **options).shape == (2, 4, 4)


def test_token_layer_errors():
    model, _, _ = tiny_vit()
    x = _images(1)
    inputs = keras.Input((16, 16, 3))
    odd = keras.layers.Reshape((8, 6), name="odd")(inputs[..., :1][:, :12, :4, 0])
    bad = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(odd)))
    with pytest.raises(ValueError, match=r"argument layer_name.*N - 1 a square"):
        explain.grad_cam(bad, x, layer_name="odd")
    with pytest.raises(ValueError, match=r"argument reshape_transform"):
        explain.grad_cam(model, x, layer_name="block", reshape_transform="no")
    with pytest.raises(ValueError, match=r"argument reshape_transform.*returned shape"):
        explain.grad_cam(model, x, layer_name="block", reshape_transform=lambda t: t)


# ---------------------------------------------------------------------------
# BRNPAAttention on tokens: a ViT gets a BR-NPA head.


def test_brnpa_attention_on_tokens_equals_the_numpy_reference():
    from reference import brnpa_numpy

    import keras_brnpa

    rng = np.random.default_rng(5)
    grid = rng.random((2, 4, 4, 6)).astype("float32")
    tokens = grid.reshape(2, 16, 6)
    layer = keras_brnpa.BRNPAAttention(n_parts=3)
    vectors, maps = layer(tokens, return_attention_maps=True)
    ref_vectors, ref_maps, _ = brnpa_numpy(grid, n_parts=3)
    assert tuple(maps.shape) == (2, 4, 4, 3)
    np.testing.assert_allclose(to_numpy(maps), ref_maps, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(vectors), ref_vectors, rtol=1e-4, atol=1e-6)
    # A non-square grid given explicitly; channels_first does not apply to tokens.
    wide = keras_brnpa.BRNPAAttention(n_parts=2, grid=(2, 8), data_format="channels_first")
    _, wide_maps = wide(tokens, return_attention_maps=True)
    _, ref_wide, _ = brnpa_numpy(tokens.reshape(2, 2, 8, 6), n_parts=2)
    np.testing.assert_allclose(to_numpy(wide_maps), ref_wide, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"argument features.*N a square"):
        keras_brnpa.BRNPAAttention()(np.zeros((1, 15, 4), "float32"))
    with pytest.raises(ValueError, match=r"argument grid.*N = 16"):
        keras_brnpa.BRNPAAttention(grid=(3, 5))(tokens)
    with pytest.raises(ValueError, match=r"argument grid"):
        keras_brnpa.BRNPAAttention(grid=(0, 4))


def test_vit_with_a_brnpa_head_round_trips(tmp_path):
    import keras_brnpa

    keras.utils.set_random_seed(2)
    inputs = keras.Input((16, 16, 3))
    patches = keras.layers.Conv2D(8, 4, strides=4)(inputs)
    tokens = keras.layers.Reshape((16, 8))(patches)
    tokens = keras.layers.MultiHeadAttention(2, 4)(tokens, tokens)
    head = keras_brnpa.BRNPAAttention(n_parts=2, name="parts")
    vectors, maps = head(tokens, return_attention_maps=True)
    model = keras.Model(inputs, [keras.layers.Dense(3)(vectors), maps])
    assert model.output_shape[1] == (None, 4, 4, 2)
    x = _images()
    before = [to_numpy(o) for o in model(x)]
    path = str(tmp_path / "vit.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(before, [to_numpy(o) for o in loaded(x)]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert loaded.get_layer("parts").get_config()["grid"] is None
