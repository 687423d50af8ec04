import keras
import numpy as np
import pytest
from helpers import run_layer_test
from helpers import to_numpy
from reference import brnpa_numpy

import keras_brnpa
from keras_brnpa import BRNPAAttention

BACKEND = keras.config.backend()
RTOL, ATOL = 1e-5, 1e-6


def relu_features(shape, seed=0):
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=shape), 0).astype("float32")


@pytest.mark.parametrize("shape", [(2, 5, 7, 6), (3, 4, 4, 16), (1, 9, 9, 3)])
@pytest.mark.parametrize("n_parts", [1, 3])
@pytest.mark.parametrize("refine", [True, False])
def test_matches_numpy_reference(shape, n_parts, refine):
    x = relu_features(shape)
    layer = BRNPAAttention(n_parts=n_parts, refine=refine)
    vectors, maps = layer(x, return_attention_maps=True)
    ref_vectors, ref_maps, _ = brnpa_numpy(x, n_parts, refine=refine)
    np.testing.assert_allclose(to_numpy(vectors), ref_vectors, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(to_numpy(maps), ref_maps, rtol=RTOL, atol=ATOL)


def test_maps_sum_to_one_and_parts_are_ranked():
    x = relu_features((4, 6, 6, 8), seed=1)
    _, maps, norm = BRNPAAttention(n_parts=3).group(x)
    maps, norm = to_numpy(maps), to_numpy(norm)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    # Part 1 starts from the location of largest norm: its map peaks there
    # (cosine similarity of a vector with itself is the maximum, 1).
    flat_norm = norm.reshape(4, -1)
    flat_map = maps[..., 0].reshape(4, -1)
    np.testing.assert_array_equal(flat_map.argmax(1), flat_norm.argmax(1))
    np.testing.assert_allclose(norm, np.linalg.norm(x, axis=-1) + 1e-5, rtol=1e-5)


def test_channels_first_equals_channels_last():
    x = relu_features((2, 5, 6, 4), seed=2)
    v_last, m_last = BRNPAAttention(n_parts=2, data_format="channels_last")(
        x, return_attention_maps=True
    )
    v_first, m_first = BRNPAAttention(n_parts=2, data_format="channels_first")(
        np.transpose(x, (0, 3, 1, 2)), return_attention_maps=True
    )
    assert tuple(m_first.shape) == (2, 2, 5, 6)
    np.testing.assert_allclose(to_numpy(v_first), to_numpy(v_last), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        to_numpy(m_first), np.transpose(to_numpy(m_last), (0, 3, 1, 2)), rtol=RTOL, atol=ATOL
    )


def test_random_selection_matches_reference_and_is_reproducible():
    x = relu_features((3, 5, 5, 7), seed=3)
    layer = BRNPAAttention(n_parts=3, refine=False, selection="random", seed=7)
    vectors, maps = layer(x, return_attention_maps=True)
    vectors = to_numpy(vectors).reshape(3, 3, 7)
    # With refine=False each part vector is a raw feature vector: find where.
    flat = x.reshape(3, 25, 7)
    starts = np.zeros((3, 3), dtype=int)
    for b in range(3):
        for k in range(3):
            dist = np.abs(flat[b] - vectors[b, k]).sum(-1)
            assert dist.min() < 1e-6
            starts[k, b] = dist.argmin()
    _, ref_maps, _ = brnpa_numpy(x, 3, refine=False, start_indices=starts)
    np.testing.assert_allclose(to_numpy(maps), ref_maps, rtol=RTOL, atol=ATOL)
    # Same seed, same draws; refine=True uses the refined vectors.
    again = BRNPAAttention(n_parts=3, refine=False, selection="random", seed=7)(x)
    np.testing.assert_array_equal(to_numpy(again), vectors.reshape(3, -1))
    refined = BRNPAAttention(n_parts=3, selection="random", seed=7)(x)
    ref_refined, _, _ = brnpa_numpy(x, 3, refine=True, start_indices=starts)
    np.testing.assert_allclose(to_numpy(refined), ref_refined, rtol=RTOL, atol=ATOL)


def test_random_selection_differs_from_norm_selection():
    x = relu_features((4, 6, 6, 5), seed=4)
    starts = set()
    for seed in range(5):
        _, maps = BRNPAAttention(n_parts=1, selection="random", seed=seed)(
            x, return_attention_maps=True
        )
        starts.add(tuple(to_numpy(maps)[..., 0].reshape(4, -1).argmax(1)))
    assert len(starts) > 1


def test_layer_lifecycle(tmp_path):
    out = run_layer_test(
        BRNPAAttention,
        {"n_parts": 2, "refine": True, "selection": "norm", "epsilon": 1e-5},
        (6, 6, 4),
        tmp_path,
    )
    assert out.shape == (4, 8)


def test_layer_lifecycle_random(tmp_path):
    run_layer_test(
        BRNPAAttention,
        {"n_parts": 2, "refine": False, "selection": "random", "seed": 3},
        (5, 5, 3),
        tmp_path,
        check_same_outputs=False,
    )


def test_constructor_flag_returns_maps_and_shapes():
    layer = BRNPAAttention(n_parts=3, return_attention_maps=True)
    inputs = keras.Input((7, 5, 4))
    vectors, maps = layer(inputs)
    assert tuple(vectors.shape) == (None, 12)
    assert tuple(maps.shape) == (None, 7, 5, 3)
    only = layer(inputs, return_attention_maps=False)
    assert tuple(only.shape) == (None, 12)
    assert layer.compute_output_shape((None, 7, 5, 4)) == ((None, 12), (None, 7, 5, 3))


def test_unknown_spatial_size():
    inputs = keras.Input((None, None, 4))
    outputs = BRNPAAttention(n_parts=2)(inputs)
    assert tuple(outputs.shape) == (None, 8)
    model = keras.Model(inputs, outputs)
    for size in [(3, 3), (5, 8)]:
        x = relu_features((2,) + size + (4,), seed=sum(size))
        ref, _, _ = brnpa_numpy(x, 2)
        np.testing.assert_allclose(to_numpy(model(x)), ref, rtol=RTOL, atol=ATOL)


def _sequential(jit_compile):
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
            keras_brnpa.BRNPAAttention(n_parts=3),
            keras.layers.Dense(4),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


@pytest.mark.parametrize(
    "jit_compile",
    [False, pytest.param(True, marks=pytest.mark.skipif(
        BACKEND == "torch", reason="jit_compile on torch means torch.compile (not XLA); "
        "DESIGN.md asks for XLA where the backend allows: TensorFlow and JAX"))],
)
def test_sequential_fit(jit_compile):
    keras.utils.set_random_seed(0)
    model = _sequential(jit_compile)
    rng = np.random.default_rng(0)
    x = rng.random((16, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 4, 16)
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses))
    after = [to_numpy(w) for w in model.trainable_weights]
    assert all(not np.allclose(b, a) for b, a in zip(before, after))
    assert losses[-1] < losses[0]


