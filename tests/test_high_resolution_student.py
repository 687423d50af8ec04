"""Tests of keras_brnpa.distillation.build_high_resolution_student (init=...)."""

import keras
import numpy as np
import pytest
from helpers import to_numpy

import keras_brnpa
from keras_brnpa import distillation
from keras_brnpa import models

SHAPE = (64, 64, 3)


@pytest.fixture(scope="module")
def teacher():
    keras.utils.set_random_seed(0)
    return models.build_classifier(4, backbone="tiny", head="brnpa", n_parts=3, input_shape=SHAPE)


def images(n=2, seed=0):
    return np.random.default_rng(seed).random((n,) + SHAPE).astype("float32")


def conv_kernels(model):
    """The 4-D (convolution) weights of a model's backbone, in order."""
    return [w for w in model.get_layer("backbone").get_weights() if w.ndim == 4]


def assert_high_resolution_twin(teacher, student):
    x = images()
    assert student.output_shape == teacher.output_shape
    assert to_numpy(student(x)).shape == (2, 4)
    low = to_numpy(models.attention_model(teacher)(x)["attention_maps"])
    high = to_numpy(models.attention_model(student)(x)["attention_maps"])
    assert low.shape == (2, 2, 2, 3)
    assert high.shape == (2, 8, 8, 3)  # 4x finer per side


def test_teacher_init_copies_every_weight(teacher):
    before = [w.copy() for w in teacher.get_weights()]
    student = distillation.build_high_resolution_student(teacher)  # init="teacher"
    assert_high_resolution_twin(teacher, student)
    assert student.name == f"{teacher.name}_high_resolution"
    teacher_w, student_w = teacher.get_weights(), student.get_weights()
    assert len(teacher_w) == len(student_w)
    for a, b in zip(teacher_w, student_w):
        np.testing.assert_array_equal(a, b)
    # Copies, not shared variables: training the student leaves the teacher.
    student.get_layer("logits").kernel.assign(np.zeros(student.get_layer("logits").kernel.shape))
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_random_init_gives_fresh_weights(teacher):
    student = distillation.build_high_resolution_student(teacher, init="random", name="fresh")
    assert student.name == "fresh"
    assert_high_resolution_twin(teacher, student)
    for a, b in zip(conv_kernels(teacher), conv_kernels(student)):
        assert a.shape == b.shape and not np.allclose(a, b)
    assert not np.allclose(
        to_numpy(teacher.get_layer("logits").kernel), to_numpy(student.get_layer("logits").kernel)
    )
    # Two calls give two different draws.
    other = distillation.build_high_resolution_student(teacher, init="random")
    assert not np.allclose(conv_kernels(student)[0], conv_kernels(other)[0])


@pytest.mark.parametrize("kind", ["weights.h5", "keras"])
def test_backbone_init_from_a_weights_file(teacher, tmp_path, kind):
    keras.utils.set_random_seed(7)
    original = models.build_backbone("tiny", input_shape=SHAPE)  # "pretrained" weights
    if kind == "keras":
        path = str(tmp_path / "pretrained.keras")
        classifier = models.build_classifier(9, backbone=original, head="gap")
        classifier.save(path)
    else:
        path = str(tmp_path / "pretrained.weights.h5")
        original.save_weights(path)
    student = distillation.build_high_resolution_student(
        teacher, init="backbone", backbone_weights=path
    )
    assert_high_resolution_twin(teacher, student)
    got = student.get_layer("backbone").get_weights()
    expected = original.get_weights()
    assert len(got) == len(expected)
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)
    # Not the teacher's backbone, and a fresh head / last layer.
    for a, b in zip(conv_kernels(teacher), conv_kernels(student)):
        assert not np.allclose(a, b)
    assert not np.allclose(
        to_numpy(teacher.get_layer("logits").kernel), to_numpy(student.get_layer("logits").kernel)
    )


def test_backbone_init_without_original_weights_says_so(teacher):
    with pytest.raises(ValueError, match=r"argument init.*'tiny'.*backbone_weights"):
        distillation.build_high_resolution_student(teacher, init="backbone")


