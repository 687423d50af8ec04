"""ResNets from keras-hub (the optional ``keras-hub`` extra), every backend."""

import numpy as np
import pytest
from helpers import to_numpy

from keras_brnpa import models

keras_hub = pytest.importorskip(
    "keras_hub", reason="keras-hub is not installed (pip install 'keras-brnpa[keras-hub]')"
)

SHAPE = (64, 64, 3)


def test_low_and_high_resolution_tiny():
    low = models.build_backbone("tiny", input_shape=SHAPE, source="keras_hub")
    high = models.build_backbone("tiny", resolution="high", input_shape=SHAPE, source="keras_hub")
    assert isinstance(low, keras_hub.models.ResNetBackbone)
    assert low.output_shape == (None, 2, 2, 128)
    assert high.output_shape == (None, 8, 8, 128)
    assert low.count_params() == high.count_params()
    assert list(high.get_config()["stackwise_num_strides"]) == [1, 2, 1, 1]
    x = np.random.default_rng(0).random((2,) + SHAPE).astype("float32")
    assert to_numpy(high(x)).shape == (2, 8, 8, 128)


def test_to_high_resolution_of_a_keras_hub_classifier():
    low = models.build_classifier(
        3, backbone=models.build_backbone("tiny", input_shape=SHAPE, source="keras_hub")
    )
    high = models.to_high_resolution(low)
    assert models.feature_shape(low) == (2, 2, 128)
    assert models.feature_shape(high) == (8, 8, 128)
    for a, b in zip(low.get_weights(), high.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(1).random((2,) + SHAPE).astype("float32")
    assert to_numpy(high(x)).shape == (2, 3)


def test_keras_hub_errors_and_presets():
    with pytest.raises(ValueError, match="argument source"):
        models.build_backbone("tiny", source="timm")
    with pytest.raises(ValueError, match="argument include_rescaling"):
        models.build_backbone("tiny", include_rescaling=True, source="keras_hub")
    with pytest.raises(ValueError, match="argument weights.*keras-hub preset"):
        models.build_backbone("resnet18", weights="resnet18_imagenet", source="keras_hub")
    try:  # offline here: a clear message (or the weights when online/cached)
        bb = models.build_backbone(
            "resnet18", weights="resnet_18_imagenet", input_shape=SHAPE, source="keras_hub"
        )
    except RuntimeError as error:
        assert "weights='resnet_18_imagenet'" in str(error) and "internet" in str(error)
    else:
        assert bb.output_shape[-1] == 512
