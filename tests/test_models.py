import os

import keras
import numpy as np
import pytest
from helpers import to_numpy
from reference import brnpa_numpy

import keras_brnpa
from keras_brnpa import models

SHAPE = (64, 64, 3)


@pytest.fixture(scope="module")
def low_classifier():
    keras.utils.set_random_seed(0)
    return models.build_classifier(4, backbone="tiny", input_shape=SHAPE)


@pytest.mark.parametrize(
    "name, blocks, channels",
    [("resnet18", 8, 512), ("resnet50", 16, 2048)],
)
def test_resnet_configurations(name, blocks, channels):
    low = models.build_backbone(name, input_shape=(224, 224, 3))
    high = models.build_backbone(name, resolution="high", input_shape=(224, 224, 3))
    assert low.output_shape == (None, 7, 7, channels)
    assert high.output_shape == (None, 28, 28, channels)
    assert low.count_params() == high.count_params()
    n_blocks = len([l for l in low.layers if l.name.endswith("_add")])
    assert n_blocks == blocks


def test_custom_strides_and_tiny():
    bb = models.build_backbone("tiny", strides=(1, 1, 1, 1), input_shape=SHAPE)
    assert bb.output_shape == (None, 16, 16, 128)


def test_to_high_resolution_keeps_weights(low_classifier):
    high = models.to_high_resolution(low_classifier)
    assert models.feature_shape(low_classifier) == (2, 2, 128)
    assert models.feature_shape(high) == (8, 8, 128)  # 4x per side
    for a, b in zip(low_classifier.get_weights(), high.get_weights()):
        np.testing.assert_array_equal(a, b)
    strides = high.get_layer("backbone").get_config()["stackwise_strides"]
    assert list(strides) == [1, 2, 1, 1]
    # The original model is untouched.
    assert low_classifier.get_layer("backbone").get_config()["stackwise_strides"] == [1, 2, 2, 2]
    x = np.random.default_rng(0).random((2,) + SHAPE).astype("float32")
    assert to_numpy(high(x)).shape == (2, 4)


@pytest.mark.parametrize(
    "application", ["MobileNetV2", "ResNet50V2", "ConvNeXtTiny"]
)
def test_to_high_resolution_keras_applications(application):
    net = getattr(keras.applications, application)(
        input_shape=SHAPE, include_top=False, weights=None
    )
    high = models.to_high_resolution(net)
    assert net.output_shape[1:3] == (2, 2)
    assert high.output_shape[1:3] == (8, 8)  # 4x per side
    assert high.output_shape[-1] == net.output_shape[-1]
    low_weights, high_weights = net.get_weights(), high.get_weights()
    assert len(low_weights) == len(high_weights)
    for a, b in zip(low_weights, high_weights):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).random((1,) + SHAPE).astype("float32")
    assert to_numpy(high(x)).shape == (1, 8, 8, net.output_shape[-1])


def test_to_high_resolution_classifier_around_application():
    net = keras.applications.MobileNetV2(input_shape=SHAPE, include_top=False, weights=None)
    low = models.build_classifier(3, backbone=net, n_parts=2)
    high = models.to_high_resolution(low)
    assert models.feature_shape(low) == (2, 2, 1280)
    assert models.feature_shape(high) == (8, 8, 1280)
    for a, b in zip(low.get_weights(), high.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Stages before the last two downsampling steps compute the same maps.
    x = np.random.default_rng(2).random((1,) + SHAPE).astype("float32")
    name = "block_5_add"  # stride 8 in MobileNetV2, before the changed steps
    def cut(model):
        backbone = model.get_layer("backbone")
        return keras.Model(backbone.inputs, backbone.get_layer(name).output)

    np.testing.assert_allclose(to_numpy(cut(high)(x)), to_numpy(cut(low)(x)), rtol=1e-5, atol=1e-5)


def test_to_high_resolution_clear_errors():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3, strides=2)

        def call(self, x):
            return self.conv(x)

    with pytest.raises(ValueError, match="subclassed"):
        models.to_high_resolution(Subclassed())
    flat = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(4, 3, strides=2, padding="same"),
        keras.layers.Conv2D(4, 3, strides=2, padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dense(2),
    ])
    with pytest.raises(ValueError, match="weights do not fit"):
        models.to_high_resolution(flat)
    net = keras.applications.MobileNetV2(input_shape=SHAPE, include_top=False, weights=None)
    with pytest.raises(ValueError, match="argument strides"):
        models.to_high_resolution(net, strides=(1, 1, 1, 1))


