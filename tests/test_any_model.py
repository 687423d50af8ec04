"""Users' own models: nested layers, softmax heads, subclassed models, any map.

Every explainer and metric must take a functional or Sequential classifier
with a backbone nested inside it, a ``Rescaling`` layer and a softmax head,
as ``keras.applications`` transfer learning builds them.
"""

import keras
import numpy as np
import pytest

import keras_brnpa
from keras_brnpa import explain
from keras_brnpa import metrics
from keras_brnpa.metrics import faithfulness

SIZE = 32
CAM_METHODS = ["gradcam", "gradcam++", "scorecam", "eigencam", "ablationcam"]


def _layers():
    keras.utils.set_random_seed(3)
    return {
        "conv1": keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv1"),
        "conv2": keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv2"),
        "conv3": keras.layers.Conv2D(8, 1, activation="relu", name="conv3"),
        "dense": keras.layers.Dense(4, name="dense"),
    }


@pytest.fixture(scope="module")
def twins():
    """The same weights three ways: nested + softmax, nested + logits, flat."""
    layers = _layers()
    backbone = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), layers["conv1"], layers["conv2"], layers["conv3"]],
        name="inner",
    )
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    features = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(x))
    logits = layers["dense"](features)
    logits_model = keras.Model(inputs, logits, name="logits_twin")
    probs = keras.layers.Softmax(name="softmax")(logits)
    softmax_model = keras.Model(inputs, probs, name="softmax_model")
    flat = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255.0),
            layers["conv1"],
            layers["conv2"],
            layers["conv3"],
            keras.layers.GlobalAveragePooling2D(),
            layers["dense"],
        ],
        name="flat",
    )
    images = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    return softmax_model, logits_model, flat, images


def _kwargs(method):
    return {"max_channels": 4, "batch_size": 8} if method == "scorecam" else {"batch_size": 8}


@pytest.mark.parametrize("method", CAM_METHODS)
def test_nested_path_equals_flat_model(twins, method):
    softmax_model, _, flat, images = twins
    nested = explain.explain(method, softmax_model, images, layer_name="inner/conv2", **_kwargs(method))
    reference = explain.explain(method, flat, images, layer_name="conv2", **_kwargs(method))
    assert nested.shape == (3, 8, 8)
    assert np.abs(reference).max() > 0
    np.testing.assert_allclose(nested, reference, rtol=1e-4, atol=1e-6 * np.abs(reference).max())


def test_layer_by_object_and_unique_name(twins):
    softmax_model, _, _, images = twins
    conv2 = softmax_model.get_layer("inner").get_layer("conv2")
    by_path = explain.grad_cam(softmax_model, images, layer_name="inner/conv2")
    np.testing.assert_array_equal(explain.grad_cam(softmax_model, images, layer_name=conv2), by_path)
    np.testing.assert_array_equal(explain.grad_cam(softmax_model, images, layer_name="conv2"), by_path)


def test_default_layer_looks_inside_nested_models(twins):
    softmax_model, _, _, images = twins
    # The backbone's output is the last 4-D map; Rescaling (input-shaped) is not.
    assert keras_brnpa.models.default_feature_layer(softmax_model) == "inner"
    pooled = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), softmax_model.get_layer("inner"),
         keras.layers.GlobalAveragePooling2D()], name="pooled_backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(pooled(keras.layers.Rescaling(0.5)(inputs))))
    assert keras_brnpa.models.default_feature_layer(model) == "pooled_backbone/inner"
    assert explain.grad_cam(model, images).shape == (3, 8, 8)


def test_layer_errors_name_the_argument(twins):
    softmax_model, _, _, images = twins
    with pytest.raises(ValueError, match=r"argument layer_name.*no such layer.*inner/conv2"):
        explain.grad_cam(softmax_model, images, layer_name="inner/nope")
    with pytest.raises(ValueError, match=r"argument layer_name.*output has shape"):
        explain.grad_cam(softmax_model, images, layer_name="pool")
    with pytest.raises(ValueError, match=r"argument layer_name.*not in the model"):
        explain.grad_cam(softmax_model, images, layer_name=keras.layers.Dense(2))


@pytest.mark.parametrize("method", CAM_METHODS + ["rise"])
def test_softmax_model_and_logits_twin_give_the_same_maps(twins, method):
    softmax_model, logits_model, _, images = twins
    kwargs = {"n_masks": 24, "batch_size": 8} if method == "rise" else _kwargs(method)
    a = explain.explain(method, softmax_model, images, **kwargs)
    b = explain.explain(method, logits_model, images, **kwargs)
    assert np.abs(b).max() > 0
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * np.abs(b).max())
    # The final softmax is restored afterwards.
    out = keras.ops.convert_to_numpy(softmax_model(images[:1]))
    np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-5)


def test_gradcam_on_probabilities_differs_from_the_logit(twins):
    """The auto-detection matters: the log-probability map is another map."""
    softmax_model, logits_model, _, images = twins
    on_logits = explain.grad_cam(logits_model, images, layer_name="inner/conv2")
    on_probs = explain.grad_cam(softmax_model, images, layer_name="inner/conv2", from_logits=False)
    assert not np.allclose(on_logits, on_probs, rtol=1e-3)


