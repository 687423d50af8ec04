"""Tests of BilinearAttentionPooling, the B-CNN baseline (the authors' block)."""

import keras
import numpy as np
import pytest
from helpers import run_layer_test
from helpers import to_numpy

import keras_brnpa
from keras_brnpa import BilinearAttentionPooling


def test_layer_lifecycle(tmp_path):
    out = run_layer_test(
        BilinearAttentionPooling, {"n_parts": 2, "hidden_channels": 4}, (6, 6, 3), tmp_path
    )
    assert out.shape == (4, 6)


def test_layer_lifecycle_authors_block(tmp_path):
    out = run_layer_test(
        BilinearAttentionPooling, {"n_parts": 3, "map_normalization": False}, (5, 5, 4), tmp_path
    )
    assert out.shape == (4, 12)


def test_a_model_saved_before_normalize_keeps_its_outputs(tmp_path):
    """A .keras file of 0.2 (no "normalize" in the layer's config) loads
    with normalize=False and gives the outputs it gave when it was saved."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 4))
    outputs = BilinearAttentionPooling(n_parts=2, normalize=False)(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x))
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "BilinearAttentionPooling":
            del layer["config"]["normalize"]  # as written by keras_brnpa 0.2
    old = keras.Model.from_config(config)
    old.set_weights(model.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(old(x)), expected, rtol=1e-6)
    normalized = BilinearAttentionPooling(n_parts=2)
    assert normalized.normalize is True


def test_a_model_saved_before_scale_keeps_its_unit_vectors():
    """A .keras file saved with normalize=True before the scale option (no
    "scale" in its config) loads with scale=1.0 and gives the same unit
    vectors as when it was saved; scale="auto" multiplies them by
    sqrt(n_parts * C)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 4))
    outputs = BilinearAttentionPooling(n_parts=2, scale=1.0)(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).random((2, 6, 6, 4)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(np.linalg.norm(expected, axis=-1), 1.0, rtol=1e-5)
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "BilinearAttentionPooling":
            assert layer["config"]["normalize"] is True
            del layer["config"]["scale"]  # as written before the option
    old = keras.Model.from_config(config)
    old.set_weights(model.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(old(x)), expected, rtol=1e-6)
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "BilinearAttentionPooling":
            layer["config"]["scale"] = "auto"
    new = keras.Model.from_config(config)
    new.set_weights(model.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)), expected * np.sqrt(8),
                               rtol=1e-5)


def test_config_is_complete():
    layer = BilinearAttentionPooling(
        n_parts=2, hidden_channels=5, map_initializer="zeros", kernel_initializer="ones",
        map_normalization=False, return_attention_maps=True, normalize=False,
        epsilon=1e-6, scale=2.5, name="bcnn",
    )
    config = layer.get_config()
    clone = BilinearAttentionPooling.from_config(config)
    assert clone.get_config() == config
    assert clone.map_normalization is False and clone.hidden_channels == 5
    assert clone.normalize is False and clone.epsilon == 1e-6 and clone.scale == 2.5
    assert BilinearAttentionPooling.from_config(
        BilinearAttentionPooling(scale="auto").get_config()).scale == "auto"
    assert isinstance(clone.map_initializer, keras.initializers.Zeros)
    assert isinstance(clone.kernel_initializer, keras.initializers.Ones)


# ------------------------------------------------------ NumPy reference
def conv_same(x, kernel):
    """'same' convolution, stride 1, no bias: x (B, H, W, C), kernel (k, k, C, O)."""
    k = kernel.shape[0]
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    h, w = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for i in range(k):
        for j in range(k):
            out += padded[:, i : i + h, j : j + w, :] @ kernel[i, j]
    return out


def batch_norm(x, bn):
    """Inference-mode batch normalisation with the layer's statistics."""
    return (x - to_numpy(bn.moving_mean)) / np.sqrt(
        to_numpy(bn.moving_variance) + bn.epsilon
    ) * to_numpy(bn.gamma) + to_numpy(bn.beta)


