"""Every CAM on a layer of a nested keras.applications model, in the layouts
transfer-learning tutorials build (issue 21 part 1).

The same application (the same weights) is explained five ways; every way
must give the maps of the application called directly on pre-scaled images:

- A: a functional wrapper whose output *is* the application's output, with
  ``Rescaling`` before it;
- B: ``Sequential([Rescaling, application])``;
- C: the application called directly on the pre-scaled images (reference);
- D: the application nested two levels deep;
- E: ``include_top=True`` with its softmax (a twin with the same weights).

And F: a layer called twice in the graph gets an error naming it.
"""

import keras
import numpy as np
import pytest

from keras_brnpa import explain

SIZE = 64
CAMS = ["gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "scorecam", "eigencam",
        "ablationcam"]


def _application(name, activation):
    keras.utils.set_random_seed(0)
    common = dict(weights=None, classes=3, input_shape=(SIZE, SIZE, 3),
                  classifier_activation=activation)
    if name == "mobilenetv2":
        return keras.applications.MobileNetV2(alpha=0.35, **common)
    return keras.applications.ResNet50V2(**common)


def _layouts(name):
    logits_app = _application(name, None)
    softmax_app = _application(name, "softmax")
    softmax_app.set_weights(logits_app.get_weights())

    def wrapper(app):  # A and E
        inp = keras.Input((SIZE, SIZE, 3))
        return keras.Model(inp, app(keras.layers.Rescaling(1 / 255)(inp)), name="wrapper")

    inner = wrapper(logits_app)
    inp = keras.Input((SIZE, SIZE, 3))
    nested_twice = keras.Model(inp, inner(inp), name="outer")  # D
    sequential = keras.Sequential(  # B
        [keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 255), logits_app],
        name="sequential",
    )
    return {
        "A": (wrapper(logits_app), 255.0),
        "B": (sequential, 255.0),
        "C": (logits_app, 1.0),
        "D": (nested_twice, 255.0),
        "E": (wrapper(softmax_app), 255.0),
    }, logits_app


@pytest.fixture(scope="module")
def mobilenet():
    return _layouts("mobilenetv2")


@pytest.fixture(scope="module")
def resnet():
    return _layouts("resnet50v2")


def _images():
    return np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")


def _options(method):
    options = {"class_index": [0, 2], "batch_size": 8}
    if method == "scorecam":
        options["max_channels"] = 4
    return options


def _check_same_maps(layouts, app, method, layer):
    images = _images()
    maps = {}
    for key, (model, scale) in layouts.items():
        x = images / 255.0 if scale == 1.0 else images
        # The name is looked up inside the nested models.
        maps[key] = explain.explain(method, model, x, layer_name=layer, **_options(method))
    reference = maps["C"]
    assert reference.shape[0] == 2 and np.all(np.isfinite(reference))
    assert reference.max() > 0, method
    for key, value in maps.items():
        np.testing.assert_allclose(
            value, reference, rtol=1e-3, atol=1e-3 * reference.max(), err_msg=f"{method} {key}"
        )


@pytest.mark.parametrize("method", CAMS)
def test_mobilenetv2_layouts_give_the_same_maps(mobilenet, method):
    layouts, app = mobilenet
    _check_same_maps(layouts, app, method, "out_relu")


def test_mobilenetv2_inner_layer_by_name(mobilenet):
    layouts, app = mobilenet
    _check_same_maps(layouts, app, "gradcam", "block_13_expand_relu")


def test_mobilenetv2_default_layer_is_found_in_every_layout(mobilenet):
    layouts, app = mobilenet
    images = _images()
    reference = explain.grad_cam(app, images / 255.0, class_index=1)
    for key, (model, scale) in layouts.items():
        x = images / 255.0 if scale == 1.0 else images
        np.testing.assert_allclose(
            explain.grad_cam(model, x, class_index=1), reference,
            rtol=1e-3, atol=1e-3 * reference.max(), err_msg=key,
        )


@pytest.mark.parametrize("method", ["gradcam", "eigencam"])
def test_resnet50v2_layouts_give_the_same_maps(resnet, method):
    # Ablation-CAM and Score-CAM of ResNet50V2 cost one pass per channel
    # (2048): their layouts are covered by MobileNetV2 above.
    layouts, app = resnet
    _check_same_maps(layouts, app, method, "post_relu" if method == "gradcam" else "conv4_block6_out")


def test_gradients_flow_around_a_skip_connection():
    # Grad-CAM of a layer that a skip connection goes around: the gradient
    # is taken where the model's own graph computes the activations, so the
    # path around the layer is kept (a split into two models could not).
    keras.utils.set_random_seed(1)
    inp = keras.Input((16, 16, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inp)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(a)
    c = keras.layers.Add()([a, b])
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(c))
    model = keras.Model(inp, out)
    x = np.random.default_rng(1).random((2, 16, 16, 3)).astype("float32")
    # d out / d b is the dense weight / (h w) for every pixel (b only enters
    # through the sum): Grad-CAM of "b" is ReLU(sum_k w_kc / 256 * b_k).
    kernel = keras.ops.convert_to_numpy(model.layers[-1].kernel)
    b_values = keras.ops.convert_to_numpy(keras.Model(inp, b)(x))
    expected = np.maximum(np.einsum("bhwk,k->bhw", b_values, kernel[:, 1] / 256.0), 0)
    got = explain.grad_cam(model, x, layer_name="b", class_index=1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # Ablation-CAM needs the layers after the layer alone: a clear error.
    with pytest.raises(ValueError, match=r"argument layer_name.*depend on the images only"):
        explain.ablation_cam(model, x, layer_name="b")


def test_layer_called_twice_is_named_in_the_error():
    inp = keras.Input((16, 16, 3))
    conv = keras.layers.Conv2D(3, 3, padding="same", name="shared_conv")
    x = conv(conv(inp))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    images = np.zeros((1, 16, 16, 3), "float32")
    with pytest.raises(ValueError, match=r"argument layer_name.*'shared_conv' is called 2 times"):
        explain.grad_cam(model, images, layer_name="shared_conv")
    # A nested model called twice: the error names the nested model.
    inner = keras.Sequential([keras.Input((16, 16, 3)),
                              keras.layers.Conv2D(3, 3, padding="same", name="c")], name="inner")
    inp = keras.Input((16, 16, 3))
    y = keras.layers.Add()([inner(inp), inner(inp * 0.5)])
    twice = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(y)))
    with pytest.raises(ValueError, match=r"argument layer_name.*'inner' is called 2 times"):
        explain.grad_cam(twice, images, layer_name="inner/c")