def test_backbone_init_uses_the_imagenet_preset_and_fails_clearly_offline(monkeypatch):
    import keras_cv

    asked = []

    def offline(cls, preset, **kwargs):
        asked.append(preset)
        raise OSError("no network")

    monkeypatch.setattr(keras_cv.models.ResNetBackbone, "from_preset", classmethod(offline))
    small = (32, 32, 3)
    teacher = models.build_classifier(3, backbone="resnet50", head="gap", input_shape=small)
    with pytest.raises(RuntimeError, match="Could not load the keras-cv preset.*resnet50_imagenet"):
        distillation.build_high_resolution_student(teacher, init="backbone")
    assert asked == ["resnet50_imagenet"]


def test_backbone_weights_of_another_architecture_are_refused(tmp_path):
    path = str(tmp_path / "tiny.weights.h5")
    models.build_backbone("tiny", input_shape=SHAPE).save_weights(path)
    resnet18 = models.build_classifier(4, backbone="resnet18", head="gap", input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="argument backbone_weights.*resnet18"):
        distillation.build_high_resolution_student(
            resnet18, init="backbone", backbone_weights=path
        )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"init": "imagenet"}, "init"),
        ({"init": "teacher", "backbone_weights": "resnet50_imagenet"}, "backbone_weights"),
        ({"init": "random", "backbone_weights": "x.weights.h5"}, "backbone_weights"),
        ({"init": "backbone", "backbone_weights": 3}, "backbone_weights"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_arguments(teacher, kwargs, name):
    with pytest.raises(ValueError, match=f"argument {name}.*Received: {name}="):
        distillation.build_high_resolution_student(teacher, **kwargs)


def test_invalid_teacher():
    with pytest.raises(ValueError, match="argument teacher"):
        distillation.build_high_resolution_student("model.keras")
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="argument model"):
        distillation.build_high_resolution_student(plain, init="random")


def test_exported():
    assert keras_brnpa.distillation.build_high_resolution_student is (
        distillation.recipe.build_high_resolution_student
    )
    assert distillation.STUDENT_INITS == ("teacher", "backbone", "random")
    assert distillation.IMAGENET_PRESETS["keras_cv"] == {"resnet50": "resnet50_imagenet"}


def test_keras_hub_backbone_init_from_file_and_preset(tmp_path, monkeypatch):
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(3)
    original = models.build_backbone("tiny", input_shape=SHAPE, source="keras_hub")
    path = str(tmp_path / "hub.weights.h5")
    original.save_weights(path)
    teacher = models.build_classifier(
        4, backbone=models.build_backbone("tiny", input_shape=SHAPE, source="keras_hub"),
        head="brnpa", n_parts=3,
    )
    student = distillation.build_high_resolution_student(
        teacher, init="backbone", backbone_weights=path
    )
    assert_high_resolution_twin(teacher, student)
    for a, b in zip(original.get_weights(), student.get_layer("backbone").get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"argument init.*'tiny', keras_hub"):
        distillation.build_high_resolution_student(teacher, init="backbone")
    # A keras-hub ResNet-50: the default is keras-hub's ImageNet preset.
    asked = []

    def offline(cls, preset, **kwargs):
        asked.append(preset)
        raise OSError("no network")

    monkeypatch.setattr(keras_hub.models.ResNetBackbone, "from_preset", classmethod(offline))
    hub50 = models.build_classifier(
        3, backbone=models.build_backbone("resnet50", input_shape=(32, 32, 3), source="keras_hub"),
        head="gap",
    )
    with pytest.raises(RuntimeError, match="resnet_50_imagenet"):
        distillation.build_high_resolution_student(hub50, init="backbone")
    assert asked == ["resnet_50_imagenet"]


def test_any_cnn_teacher(tmp_path):
    # A keras.applications CNN: teacher and random starts work, "backbone" says why not.
    net = keras.applications.MobileNetV2(input_shape=(64, 64, 3), include_top=False, weights=None)
    teacher = models.build_classifier(3, backbone=net, head="gap")
    for init in ("teacher", "random"):
        student = distillation.build_high_resolution_student(teacher, init=init)
        assert models.feature_shape(student)[:2] == (8, 8)
        same = np.array_equal(conv_kernels(teacher)[0], conv_kernels(student)[0])
        assert same == (init == "teacher")
    with pytest.raises(ValueError, match="ResNetBackbone for init='backbone'"):
        distillation.build_high_resolution_student(teacher, init="backbone")