def randomise_statistics(layer, rng):
    """Non-trivial BN parameters, so that the reference checks them."""
    for bn in [layer.norm1, layer.norm2] + ([layer.map_norm] if layer.map_normalization else []):
        n = bn.gamma.shape[0]
        bn.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
        bn.beta.assign(rng.uniform(-0.2, 0.2, n).astype("float32"))
        bn.moving_mean.assign(rng.uniform(-0.1, 0.1, n).astype("float32"))
        bn.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))


def reference_scale(layer, dim):
    """The factor of the normalised vectors: sqrt(dim) for "auto"."""
    return np.sqrt(dim) if layer.scale == "auto" else layer.scale


def reference(layer, x):
    """The authors' B-CNN block, written with NumPy from DESIGN.md 1.3."""
    x = x.astype("float64")
    h = np.maximum(batch_norm(conv_same(x, to_numpy(layer.conv1.kernel)), layer.norm1), 0)
    h = batch_norm(conv_same(h, to_numpy(layer.conv2.kernel)), layer.norm2)
    h = np.maximum(h + x, 0)  # the residual of BasicBlock(C, C)
    z = h @ to_numpy(layer.project.kernel)[0, 0]  # 1x1 conv, no bias
    if layer.map_normalization:
        z = batch_norm(z, layer.map_norm)
    maps = np.maximum(z, 0)[..., : layer.n_parts]  # P + 1 maps, the first P used
    b, hh, ww, c = x.shape
    vectors = np.stack(
        [(maps[..., k : k + 1] * x).mean(axis=(1, 2)) for k in range(layer.n_parts)], axis=1
    ).reshape(b, layer.n_parts * c)
    if layer.normalize:
        vectors = signed_sqrt_l2(vectors, layer.epsilon) * reference_scale(layer, vectors.shape[-1])
    return vectors, maps


def signed_sqrt_l2(v, epsilon):
    """Lin et al. 2015: y = sign(v) sqrt(|v|), then y / ||y||_2 (per row,
    the norm clamped at 1e-12 as torch's F.normalize in WS-DAN)."""
    y = np.sign(v) * np.sqrt(np.abs(v) + epsilon)
    return y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-12)


@pytest.mark.parametrize(
    "map_normalization, normalize, scale", [(True, True, 1.0), (True, True, "auto"),
                                            (False, False, "auto"), (True, True, 0.5)])
def test_matches_the_numpy_block(map_normalization, normalize, scale):
    rng = np.random.default_rng(0)
    x = rng.random((2, 5, 4, 3)).astype("float32")
    layer = BilinearAttentionPooling(
        n_parts=2, hidden_channels=4, map_normalization=map_normalization, normalize=normalize,
        scale=scale,
    )
    layer.build(x.shape)
    # Half the 1x1 weights positive so that the ReLU maps are not all zero.
    layer.project.kernel.assign(np.abs(to_numpy(layer.project.kernel)) * [1, -1, 1])
    randomise_statistics(layer, rng)
    vectors, maps = layer(x, return_attention_maps=True, training=False)
    ref_vectors, ref_maps = reference(layer, x)
    assert to_numpy(maps).shape == (2, 5, 4, 2)
    assert np.any(ref_maps > 0)
    np.testing.assert_allclose(to_numpy(maps), ref_maps, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_numpy(vectors), ref_vectors, rtol=1e-4, atol=1e-5)


def test_normalization_against_numpy():
    # Signed values (features need not leave a ReLU), zeros, and a row of
    # zeros (all maps dead): the NumPy transcription, unit norms, no NaN.
    layer = BilinearAttentionPooling(n_parts=2)
    v = np.array([[0.25, -4.0, 0.0, 1e-3], [0.0, 0.0, 0.0, 0.0], [9.0, 16.0, -1.0, 2.0]],
                 "float32")
    out = to_numpy(layer.normalize_vectors(keras.ops.convert_to_tensor(v)))
    np.testing.assert_allclose(out, signed_sqrt_l2(v.astype("float64"), 1e-12),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out[[0, 2]], axis=-1), 1.0, rtol=1e-5)
    assert np.all(out[1] == 0)  # all zero (every map dead): 0, not NaN
    # The square root's effect: 9 and 16 become 3 and 4 before the norm.
    np.testing.assert_allclose(out[2, 1] / out[2, 0], 4 / 3, rtol=1e-5)
    assert BilinearAttentionPooling().scale == 1.0  # unit vectors by default
    assert BilinearAttentionPooling(scale=np.float32(2.5)).scale == 2.5  # NumPy scalars too
    # scale="auto": the same vectors times sqrt(D), D = 4 here, so that
    # the entries' root mean square is 1; zeros stay 0.
    auto = to_numpy(BilinearAttentionPooling(n_parts=2, scale="auto").normalize_vectors(
        keras.ops.convert_to_tensor(v)))
    np.testing.assert_allclose(auto, 2.0 * out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.mean(auto[[0, 2]] ** 2, axis=-1)), 1.0, rtol=1e-5)
    assert np.all(auto[1] == 0)