def test_output_activation_detection():
    dense_softmax = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    dropout_after = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, activation="softmax"), keras.layers.Dropout(0.1)]
    )
    sigmoid = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="sigmoid")])
    inputs = keras.Input((3,))
    ops_softmax = keras.Model(inputs, keras.ops.softmax(keras.layers.Dense(2)(inputs)))
    activation = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Activation("softmax")])
    lam = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Lambda(lambda t: t * 1.0)])
    detect = keras_brnpa.models.output_activation
    assert detect(dense_softmax) == "softmax"
    assert detect(dropout_after) == "softmax"
    assert detect(sigmoid) == "sigmoid"
    assert detect(ops_softmax) == "softmax"
    assert detect(activation) == "softmax"
    assert detect(lam) is None
    x = np.random.default_rng(0).random((2, 3)).astype("float32")
    for model in (dense_softmax, ops_softmax, activation):
        with keras_brnpa.models.logits_view(model) as switched:
            logits = keras.ops.convert_to_numpy(model(x))
        assert switched
        probs = keras.ops.convert_to_numpy(model(x))
        expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(probs, expected, rtol=1e-5)
    resolve = keras_brnpa.models.resolve_from_logits
    assert resolve(lam, None, np.array([[0.3, 0.7]])) is False
    assert resolve(lam, None, np.array([[3.0, -1.0]])) is True
    assert resolve(dense_softmax, True) is True
    with pytest.raises(ValueError, match="argument from_logits"):
        resolve(dense_softmax, "auto")


# ------------------------------------------------------------------ metrics
def test_softmax_model_and_logits_twin_give_the_same_aucs(twins):
    softmax_model, logits_model, _, images = twins
    saliency = np.random.default_rng(1).random((3, 4, 4))
    for function in (metrics.deletion_auc, metrics.insertion_auc):
        a = function(softmax_model, images, saliency, steps=6)
        b = function(logits_model, images, saliency, steps=6)
        np.testing.assert_allclose(a, b, atol=1e-5)
        # Softmax on top of probabilities is another number: the scale matters.
        wrong = function(softmax_model, images, saliency, steps=6, from_logits=True)
        assert np.abs(wrong - b).max() > 1e-3


def test_class_index_equals_the_loop_and_a_numpy_curve(twins):
    _, logits_model, _, images = twins
    saliency = np.random.default_rng(2).random((3, 4, 4))
    for cls in (2, np.array([0, 3, 1])):
        for batched, loop in (
            (metrics.deletion_auc, faithfulness.deletion_auc_loop),
            (metrics.insertion_auc, faithfulness.insertion_auc_loop),
        ):
            auc, curves = batched(logits_model, images, saliency, steps=5, class_index=cls,
                                  return_curves=True)
            ref, ref_curves = loop(logits_model, images, saliency, steps=5, class_index=cls,
                                   return_curves=True)
            np.testing.assert_allclose(curves, ref_curves, atol=1e-6)
            np.testing.assert_allclose(auc, ref, atol=1e-6)
    # Independent: the intact point of the deletion curve is p(class | image).
    logits = keras.ops.convert_to_numpy(logits_model(images)).astype("float64")
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    _, curves = metrics.deletion_auc(logits_model, images, saliency, steps=5,
                                     class_index=[0, 3, 1], return_curves=True, start_point=True)
    np.testing.assert_allclose(curves[:, 0], probs[[0, 1, 2], [0, 3, 1]], rtol=1e-5)
    default = metrics.deletion_auc(logits_model, images, saliency, steps=5)
    predicted = metrics.deletion_auc(logits_model, images, saliency, steps=5,
                                     class_index=probs.argmax(axis=1))
    np.testing.assert_allclose(default, predicted)


def test_insertion_baselines(twins):
    _, logits_model, _, images = twins
    saliency = np.random.default_rng(3).random((3, 4, 4))
    blurred = metrics.box_blur(images, metrics.default_blur_kernel_size(SIZE, SIZE))
    default = metrics.insertion_auc(logits_model, images, saliency, steps=4)
    as_array = metrics.insertion_auc(logits_model, images, saliency, steps=4, baseline=blurred)
    as_callable = metrics.insertion_auc(
        logits_model, images, saliency, steps=4,
        baseline=lambda x: metrics.box_blur(x, metrics.default_blur_kernel_size(SIZE, SIZE)))
    np.testing.assert_allclose(as_array, default, atol=1e-7)
    np.testing.assert_allclose(as_callable, default, atol=1e-7)
    grey, curves = metrics.insertion_auc(logits_model, images, saliency, steps=4, baseline=127.0,
                                         return_curves=True, start_point=True)
    ref, ref_curves = faithfulness.insertion_auc_loop(
        logits_model, images, saliency, steps=4, baseline=127.0, return_curves=True,
        start_point=True)
    np.testing.assert_allclose(curves, ref_curves, atol=1e-6)
    # Step 0 is the constant image.
    logits = keras.ops.convert_to_numpy(logits_model(np.full_like(images, 127.0))).astype("float64")
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predicted = keras.ops.convert_to_numpy(logits_model(images)).argmax(axis=1)
    np.testing.assert_allclose(curves[:, 0], probs[np.arange(3), predicted], rtol=1e-5)
    assert not np.allclose(grey, default)


