"""distill() and brnpa distill share the measured recipe (RECIPE_DEFAULTS)."""

import inspect
import json
import os

import keras
import numpy as np
import pytest

import keras_brnpa
from keras_brnpa import cli
from keras_brnpa.cli import demo as demo_command
from keras_brnpa.distillation import PAPER_DEFAULTS
from keras_brnpa.distillation import RECIPE_DEFAULTS


def test_recipe_and_paper_values():
    # docs/distillation.md, "Which recipe" and "Third study": T = 1, alpha = 0.1,
    # Adam + cosine from 3e-3.
    assert RECIPE_DEFAULTS["temperature"] == 1.0 and RECIPE_DEFAULTS["alpha"] == 0.1
    assert RECIPE_DEFAULTS["optimizer"] == "adam" and RECIPE_DEFAULTS["learning_rate"] == 3e-3
    # brnpa demo distills with the same values (its settings are literals:
    # the CLI's module imports no backend).
    for settings in demo_command.SETTINGS.values():
        assert (settings["distill_learning_rate"], settings["temperature"],
                settings["alpha"]) == (3e-3, 1.0, 0.1)
    # The paper's values stay available.
    assert (PAPER_DEFAULTS["optimizer"], PAPER_DEFAULTS["learning_rate"],
            PAPER_DEFAULTS["momentum"]) == ("SGD", 1e-3, 0.9)
    sgd = keras_brnpa.distillation.paper_optimizer()
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.9
    defaults = inspect.signature(keras_brnpa.distillation.distill).parameters
    assert defaults["temperature"].default == RECIPE_DEFAULTS["temperature"]
    assert defaults["alpha"].default == RECIPE_DEFAULTS["alpha"]


def test_recipe_optimizer_decays_to_zero():
    opt = keras_brnpa.distillation.recipe_optimizer(10)
    schedule = opt._learning_rate
    assert isinstance(opt, keras.optimizers.Adam)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    values = [float(schedule(step)) for step in (0, 5, 10)]
    # Cosine from 3e-3: 3e-3 * (1 + cos(pi * t / T)) / 2.
    np.testing.assert_allclose(values, [3e-3, 1.5e-3, 0.0], atol=1e-9)
    with pytest.raises(ValueError, match="decay_steps"):
        keras_brnpa.distillation.recipe_optimizer(0)
    with pytest.raises(ValueError, match="learning_rate"):
        keras_brnpa.distillation.recipe_optimizer(5, learning_rate=-1.0)
    # Any real number, NumPy scalars too (e.g. read from an array of a
    # search); not a bool, NaN or infinity.
    for value in (np.float32(2e-3), np.float64(2e-3), np.int64(2)):
        start = keras_brnpa.distillation.recipe_optimizer(4, learning_rate=value)._learning_rate(0)
        assert float(start) == pytest.approx(float(value))
    for value in (True, np.bool_(True), float("nan"), float("inf"), "1e-3"):
        with pytest.raises(ValueError, match="learning_rate"):
            keras_brnpa.distillation.recipe_optimizer(5, learning_rate=value)


def _teacher():
    keras.utils.set_random_seed(0)
    return keras_brnpa.models.build_classifier(3, backbone="tiny", input_shape=(64, 64, 3))


def test_distill_defaults_are_the_recipe():
    teacher = _teacher()
    images = np.random.default_rng(0).random((6, 64, 64, 3)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2])
    _, history = keras_brnpa.distillation.distill(
        teacher, (images, labels), epochs=2, batch_size=4, verbose=0, run_eagerly=True)
    distiller = history.model
    assert (distiller.temperature, distiller.alpha) == (1.0, 0.1)
    opt = distiller.optimizer
    assert isinstance(opt, keras.optimizers.Adam)
    schedule = opt._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.initial_learning_rate == RECIPE_DEFAULTS["learning_rate"]
    # 2 epochs x ceil(6 / 4) steps: the learning rate has decayed to 0.
    assert schedule.decay_steps == 4 and int(opt.iterations) == 4
    assert float(opt.learning_rate) == pytest.approx(0.0, abs=1e-9)
    # A generator of unknown length needs an optimizer or steps_per_epoch.
    with pytest.raises(ValueError, match="optimizer"):
        keras_brnpa.distillation.distill(teacher, iter([(images, labels)]), epochs=1, verbose=0)


@pytest.mark.backend_neutral  # the CLI's output and files (tests/conftest.py)
def test_cli_distill_reads_the_same_defaults(tmp_path, capsys):
    teacher = _teacher()
    path = str(tmp_path / "teacher.keras")
    teacher.save(path)
    out = str(tmp_path / "student")
    code = cli.main(["distill", "--teacher", path, "--num-images", "8", "--num-classes", "3",
                     "--epochs", "1", "--batch-size", "4", "--eager", "--quiet",
                     "--output", out])
    assert code == 0, capsys.readouterr().err
    with open(os.path.join(out, "run.json")) as f:
        config = json.load(f)["config"]
    assert config["temperature"] == RECIPE_DEFAULTS["temperature"]
    assert config["alpha"] == RECIPE_DEFAULTS["alpha"]
    assert config["optimizer"] == RECIPE_DEFAULTS["optimizer"]
    assert config["learning_rate"] == RECIPE_DEFAULTS["learning_rate"]
