"""HiResCAM, XGrad-CAM, Layer-CAM, saliency, SmoothGrad, Integrated Gradients
(issue 21 part 2) and a class per image, multi-label models included
(part 4), each against an independent NumPy computation."""

import keras
import numpy as np
import pytest
from helpers import to_numpy

from keras_brnpa import explain


def flatten_head_model(activation=None):
    """features = Conv 4x4 stride 4 (ReLU), Flatten, Dense: d logit_c / d A
    is the Dense kernel's column c, reshaped (different at every pixel)."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((16, 16, 3))
    conv = keras.layers.Conv2D(4, 4, strides=4, activation="relu", name="features",
                               bias_initializer="random_normal")
    dense = keras.layers.Dense(3, activation=activation, name="logits",
                               bias_initializer="random_normal")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(conv(inputs))))
    features = keras.Model(inputs, conv.output)
    kernel = to_numpy(dense.kernel).astype("float64").reshape(4, 4, 4, 3)
    bias = to_numpy(dense.bias).astype("float64")
    return model, features, kernel, bias


def _images(n=3, size=16, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3)).astype("float32")


def _numpy_cam_inputs(features, kernel, bias, x, classes, sigmoid=False):
    acts = to_numpy(features(x)).astype("float64")  # (B, 4, 4, 4)
    grads = np.moveaxis(kernel[..., classes], -1, 0)  # (B, 4, 4, 4)
    if sigmoid:  # d log sigmoid(z_c) / d A = (1 - p_c) d z_c / d A
        logits = np.einsum("bhwk,hwkc->bc", acts, kernel) + bias
        p = 1 / (1 + np.exp(-logits[np.arange(len(x)), classes]))
        grads = grads * (1 - p)[:, None, None, None]
    return acts, grads


def _numpy_maps(acts, grads):
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    xgrad_weights = (grads * acts).sum(axis=(1, 2)) / (acts.sum(axis=(1, 2)) + 1e-7)
    return {
        "hirescam": relu((grads * acts).sum(-1)),
        "xgradcam": relu(np.einsum("bhwk,bk->bhw", acts, xgrad_weights)),
        "layercam": relu((relu(grads) * acts).sum(-1)),
        "gradcam": relu(np.einsum("bhwk,bk->bhw", acts, grads.mean(axis=(1, 2)))),
    }


@pytest.mark.parametrize("method", ["hirescam", "xgradcam", "layercam"])
def test_gradient_cams_match_numpy(method):
    model, features, kernel, bias = flatten_head_model()
    x = _images()
    classes = np.array([2, 0, 1])
    expected = _numpy_maps(*_numpy_cam_inputs(features, kernel, bias, x, classes))[method]
    got = explain.explain(method, model, x, layer_name="features", class_index=classes,
                          batch_size=2)
    assert got.shape == (3, 4, 4) and expected.max() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.max())
    # The public functions are the dispatcher's.
    function = {"hirescam": explain.hires_cam, "xgradcam": explain.xgrad_cam,
                "layercam": explain.layer_cam}[method]
    np.testing.assert_allclose(function(model, x, class_index=classes), got, rtol=1e-6)


def test_sigmoid_multi_label_model_explains_the_label_it_is_given():
    # A multi-label model (sigmoid outputs, several labels may be on): the
    # score is log p(label) of the label asked for, whatever the argmax.
    model, features, kernel, bias = flatten_head_model(activation="sigmoid")
    x = _images(seed=1)
    labels = np.array([1, 2, 0])
    acts, grads = _numpy_cam_inputs(features, kernel, bias, x, labels, sigmoid=True)
    expected = _numpy_maps(acts, grads)
    for method in ("gradcam", "hirescam", "layercam"):
        got = explain.explain(method, model, x, class_index=labels)
        np.testing.assert_allclose(got, expected[method], rtol=1e-4,
                                   atol=1e-5 * expected[method].max(), err_msg=method)
    # Each label gives its own map.
    other = explain.grad_cam(model, x, class_index=(labels + 1) % 3)
    assert not np.allclose(other, expected["gradcam"])


def test_every_method_takes_a_class_per_image():
    # A class per image equals explaining each image alone with its class.
    model, _, _, _ = flatten_head_model(activation="sigmoid")
    x = _images(seed=2)
    labels = np.array([2, 0, 1])
    options = {"scorecam": {"max_channels": 3}, "rise": {"n_masks": 16, "mask_size": 4}}
    for method in explain.METHODS:
        if method in ("brnpa", "attention", "feature_norm"):
            continue  # the model's own maps need a build_classifier head
        kwargs = dict(options.get(method, {}), layer_name="features")
        together = explain.explain(method, model, x, class_index=labels, **kwargs)
        alone = np.concatenate([
            explain.explain(method, model, x[i : i + 1], class_index=int(c), **kwargs)
            for i, c in enumerate(labels)
        ])
        np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-6, err_msg=method)
    # SmoothGrad's draws are one stream over the batch's rows: without noise
    # its class handling is compared alone and together.
    smooth = lambda m, images, **kw: explain.smooth_grad(  # noqa: E731
        m, images, noise=0.0, samples=2, **kw)
    for function in (explain.saliency, smooth, explain.integrated_gradients):
        together = function(model, x, class_index=labels)
        alone = np.concatenate([function(model, x[i : i + 1], class_index=int(c))
                                for i, c in enumerate(labels)])
        np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------------
# Attributions on the pixels: a small tanh network whose input gradient is
# written out in NumPy.


def mlp():
    keras.utils.set_random_seed(7)
    inputs = keras.Input((4, 4, 2))
    hidden = keras.layers.Dense(6, activation="tanh", bias_initializer="random_normal")
    out = keras.layers.Dense(3, bias_initializer="random_normal")
    model = keras.Model(inputs, out(hidden(keras.layers.Flatten()(inputs))))
    w1, b1 = (to_numpy(v).astype("float64") for v in hidden.weights)
    w2, b2 = (to_numpy(v).astype("float64") for v in out.weights)

    def logits(x):
        return np.tanh(x.reshape(len(x), -1) @ w1 + b1) @ w2 + b2

    def gradient(x, classes):
        pre = x.reshape(len(x), -1).astype("float64") @ w1 + b1
        back = (1 - np.tanh(pre) ** 2) * w2.T[classes]  # (B, 6)
        return (back @ w1.T).reshape(x.shape)

    return model, logits, gradient


def test_saliency_is_the_input_gradient():
    model, logits, gradient = mlp()
    x = np.random.default_rng(3).normal(size=(5, 4, 4, 2)).astype("float32")
    predicted = logits(x.astype("float64")).argmax(-1)
    got = explain.saliency(model, x, batch_size=2)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, gradient(x, predicted), rtol=1e-4, atol=1e-6)
    classes = np.array([0, 1, 2, 0, 1])
    np.testing.assert_allclose(explain.saliency(model, x, class_index=classes),
                               gradient(x, classes), rtol=1e-4, atol=1e-6)


def test_smooth_grad_is_the_mean_gradient_at_the_noisy_images():
    model, logits, gradient = mlp()
    x = np.random.default_rng(4).normal(size=(2, 4, 4, 2)).astype("float32")
    np.testing.assert_allclose(explain.smooth_grad(model, x, noise=0.0, samples=3),
                               explain.saliency(model, x), rtol=1e-5, atol=1e-7)
    samples, noise = 6, 0.2
    got = explain.smooth_grad(model, x, noise=noise, samples=samples, seed=3, batch_size=64)
    # The same draws: one field per sample, shared by the images, scaled by
    # each image's sigma (rows image-major).
    fields = np.random.default_rng(3).standard_normal((samples,) + x.shape[1:])
    draws = np.tile(fields.astype("float32"), (2, 1, 1, 1))
    sigma = noise * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
    rows = np.repeat(x, samples, axis=0).astype("float64") + (
        draws * np.repeat(sigma, samples)[:, None, None, None])
    classes = np.repeat(logits(x.astype("float64")).argmax(-1), samples)
    expected = gradient(rows, classes).reshape((2, samples) + x.shape[1:]).mean(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)
    assert not np.allclose(got, explain.saliency(model, x), atol=1e-4)
    # An image's map does not depend on its batch: alone, or after others.
    x3 = np.concatenate([x[1:], x], axis=0)
    batch = explain.smooth_grad(model, x3, noise=noise, samples=samples, seed=3, batch_size=5)
    alone = explain.smooth_grad(model, x[1:], noise=noise, samples=samples, seed=3)
    np.testing.assert_allclose(batch[2], alone[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(batch[0], alone[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(batch[1], got[0], rtol=1e-5, atol=1e-7)


def test_integrated_gradients_completeness_and_linear_case():
    model, logits, _ = mlp()
    x = np.random.default_rng(5).normal(size=(3, 4, 4, 2)).astype("float32")
    baseline = np.full(x.shape[1:], 0.3, "float32")
    attributions = explain.integrated_gradients(model, x, steps=256, baseline=baseline,
                                                batch_size=128)
    assert attributions.shape == x.shape
    classes = logits(x.astype("float64")).argmax(-1)
    rows = np.arange(3)
    difference = (logits(x.astype("float64"))[rows, classes]
                  - logits(np.broadcast_to(baseline, x.shape).astype("float64"))[rows, classes])
    np.testing.assert_allclose(attributions.sum(axis=(1, 2, 3)), difference, rtol=0.02)
    # A linear model: IG is exactly (x - x0) * w.
    keras.utils.set_random_seed(2)
    linear = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Flatten(),
                               keras.layers.Dense(3)])
    w = to_numpy(linear.layers[-1].kernel)[:, 1].reshape(4, 4, 2)
    np.testing.assert_allclose(
        explain.integrated_gradients(linear, x, steps=3, class_index=1),
        x * w, rtol=1e-4, atol=1e-6)


def test_attribution_arguments_are_checked():
    model, _, _ = mlp()
    x = np.zeros((1, 4, 4, 2), "float32")
    cases = [
        ("noise", lambda: explain.smooth_grad(model, x, noise=-1.0)),
        ("samples", lambda: explain.smooth_grad(model, x, samples=0)),
        ("steps", lambda: explain.integrated_gradients(model, x, steps=0)),
        ("baseline", lambda: explain.integrated_gradients(model, x, baseline=np.zeros(3))),
        ("class_index", lambda: explain.saliency(model, x, class_index=5)),
    ]
    for name, call in cases:
        with pytest.raises(ValueError, match=f"argument {name}\\b.*Received: {name}="):
            call()


def test_metrics_take_a_class_per_image_on_a_multi_label_model():
    from keras_brnpa import metrics

    model, _, _, _ = flatten_head_model(activation="sigmoid")
    x = _images(seed=3)
    labels = np.array([2, 0, 1])
    maps = explain.grad_cam(model, x, class_index=labels)
    road = lambda *a, **kw: metrics.road(*a, fractions=(0.25, 0.5), **kw)  # noqa: E731
    for metric in (metrics.deletion_auc, metrics.insertion_auc, metrics.deletion_correlation,
                   metrics.insertion_correlation, road):
        options = {} if metric is road else {"steps": 4}
        together = metric(model, x, maps, class_index=labels, **options)
        alone = [float(metric(model, x[i : i + 1], maps[i : i + 1], class_index=int(c),
                              **options)[0]) for i, c in enumerate(labels)]
        np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6, err_msg=str(metric))
        # The label asked for is scored, not the argmax: another label differs.
        assert not np.allclose(metric(model, x, maps, class_index=(labels + 1) % 3, **options),
                               together), metric
    # The randomisation check explains the label given at every stage.
    result = metrics.model_randomization(model, x, "gradcam", layers=["logits"],
                                         class_index=labels, return_maps=True)
    np.testing.assert_allclose(result["maps"]["original"], maps, rtol=1e-5, atol=1e-7)