def test_block_shapes():
    layer = BilinearAttentionPooling(n_parts=3, hidden_channels=5)
    layer.build((None, 6, 6, 8))
    assert tuple(layer.conv1.kernel.shape) == (3, 3, 8, 5)
    assert tuple(layer.conv2.kernel.shape) == (3, 3, 5, 8)  # back to C: residual
    assert tuple(layer.project.kernel.shape) == (1, 1, 8, 4)  # n_parts + 1 maps
    assert layer.project.bias is None and not layer.conv1.use_bias and not layer.conv2.use_bias
    layer = BilinearAttentionPooling(n_parts=2)
    layer.build((None, 4, 4, 6))
    assert tuple(layer.conv1.kernel.shape) == (3, 3, 6, 6)  # BasicBlock(C, C)


def test_the_extra_map_is_dropped():
    rng = np.random.default_rng(3)
    x = rng.random((2, 4, 4, 3)).astype("float32")
    layer = BilinearAttentionPooling(n_parts=2, map_normalization=False, normalize=False)
    layer.build(x.shape)
    kernel = np.zeros((1, 1, 3, 3), "float32")
    kernel[..., 2] = 1.0  # only the (n_parts + 1)-th map is non-zero
    layer.project.kernel.assign(kernel)
    vectors, maps = layer(x, return_attention_maps=True, training=False)
    assert np.all(to_numpy(maps) == 0) and np.all(to_numpy(vectors) == 0)


def test_map_normalization_keeps_negative_maps_alive():
    # A 1x1 kernel that is negative on a non-negative h: the authors' block
    # gives maps that are 0 everywhere (no gradient: dead); with the batch
    # normalisation before the ReLU part of every map stays positive.
    rng = np.random.default_rng(4)
    x = rng.random((4, 5, 5, 3)).astype("float32")
    for map_normalization, alive in [(False, False), (True, True)]:
        layer = BilinearAttentionPooling(n_parts=2, map_normalization=map_normalization)
        layer.build(x.shape)
        layer.project.kernel.assign(-np.abs(to_numpy(layer.project.kernel)) - 0.1)
        _, maps = layer(x, return_attention_maps=True, training=True)
        maps = to_numpy(maps)
        assert np.all(maps.max(axis=(0, 1, 2)) > 0) == alive
        if not alive:
            assert np.all(maps == 0)
        # Gradient of the output w.r.t. the 1x1 kernel: zero when dead.
        grad = _kernel_gradient(layer, x)
        assert (np.abs(grad).max() > 0) == alive


def _kernel_gradient(layer, x):
    backend = keras.config.backend()
    kernel = layer.project.kernel
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            out = tf.reduce_sum(layer(x, training=True))
        return to_numpy(tape.gradient(out, kernel.value))
    if backend == "jax":
        import jax

        variables = [v.value for v in layer.trainable_variables]
        index = [id(v) for v in layer.trainable_variables].index(id(kernel))
        nt = [v.value for v in layer.non_trainable_variables]

        def f(trainable):
            out, _ = layer.stateless_call(trainable, nt, x, training=True)
            return out.sum()

        return np.asarray(jax.grad(f)(variables)[index])
    import torch

    out = layer(x, training=True).sum()
    (grad,) = torch.autograd.grad(out, kernel.value)
    return grad.detach().cpu().numpy()


