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


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "backend_neutral: what the test checks does not depend on the backend "
        "(an example script, the command line's end-to-end output and files); it runs "
        "once per suite, under torch (NEUTRAL_BACKEND), and is skipped under the others",
    )


# The one backend that runs the backend-neutral tests (the cheapest of the
# three for whole scripts on CI's CPU).
NEUTRAL_BACKEND = "torch"


def pytest_collection_modifyitems(config, items):
    if keras.config.backend() == NEUTRAL_BACKEND:
        return
    skip = pytest.mark.skip(
        reason=f"backend-neutral (see tests/conftest.py): runs once, under {NEUTRAL_BACKEND}"
    )
    for item in items:
        if "backend_neutral" in item.keywords:
            item.add_marker(skip)


def backend():
    return keras.config.backend()