def test_deletion_to_the_mean_colour(twins):
    _, logits_model, _, images = twins
    saliency = np.random.default_rng(9).random((3, 4, 4))
    mean = metrics.deletion_auc(logits_model, images, saliency, steps=4, baseline="mean")
    # Each image's own mean colour (issue 20: never the batch's).
    own = np.broadcast_to(images.astype("float64").mean(axis=(1, 2), keepdims=True), images.shape)
    by_hand = metrics.deletion_auc(logits_model, images, saliency, steps=4, baseline=own)
    np.testing.assert_allclose(mean, by_hand, atol=1e-6)
    black = metrics.deletion_auc(logits_model, images, saliency, steps=4)
    assert not np.allclose(mean, black)
    with pytest.raises(ValueError, match="argument baseline"):
        metrics.deletion_auc(logits_model, images, saliency, baseline="median")


# ------------------------------------------------------------- any map size
def test_saliency_grid_rule():
    grid = metrics.saliency_grid
    assert grid((15, 15), (64, 64)) == (16, 16)  # finer, never coarser
    assert grid((8, 8), (64, 64)) == (8, 8)  # tiles: kept
    assert grid((64, 64), (64, 64)) == (32, 32)  # 4096 cells > 56 * 56: both axes shrink
    assert grid((64, 64), (64, 64), max_cells=None) == (64, 64)
    assert grid((56, 56), (448, 448), max_cells=None) == (56, 56)
    assert grid((5, 7), (24, 30)) == (6, 10)
    assert grid((100, 3), (64, 64), max_cells=64) == (16, 4)  # the axis with more cells shrinks
    assert grid((64, 32), (64, 64), max_cells=64) == (8, 8)
    for (h, w), (height, width) in [((15, 9), (64, 48)), ((64, 96), (64, 96)), ((3, 50), (30, 40))]:
        gh, gw = grid((h, w), (height, width))
        assert height % gh == 0 and width % gw == 0 and gh * gw <= metrics.MAX_CELLS


def test_fit_saliency_block_means_and_bilinear():
    maps = np.random.default_rng(4).random((2, 64, 64))
    pooled = metrics.fit_saliency(maps, (64, 64))
    np.testing.assert_allclose(pooled, maps.reshape(2, 32, 2, 32, 2).mean(axis=(2, 4)))
    fifteen = np.random.default_rng(5).random((1, 15, 15))
    fitted = metrics.fit_saliency(fifteen, (64, 64))
    expected = keras_brnpa.explain.upsample(fifteen, (16, 16))
    np.testing.assert_allclose(fitted, expected, atol=1e-6)


def test_non_tiling_and_large_maps_equal_the_loop(twins):
    _, logits_model, _, images = twins
    fifteen = np.random.default_rng(6).random((3, 15, 15))
    auc, curves = metrics.deletion_auc(logits_model, images, fifteen, steps=7, return_curves=True)
    ref, ref_curves = faithfulness.deletion_auc_loop(logits_model, images, fifteen, steps=7,
                                                     return_curves=True)
    np.testing.assert_allclose(curves, ref_curves, atol=1e-6)
    # A pixel-size map (upsample=True) cannot make the number of steps explode.
    pixel = np.random.default_rng(7).random((1, SIZE, SIZE))
    _, curves = metrics.insertion_auc(logits_model, images[:1], pixel, return_curves=True,
                                      max_cells=64)
    assert curves.shape == (1, 64)
    ref = faithfulness.insertion_auc_loop(logits_model, images[:1], pixel, max_cells=64)
    np.testing.assert_allclose(np.trapezoid(curves[0], dx=1 / 63), ref[0], atol=1e-6)


# --------------------------------------------------------- subclassed models
class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 3, strides=2, activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return keras.ops.softmax(self.dense(self.pool(self.conv(x))))


def test_subclassed_model_forward_methods_work_gradient_methods_explain_why():
    keras.utils.set_random_seed(1)
    model = Subclassed()
    images = np.random.default_rng(8).random((2, SIZE, SIZE, 3)).astype("float32")
    saliency = explain.rise(model, images, n_masks=8, batch_size=8, upsample=(8, 8))
    assert saliency.shape == (2, 8, 8)
    # Its outputs are probabilities (detected from the outputs): not softmaxed again.
    auto = metrics.deletion_auc(model, images, saliency, steps=4)
    as_probs = metrics.deletion_auc(model, images, saliency, steps=4, from_logits=False)
    np.testing.assert_allclose(auto, as_probs)
    for method in ("gradcam", "scorecam", "eigencam"):
        with pytest.raises(ValueError, match=r"argument model.*subclassed.*RISE"):
            explain.explain(method, model, images)
