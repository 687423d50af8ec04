"""Tests of keras_brnpa.explain: shapes, constructed cases, NumPy references."""

import keras
import numpy as np
import pytest
from helpers import to_numpy
from reference import brnpa_numpy

import keras_brnpa
from keras_brnpa import explain
from keras_brnpa.explain import _utils
from keras_brnpa.explain.perturbation import RiseMasks

SIZE = 32  # image side of the small models


def small_backbone(size=SIZE, channels=8, name="backbone"):
    """Two ReLU convolutions, stride 4 overall: (size, size, 3) -> (size/4, size/4, C)."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(inputs, x, name=name)


def images(n=2, size=SIZE, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def classifiers():
    keras.utils.set_random_seed(0)
    return {
        head: keras_brnpa.models.build_classifier(
            4, backbone=small_backbone(), head=head, n_parts=3, input_shape=(SIZE, SIZE, 3)
        )
        for head in ("brnpa", "bcnn", "gap")
    }


# ---------------------------------------------------------------------------
# Shapes on real classifiers (the keras-cv "tiny" ResNet and small backbones).

POST_HOC = {
    "gradcam": {},
    "gradcam++": {},
    "eigencam": {},
    "ablationcam": {},
    "scorecam": {"max_channels": 4},
    "rise": {"n_masks": 8, "mask_size": 4},
}


def test_every_method_gives_finite_maps_of_the_right_shape(classifiers):
    # A build_classifier model whose backbone is a nested model: the
    # post-hoc methods split it at "backbone" (the keras-cv "tiny" ResNet is
    # exercised by the doctests).
    model = classifiers["brnpa"]
    x = images(4)
    methods = list(POST_HOC.items()) + [("brnpa", {}), ("feature_norm", {})]
    for method, kwargs in methods:
        maps = explain.explain(method, model, x, batch_size=2, **kwargs)
        expected = (4, SIZE, SIZE) if method == "rise" else (4, 8, 8)
        assert maps.shape == expected, method
        assert maps.dtype == np.float32 and np.all(np.isfinite(maps)), method
        assert np.all(maps >= 0) and maps.max() > 0, method
    parts = explain.attention_maps(model, x, batch_size=2, upsample=True)
    assert parts.shape == (4, SIZE, SIZE, 3) and np.all(np.isfinite(parts))


@pytest.mark.parametrize("head", ["brnpa", "bcnn", "gap"])
def test_model_maps_shapes_and_upsample(classifiers, head):
    model = classifiers[head]
    x = images(4)
    parts = explain.attention_maps(model, x, batch_size=2)
    assert parts.shape == (4, 8, 8, 1 if head == "gap" else 3)
    assert explain.explanation_map(model, x, batch_size=2).shape == (4, 8, 8)
    assert explain.feature_norm_map(model, x, batch_size=2, upsample=True).shape == (4, SIZE, SIZE)
    assert explain.explanation_map(model, x[:2], upsample=(16, 12)).shape == (2, 16, 12)
    for method in ("gradcam", "gradcam++", "eigencam"):
        maps = explain.explain(method, model, x, batch_size=2, upsample=True)
        assert maps.shape == (4, SIZE, SIZE) and np.all(np.isfinite(maps)), method


# ---------------------------------------------------------------------------
# The model's own maps against the NumPy reference of BR-NPA.


def test_brnpa_explanation_map_is_part1_times_norm(classifiers):
    model = classifiers["brnpa"]
    x = images(4, seed=1)
    features = to_numpy(model.get_layer("backbone")(x))
    _, ref_maps, ref_norm = brnpa_numpy(features, n_parts=3)
    # brnpa_numpy's norm includes epsilon = 1e-5; the explanation map uses ||f||.
    norm = np.linalg.norm(features.astype("float64"), axis=-1)
    np.testing.assert_allclose(ref_norm - 1e-5, norm, atol=1e-9)
    np.testing.assert_allclose(
        explain.explanation_map(model, x, batch_size=2), ref_maps[..., 0] * norm,
        rtol=1e-4, atol=1e-6,
    )
    np.testing.assert_allclose(
        explain.attention_maps(model, x, batch_size=2), ref_maps, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(
        explain.feature_norm_map(model, x, batch_size=2), norm, rtol=1e-5, atol=1e-6
    )


def test_bcnn_and_gap_explanation_maps(classifiers):
    x = images(2, seed=2)
    bcnn = classifiers["bcnn"]
    # The authors' B-CNN explanation: mean of the maps times the feature norm.
    bcnn_features = to_numpy(bcnn.get_layer("backbone")(x))
    np.testing.assert_allclose(
        explain.explanation_map(bcnn, x),
        explain.attention_maps(bcnn, x).mean(axis=-1) * np.linalg.norm(bcnn_features, axis=-1),
        rtol=1e-5,
        atol=1e-6,
    )
    gap = classifiers["gap"]
    features = to_numpy(gap.get_layer("backbone")(x))
    norm = np.linalg.norm(features, axis=-1)
    np.testing.assert_allclose(explain.explanation_map(gap, x), norm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(explain.attention_maps(gap, x)[..., 0], norm, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# Grad-CAM and Grad-CAM++ against a model small enough to do by hand:
# features = Conv 1x1 (linear), GAP, Dense, so d logit_c / d A = W[:, c] / (h w).


def linear_cam_model(kind, softmax=False):
    keras.utils.set_random_seed(3)
    conv = keras.layers.Conv2D(5, 1, name="features", bias_initializer="random_normal")
    dense = keras.layers.Dense(
        3, name="logits", bias_initializer="random_normal",
        activation="softmax" if softmax else None,
    )
    if kind == "sequential":
        model = keras.Sequential(
            [keras.Input((6, 7, 3)), conv, keras.layers.GlobalAveragePooling2D(), dense]
        )
    else:
        inputs = keras.Input((6, 7, 3))
        outputs = dense(keras.layers.GlobalAveragePooling2D()(conv(inputs)))
        model = keras.Model(inputs, outputs)
    wc, bc = (to_numpy(v).astype("float64") for v in conv.weights)
    wd, bd = (to_numpy(v).astype("float64") for v in dense.weights)
    return model, wc[0, 0], bc, wd, bd


def numpy_gradients(x, wc, bc, wd, bd, class_index, softmax):
    acts = x.astype("float64") @ wc + bc  # (B, h, w, K)
    logits = acts.mean(axis=(1, 2)) @ wd + bd
    classes = logits.argmax(-1) if class_index is None else np.asarray(class_index)
    per_class = wd.T[classes]  # (B, K): d logit_c / d GAP
    if softmax:  # d log p_c / d GAP = W[:, c] - sum_j p_j W[:, j]
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        per_class = per_class - p @ wd.T
    h, w = acts.shape[1:3]
    grads = np.broadcast_to((per_class / (h * w))[:, None, None, :], acts.shape)
    return acts, grads


@pytest.mark.parametrize("kind", ["sequential", "functional"])
@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize("class_index", [None, [2, 0, 1]])
def test_grad_cam_and_plus_plus_match_numpy(kind, softmax, class_index):
    model, wc, bc, wd, bd = linear_cam_model(kind, softmax)
    x = np.random.default_rng(4).normal(size=(3, 6, 7, 3)).astype("float32")
    acts, grads = numpy_gradients(x, wc, bc, wd, bd, class_index, softmax)
    weights = grads.mean(axis=(1, 2))
    expected = np.maximum(np.einsum("bhwk,bk->bhw", acts, weights), 0)
    got = explain.grad_cam(
        model, x, layer_name="features", class_index=class_index, batch_size=2,
        from_logits=not softmax,
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

    g2, g3 = grads**2, grads**3
    denominator = 2 * g2 + acts.sum(axis=(1, 2), keepdims=True) * g3
    alpha = np.where(denominator != 0, g2 / np.where(denominator != 0, denominator, 1), 0)
    weights_pp = (alpha * np.maximum(grads, 0)).sum(axis=(1, 2))
    expected_pp = np.maximum(np.einsum("bhwk,bk->bhw", acts, weights_pp), 0)
    got_pp = explain.grad_cam_plus_plus(
        model, x, layer_name="features", class_index=class_index, from_logits=not softmax
    )
    np.testing.assert_allclose(got_pp, expected_pp, rtol=1e-3, atol=1e-5)


def test_split_at_nested_backbone_reproduces_the_model(classifiers):
    model = classifiers["brnpa"]
    explain.attention_maps(model, images(2))  # adds a second node to the shared layers
    name, features_fn, head_fn = _utils.split_model(model)
    assert name == "backbone"
    x = images(2, seed=5)
    features = _utils.call_model(features_fn, x)
    np.testing.assert_allclose(features, to_numpy(model.get_layer("backbone")(x)), rtol=1e-6)
    np.testing.assert_allclose(
        _utils.call_model(head_fn, features), to_numpy(model(x)), rtol=1e-5, atol=1e-6
    )


# ---------------------------------------------------------------------------
# A model that only looks at one image region: every post-hoc method must put
# its maximum there. The input is multiplied by a fixed mask (bottom-left
# quadrant), then a stride-4 conv with positive weights, GAP and a Dense layer
# whose class-0 weights are positive. A Lambda records the batch sizes seen.

REGION = (slice(SIZE // 2, SIZE), slice(0, SIZE // 2))


def region_model(seen):
    mask = np.zeros((1, SIZE, SIZE, 1), "float32")
    mask[0, REGION[0], REGION[1]] = 1.0

    def record(x):
        if x.shape[0] is not None:
            seen.append(int(x.shape[0]))
        return keras.ops.multiply(x, mask)

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Lambda(record, output_shape=(SIZE, SIZE, 3), name="masking")(inputs)
    conv = keras.layers.Conv2D(4, 4, strides=4, use_bias=False, activation="relu", name="features")
    x = keras.layers.GlobalAveragePooling2D()(conv(x))
    dense = keras.layers.Dense(2, name="logits")
    model = keras.Model(inputs, dense(x))
    rng = np.random.default_rng(6)
    conv.kernel.assign(rng.uniform(0.0, 0.1, size=(4, 4, 3, 4)).astype("float32"))
    kernel = np.zeros((4, 2), "float32")
    kernel[:, 0] = rng.uniform(0.5, 1.5, size=4)
    dense.kernel.assign(kernel)
    dense.bias.assign(np.array([-0.6, 0.0], "float32"))
    return model


@pytest.mark.parametrize(
    "method, kwargs",
    [
        ("gradcam", {}),
        ("gradcam++", {}),
        ("scorecam", {"batch_size": 3}),
        ("eigencam", {}),
        ("ablationcam", {"batch_size": 3}),
        ("rise", {"n_masks": 300, "mask_size": 4, "batch_size": 64}),
    ],
)
def test_maximum_in_the_region_the_model_looks_at(method, kwargs):
    seen = []
    model = region_model(seen)
    x = images(2, seed=7) + 0.5
    seen.clear()
    maps = explain.explain(method, model, x, class_index=0, **kwargs)
    up = explain.upsample(maps, (SIZE, SIZE)) if maps.shape[1] != SIZE else maps
    assert np.all(np.isfinite(up))
    inside = np.zeros((SIZE, SIZE), bool)
    inside[REGION] = True
    for b in range(len(x)):
        row, col = np.unravel_index(np.argmax(up[b]), (SIZE, SIZE))
        assert inside[row, col], (method, b, row, col)
        assert up[b][inside].mean() > up[b][~inside].mean()
    # Never more than one batch of (perturbed) images at a time.
    assert max(seen) <= kwargs.get("batch_size", 32)


# ---------------------------------------------------------------------------
# Score-CAM and RISE equal a plain one-image-at-a-time loop of their definition.


def test_score_cam_equals_plain_loop(classifiers):
    model = classifiers["gap"]
    x = images(2, seed=8)
    acts = to_numpy(model.get_layer("backbone")(x)).astype("float64")
    logits = to_numpy(model(x))
    expected = []
    for b in range(len(x)):
        c = int(np.argmax(logits[b]))
        weights = np.zeros(acts.shape[-1])
        for k in range(acts.shape[-1]):
            channel = acts[b, :, :, k]
            if channel.max() == channel.min():
                continue
            mask = to_numpy(
                keras.ops.image.resize(
                    channel[None, :, :, None].astype("float32"), (SIZE, SIZE),
                    interpolation="bilinear", antialias=False,
                )
            )[0, :, :, 0].astype("float64")
            mask = (mask - mask.min()) / (mask.max() - mask.min())
            out = to_numpy(model((x[b] * mask[..., None])[None].astype("float32")))[0]
            p = np.exp(out - out.max())
            weights[k] = p[c] / p.sum()
        expected.append(np.maximum(np.einsum("hwk,k->hw", acts[b], weights), 0))
    got = explain.score_cam(model, x, batch_size=5)
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-4, atol=1e-6)


def test_rise_equals_plain_loop(classifiers):
    model = classifiers["gap"]
    x = images(2, seed=9)
    n_masks, mask_size, p = 10, 3, 0.4
    masks = RiseMasks(n_masks, mask_size, p, (SIZE, SIZE), seed=3)
    logits = to_numpy(model(x))
    expected = np.zeros((2, SIZE, SIZE))
    for b in range(2):
        c = int(np.argmax(logits[b]))
        for m in range(n_masks):
            mask = masks.masks(np.array([m]))[0].astype("float64")
            assert 0 <= mask.min() and mask.max() <= 1
            out = to_numpy(model((x[b] * mask[..., None])[None].astype("float32")))[0]
            prob = np.exp(out - out.max())
            expected[b] += prob[c] / prob.sum() * mask
    expected /= n_masks * p
    got = explain.rise(model, x, n_masks=n_masks, mask_size=mask_size, p=p, batch_size=4, seed=3)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # The same seed gives the same map; another seed another one.
    again = explain.rise(model, x, n_masks=n_masks, mask_size=mask_size, p=p, batch_size=7, seed=3)
    np.testing.assert_allclose(again, got, rtol=1e-5, atol=1e-7)
    other = explain.rise(model, x, n_masks=n_masks, mask_size=mask_size, p=p, seed=4)
    assert not np.allclose(other, got)


# ---------------------------------------------------------------------------
# upsample, the dispatcher, argument checks.


def test_upsample_matches_keras_resize_and_keeps_constants():
    rng = np.random.default_rng(10)
    maps = rng.random((2, 3, 5)).astype("float32")
    for size in [(12, 20), (7, 9), (3, 5)]:
        ours = explain.upsample(maps, size)
        theirs = to_numpy(
            keras.ops.image.resize(maps[..., None], size, interpolation="bilinear", antialias=False)
        )[..., 0]
        assert ours.shape == (2,) + size
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    parts = rng.random((1, 4, 4, 3))
    assert explain.upsample(parts, (8, 6)).shape == (1, 8, 6, 3)
    np.testing.assert_allclose(explain.upsample(np.full((1, 2, 2), 3.0), (9, 9)), 3.0, rtol=1e-6)


def test_explain_dispatcher_names_and_aliases(classifiers):
    model = classifiers["brnpa"]
    x = images(2, seed=11)
    assert set(explain.METHODS) >= {"brnpa", "gradcam", "gradcam++", "scorecam", "rise", "eigencam"}
    direct = explain.grad_cam_plus_plus(model, x)
    for name in ("gradcam++", "Grad-CAM++", "grad_cam_plus_plus"):
        np.testing.assert_allclose(explain.explain(name, model, x), direct, rtol=1e-5)
    # Class-independent methods ignore class_index and layer_name.
    np.testing.assert_allclose(
        explain.explain("brnpa", model, x, class_index=1, layer_name="backbone"),
        explain.explanation_map(model, x),
        rtol=1e-6,
    )
    # A different class gives a different Grad-CAM.
    assert not np.allclose(
        explain.grad_cam(model, x, class_index=0), explain.grad_cam(model, x, class_index=1)
    )


def test_bad_arguments_raise_value_errors_naming_them(classifiers):
    model = classifiers["gap"]
    x = images(2)
    plain = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(2, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    cases = [
        ("images", lambda: explain.grad_cam(model, x[0])),
        ("images", lambda: explain.attention_maps(model, np.zeros((2, SIZE, SIZE, 1)))),
        ("batch_size", lambda: explain.grad_cam(model, x, batch_size=0)),
        ("batch_size", lambda: explain.attention_maps(model, x, batch_size=1.5)),
        ("upsample", lambda: explain.grad_cam(model, x, upsample="yes")),
        ("upsample", lambda: explain.explanation_map(model, x, upsample=(0, 4))),
        ("layer_name", lambda: explain.grad_cam(model, x, layer_name="nope")),
        ("layer_name", lambda: explain.grad_cam(model, x, layer_name="logits")),
        ("class_index", lambda: explain.grad_cam(model, x, class_index=4)),
        ("class_index", lambda: explain.score_cam(model, x, class_index=[0, 1, 2])),
        ("class_index", lambda: explain.rise(model, x, class_index=True)),
        ("from_logits", lambda: explain.grad_cam(model, x, from_logits="yes")),
        ("max_channels", lambda: explain.score_cam(model, x, max_channels=0)),
        ("n_masks", lambda: explain.rise(model, x, n_masks=0)),
        ("mask_size", lambda: explain.rise(model, x, mask_size=-1)),
        ("p", lambda: explain.rise(model, x, p=1.5)),
        ("seed", lambda: explain.rise(model, x, seed="a")),
        ("model", lambda: explain.attention_maps(plain, x)),
        ("model", lambda: explain.grad_cam("not a model", x)),
        ("method", lambda: explain.explain("lime", model, x)),
        ("n_mask", lambda: explain.explain("rise", model, x, n_mask=3)),
        ("size", lambda: explain.upsample(np.zeros((1, 2, 2)), 4)),
        ("maps", lambda: explain.upsample(np.zeros((2, 2)), (4, 4))),
    ]
    for name, call in cases:
        with pytest.raises(ValueError, match=f"argument {name}\\b.*Received: {name}="):
            call()
