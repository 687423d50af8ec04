import os
import sys

import keras
import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts with float32 and channels_last."""
    yield
    keras.mixed_precision.set_global_policy("float32")
    keras.config.set_image_data_format("channels_last")


def backend():
    return keras.config.backend()