def test_attention_model_outputs_match_layer(low_classifier):
    high = models.to_high_resolution(low_classifier)
    x = np.random.default_rng(1).random((2,) + SHAPE).astype("float32")
    out = models.attention_model(high)(x)
    feats = to_numpy(out["features"])
    ref_v, ref_maps, ref_norm = brnpa_numpy(feats, 3)
    np.testing.assert_allclose(to_numpy(out["attention_maps"]), ref_maps, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_numpy(out["feature_norm"]), ref_norm - 1e-5, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(to_numpy(out["logits"]), to_numpy(high(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("head, parts", [("bcnn", 2), ("gap", 1)])
def test_other_heads(head, parts):
    model = models.build_classifier(3, backbone="tiny", head=head, n_parts=2, input_shape=SHAPE)
    x = np.random.default_rng(2).random((2,) + SHAPE).astype("float32")
    out = models.attention_model(model)(x)
    assert to_numpy(out["attention_maps"]).shape == (2, 2, 2, parts)
    np.testing.assert_allclose(to_numpy(out["logits"]), to_numpy(model(x)), rtol=1e-5, atol=1e-5)
    if head == "gap":
        np.testing.assert_allclose(
            to_numpy(out["attention_maps"])[..., 0],
            np.linalg.norm(to_numpy(out["features"]), axis=-1),
            rtol=1e-5,
            atol=1e-6,
        )


def test_user_backbone_fit_and_save(tmp_path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    backbone = keras.Model(inputs, x, name="mine")
    model = models.build_classifier(3, backbone=backbone, n_parts=2)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(3)
    xs = rng.random((8, 32, 32, 3)).astype("float32")
    model.fit(xs, rng.integers(0, 3, 8), epochs=1, verbose=0)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(xs)), to_numpy(model(xs)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="argument model"):
        models.to_high_resolution(model)


def test_weights_file_and_errors(tmp_path):
    bb = models.build_backbone("tiny", input_shape=SHAPE)
    path = os.path.join(tmp_path, "bb.weights.h5")
    bb.save_weights(path)
    again = models.build_backbone("tiny", resolution="high", weights=path, input_shape=SHAPE)
    for a, b in zip(bb.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="argument name"):
        models.build_backbone("resnet7")
    with pytest.raises(ValueError, match="argument resolution"):
        models.build_backbone("tiny", resolution="medium")
    with pytest.raises(ValueError, match="argument strides"):
        models.build_backbone("tiny", strides=(1, 2))
    with pytest.raises(ValueError, match="argument weights"):
        models.build_backbone("tiny", weights="no_such_preset")
    with pytest.raises(ValueError, match="argument weights"):
        models.build_backbone("tiny", weights=os.path.join(tmp_path, "missing.weights.h5"))
    with pytest.raises(ValueError, match="argument head"):
        models.build_classifier(3, backbone="tiny", head="transformer")
    with pytest.raises(ValueError, match="argument num_classes"):
        models.build_classifier(0, backbone="tiny")
    with pytest.raises(ValueError, match="argument backbone"):
        models.build_classifier(3, backbone=keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_preset_offline_gives_clear_error():
    # No network here: a real preset name must fail with a clear message
    # (or succeed if the preset is cached/online).
    try:
        bb = models.build_backbone("resnet18", weights="resnet18", input_shape=SHAPE)
    except RuntimeError as error:
        assert "weights='resnet18'" in str(error) and "internet" in str(error)
    else:
        assert bb.output_shape[-1] == 512


def test_sequential_usage_readme():
    model = keras.Sequential()
    model.add(keras.Input((32, 32, 3)))
    model.add(keras.layers.Conv2D(8, 3, strides=2, activation="relu"))
    model.add(keras_brnpa.BRNPAAttention(n_parts=3))
    model.add(keras.layers.Dense(10))
    assert model.output_shape == (None, 10)


def test_head_options_reach_the_head_layer():
    x = np.random.default_rng(5).random((2,) + SHAPE).astype("float32")

    def pooled(options):
        keras.utils.set_random_seed(3)
        model = models.build_classifier(3, backbone="tiny", head="bcnn", input_shape=SHAPE,
                                        head_options=options)
        vectors = keras.Model(model.inputs, model.get_layer("dropout").input)
        return model, to_numpy(vectors(x))

    model, scaled = pooled({"scale": "auto"})
    _, unit = pooled(None)
    assert model.get_layer("head").scale == "auto"
    # The same weights; "auto" multiplies the unit vectors by sqrt(D).
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(scaled, unit * np.sqrt(unit.shape[1]), rtol=1e-4, atol=1e-6)
    embedding = models.build_embedding_model(backbone="tiny", head="brnpa", input_shape=SHAPE,
                                             head_options={"epsilon": 1e-3})
    assert embedding.get_layer("head").epsilon == 1e-3
    cases = [
        ("gap", {"scale": 2.0}, "head='gap'"),
        ("bcnn", ["scale"], "a dict"),
        ("bcnn", {"n_parts": 2}, "n_parts"),
        ("bcnn", {"not_an_option": 1}, "BilinearAttentionPooling"),
        ("bcnn", {"scale": -1.0}, "argument scale"),
        ("brnpa", {"seed": 1}, "seed"),
    ]
    for head, options, hint in cases:
        with pytest.raises(ValueError, match=f"argument head_options(?s:.*){hint}"):
            models.build_classifier(3, backbone="tiny", head=head, input_shape=SHAPE,
                                    head_options=options)