def test_channels_first_matches_channels_last():
    rng = np.random.default_rng(1)
    x = rng.random((2, 5, 5, 3)).astype("float32")
    last = BilinearAttentionPooling(n_parts=3, data_format="channels_last")
    first = BilinearAttentionPooling(n_parts=3, data_format="channels_first")
    last.build(x.shape)
    first.build((2, 3, 5, 5))
    first.set_weights(last.get_weights())
    v_last, m_last = last(x, return_attention_maps=True, training=False)
    try:
        v_first, m_first = first(
            np.transpose(x, (0, 3, 1, 2)), return_attention_maps=True, training=False
        )
    except Exception as error:  # pragma: no cover - backend without NCHW convs on CPU
        pytest.skip(f"channels_first convolutions unavailable here: {error}")
    assert tuple(m_first.shape) == (2, 3, 5, 5) and tuple(v_first.shape) == (2, 9)
    np.testing.assert_allclose(
        np.transpose(to_numpy(m_first), (0, 2, 3, 1)), to_numpy(m_last), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(to_numpy(v_first), to_numpy(v_last), rtol=1e-4, atol=1e-5)


def test_symbolic_shapes_unknown_size():
    vectors, maps = BilinearAttentionPooling(n_parts=3)(
        keras.Input((None, None, 6)), return_attention_maps=True
    )
    assert tuple(vectors.shape) == (None, 18)
    assert tuple(maps.shape) == (None, None, None, 3)
    layer = BilinearAttentionPooling(n_parts=2, return_attention_maps=True)
    assert layer.compute_output_shape((None, 4, 4, 5)) == ((None, 10), (None, 4, 4, 2))


@pytest.mark.parametrize(
    "kwargs, name",
    [({"n_parts": 0}, "n_parts"), ({"hidden_channels": -1}, "hidden_channels"),
     ({"data_format": "x"}, "data_format"), ({"return_attention_maps": 1}, "return_attention_maps"),
     ({"map_normalization": "yes"}, "map_normalization"),
     ({"normalize": 1}, "normalize"), ({"epsilon": 0.0}, "epsilon"),
     ({"scale": 0.0}, "scale"), ({"scale": "sqrt"}, "scale"), ({"scale": True}, "scale"),
     ({"scale": float("inf")}, "scale"),
     ({"map_initializer": "not_an_initializer"}, "map_initializer"),
     ({"kernel_initializer": 3}, "kernel_initializer")],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"argument {name}.*Received: {name}="):
        BilinearAttentionPooling(**kwargs)


def test_invalid_rank():
    with pytest.raises(ValueError, match="4-D feature map"):
        BilinearAttentionPooling()(keras.Input((4, 3)))


# ------------------------------------------------------ it trains
def test_trains_from_scratch_with_live_maps():
    """Short training on the embedded data: the maps stay alive and the
    classifier beats chance, on training images and on held-out ones."""
    classes = 3
    x, y, _ = keras_brnpa.datasets.synthetic_parts(320, image_size=64, num_classes=classes, seed=0)
    xt, yt, _ = keras_brnpa.datasets.synthetic_parts(200, image_size=64, num_classes=classes, seed=1)
    keras.utils.set_random_seed(0)
    model = keras_brnpa.models.build_classifier(
        classes, backbone="tiny", head="bcnn", n_parts=3, input_shape=(64, 64, 3)
    )
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9  # statistics that follow a short run
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    # Held-out logits and maps in one inference pass.
    out = keras_brnpa.models.attention_model(model).predict(xt, batch_size=100, verbose=0)
    maps = out["attention_maps"]
    assert maps.shape == (200, 2, 2, 3)
    dead = maps.max(axis=(1, 2)) == 0  # (image, part): zero at every location
    assert not np.all(dead)
    assert np.all(~dead.all(axis=0)), "a part map is zero on every image: dead"
    assert dead.mean() < 0.25, dead.mean()
    chance = 1 / classes
    test_accuracy = np.mean(out["logits"].argmax(axis=-1) == yt)
    train_accuracy = model.evaluate(x[:200], y[:200], verbose=0)[1]
    assert train_accuracy > chance + 0.2, train_accuracy
    # 200 held-out images: the accuracy of a chance classifier has std 0.033.
    assert test_accuracy > chance + 0.04, test_accuracy