def test_gradients_finite_and_nonzero():
    x = relu_features((2, 4, 4, 5), seed=5)
    layer = BRNPAAttention(n_parts=2)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(tf.sin(layer(xt)))
        grad = tape.gradient(loss, xt).numpy()
    elif BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        grad = np.asarray(jax.grad(lambda t: jnp.sum(jnp.sin(layer(t))))(jnp.asarray(x)))
    else:
        import torch

        xt = torch.tensor(x, requires_grad=True)
        torch.sum(torch.sin(layer(xt))).backward()
        grad = xt.grad.numpy()
    assert np.all(np.isfinite(grad))
    assert np.abs(grad).sum() > 0
    # Finite differences on one coordinate confirm the gradient's value.
    eps = 1e-3
    idx = (0, 1, 2, 3)
    xp, xm = x.astype("float64").copy(), x.astype("float64").copy()
    xp[idx] += eps
    xm[idx] -= eps
    fp = np.sin(brnpa_numpy(xp, 2)[0]).sum()
    fm = np.sin(brnpa_numpy(xm, 2)[0]).sum()
    np.testing.assert_allclose(grad[idx], (fp - fm) / (2 * eps), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    x = relu_features((2, 6, 6, 8), seed=6) * 300.0  # squares overflow float16
    layer = BRNPAAttention(n_parts=3)
    vectors, maps = layer(x, return_attention_maps=True)
    assert keras.backend.standardize_dtype(vectors.dtype) == policy.split("_")[1]
    vectors = to_numpy(vectors).astype("float32")
    assert np.all(np.isfinite(vectors)) and np.all(np.isfinite(to_numpy(maps).astype("float32")))
    # Inputs are rounded to the compute dtype before the layer: compare with
    # the reference on those rounded inputs, within the output precision.
    rounded = to_numpy(keras.ops.cast(x, policy.split("_")[1])).astype("float32")
    ref, _, _ = brnpa_numpy(rounded, 3)
    np.testing.assert_allclose(vectors, ref, rtol=1e-2, atol=1e-2 * np.abs(ref).max())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs(dtype):
    x = keras.ops.cast(relu_features((1, 4, 4, 3), seed=8), dtype)
    out = to_numpy(BRNPAAttention(n_parts=2, dtype=dtype)(x)).astype("float32")
    assert np.all(np.isfinite(out))


def test_all_zero_features_give_uniform_maps():
    x = np.zeros((2, 3, 4, 5), "float32")
    vectors, maps = BRNPAAttention(n_parts=3)(x, return_attention_maps=True)
    np.testing.assert_array_equal(to_numpy(vectors), 0.0)
    np.testing.assert_allclose(to_numpy(maps), 1.0 / 12)


def test_opposite_vectors_are_not_part_of_the_part():
    # Two opposite vectors (possible without ReLU): the unclamped
    # similarities (1, -1) sum to 0; clamped, the map is (1, 0).
    x = np.zeros((1, 1, 2, 2), "float32")
    x[0, 0, 0] = [1.0, 0.0]
    x[0, 0, 1] = [-1.0, 0.0]
    vectors, maps = BRNPAAttention(n_parts=1)(x, return_attention_maps=True)
    np.testing.assert_allclose(to_numpy(maps).ravel(), [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(to_numpy(vectors).ravel(), [1.0, 0.0], atol=1e-5)


def test_nearly_zero_features_fall_back_to_uniform():
    # Norms far below epsilon: similarities sum to ~0, maps are uniform.
    x = np.full((1, 2, 3, 2), 1e-20, "float32")
    _, maps = BRNPAAttention(n_parts=2)(x, return_attention_maps=True)
    np.testing.assert_allclose(to_numpy(maps), 1.0 / 6)


def test_issue_16_signed_example_is_a_distribution():
    x = np.zeros((1, 1, 3, 2), "float32")
    x[0, 0, 0] = [1.0, 0.0]
    x[0, 0, 1] = [-0.999, 0.0447]
    _, maps = BRNPAAttention(n_parts=1)(x, return_attention_maps=True)
    # Unclamped, this map was (1000.5, -999.5, 0).
    np.testing.assert_allclose(to_numpy(maps).ravel(), [1.0, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("refine", [True, False])
def test_signed_features_give_distributions_equal_to_clamped_reference(refine):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(3, 5, 6, 7)).astype("float32")
    vectors, maps = BRNPAAttention(n_parts=3, refine=refine)(x, return_attention_maps=True)
    maps = to_numpy(maps)
    assert maps.min() >= 0.0
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    ref_v, ref_m, _ = brnpa_numpy(x, 3, refine=refine, clamp_negative=True)
    np.testing.assert_allclose(maps, ref_m, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(to_numpy(vectors), ref_v, rtol=1e-4, atol=1e-5)
    # Clamping matters here: without it the reference maps leave [0, 1].
    assert brnpa_numpy(x, 3, refine=refine)[1].min() < 0


@pytest.mark.parametrize("scale", [1e3, 1e19, 1e30])
def test_maps_do_not_depend_on_the_feature_scale(scale):
    x = relu_features((2, 4, 4, 6), seed=13) + 0.01
    layer = BRNPAAttention(n_parts=3)
    vectors, maps = layer(x * np.float32(scale), return_attention_maps=True)
    _, base_maps = layer(x, return_attention_maps=True)
    assert np.all(np.isfinite(to_numpy(vectors)))
    # epsilon = 1e-5 is absolute: the maps agree to ~epsilon / ||f||.
    np.testing.assert_allclose(to_numpy(maps), to_numpy(base_maps), rtol=1e-3, atol=1e-5)
    uniform = np.full_like(to_numpy(maps), 1.0 / 16)
    assert np.abs(to_numpy(maps) - uniform).max() > 0.01
    norm = to_numpy(layer.feature_norm(x * np.float32(scale)))
    np.testing.assert_allclose(norm, np.linalg.norm(x.astype("float64") * scale, axis=-1),
                               rtol=1e-5)


def test_single_location_and_n_parts_equal_to_locations():
    x = relu_features((2, 1, 1, 4), seed=9) + 0.1
    vectors, maps = BRNPAAttention(n_parts=1)(x, return_attention_maps=True)
    np.testing.assert_allclose(to_numpy(maps), 1.0)
    np.testing.assert_allclose(to_numpy(vectors), x.reshape(2, 4), rtol=1e-6)
    x = relu_features((2, 2, 2, 4), seed=10)
    vectors, maps = BRNPAAttention(n_parts=4)(x, return_attention_maps=True)
    ref_v, ref_m, _ = brnpa_numpy(x, 4)
    np.testing.assert_allclose(to_numpy(vectors), ref_v, rtol=RTOL, atol=ATOL)
    assert np.all(np.isfinite(to_numpy(maps)))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_parts": 0}, "n_parts"),
        ({"n_parts": 2.5}, "n_parts"),
        ({"n_parts": True}, "n_parts"),
        ({"selection": "best"}, "selection"),
        ({"refine": "yes"}, "refine"),
        ({"epsilon": 0}, "epsilon"),
        ({"epsilon": float("inf")}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"epsilon": "1e-5"}, "epsilon"),
        ({"data_format": "NHWC"}, "data_format"),
        ({"seed": "a"}, "seed"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"argument {name}.*Received: {name}="):
        BRNPAAttention(**kwargs)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="4-D feature map"):
        BRNPAAttention()(np.ones((2, 3, 4), "float32"))
    with pytest.raises(ValueError, match="Received: n_parts=5"):
        BRNPAAttention(n_parts=5)(keras.Input((2, 2, 3)))
    with pytest.raises(ValueError, match="Received: n_parts=10"):
        BRNPAAttention(n_parts=10)(np.ones((1, 3, 3, 2), "float32"))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_zero_channels_is_one_clear_error(data_format):
    shape = (1, 2, 2, 0) if data_format == "channels_last" else (1, 0, 2, 2)
    match = r"argument features\. Expected a feature map with at least one channel"
    with pytest.raises(ValueError, match=match):
        BRNPAAttention(n_parts=1, data_format=data_format)(np.zeros(shape, "float32"))
    with pytest.raises(ValueError, match=match):
        BRNPAAttention(n_parts=1, data_format=data_format)(keras.Input(shape[1:]))


def test_feature_shape_refuses_what_is_not_a_model():
    with pytest.raises(ValueError, match="argument model.*Received: model='x'"):
        keras_brnpa.models.feature_shape("x")
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="4-D map"):
        keras_brnpa.models.feature_shape(dense)


def test_feature_norm_method():
    x = relu_features((2, 3, 3, 4), seed=11)
    np.testing.assert_allclose(
        to_numpy(BRNPAAttention().feature_norm(x)),
        np.linalg.norm(x, axis=-1) + 1e-5,
        rtol=1e-6,
    )
