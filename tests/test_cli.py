"""Tests of the ``brnpa`` command line (keras_brnpa.cli)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import keras_brnpa
from keras_brnpa import cli
from keras_brnpa.cli import explain as explain_command
from keras_brnpa.cli import demo as demo_command

TRAIN = ["--image-size", "64", "--num-images", "16", "--num-classes", "3",
         "--batch-size", "16", "--resolution", "low", "--eager", "--quiet"]


def _run(argv, capsys, callbacks=None):
    code = cli.main(argv, callbacks=callbacks)
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


class _InterruptAfterFirstEpoch(keras.callbacks.Callback):
    """Simulates Ctrl-C right after the first epoch has been saved."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt


def _history(folder):
    with open(os.path.join(folder, "history.json")) as f:
        return json.load(f)["epochs"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 2-epoch run and one interrupted after epoch 1, resumed."""
    root = tmp_path_factory.mktemp("runs")
    whole, broken = str(root / "whole"), str(root / "broken")
    assert cli.main(["train", *TRAIN, "--epochs", "2", "--output", whole]) == 0
    state = {"interrupted": cli.main(["train", *TRAIN, "--epochs", "2", "--output", broken],
                                     callbacks=[_InterruptAfterFirstEpoch()])}
    state["history_before"] = _history(broken)
    state["resumed"] = cli.main(["train", *TRAIN, "--epochs", "2", "--output", broken])
    return whole, broken, state


def test_resume_after_interruption_ends_like_an_uninterrupted_run(runs):
    whole, broken, state = runs
    assert state["interrupted"] == cli.EXIT_INTERRUPTED
    assert [e["epoch"] for e in state["history_before"]] == [1]
    assert state["resumed"] == 0
    resumed, reference = _history(broken), _history(whole)
    assert [e["epoch"] for e in resumed] == [1, 2] == [e["epoch"] for e in reference]
    assert resumed[0] == state["history_before"][0]
    np.testing.assert_allclose(resumed[1]["loss"], reference[1]["loss"], rtol=1e-4)
    with open(os.path.join(broken, "run.json")) as f:
        run = json.load(f)
    assert run["status"] == "finished" and run["epochs_done"] == 2
    assert run["class_names"] == keras_brnpa.datasets.class_names(3)
    model = keras.models.load_model(os.path.join(broken, "model.keras"))
    assert model.output_shape == (None, 3)
    # Only the settings that applied to a synthetic run (no --validation-split).
    assert set(run["config"]) == {
        "image_size", "batch_size", "seed", "epochs", "optimizer", "learning_rate", "backbone",
        "head", "resolution", "dropout", "weights", "n_parts", "dataset", "num_images",
        "num_classes", "augment"}
    assert run["config"]["augment"] is False
    assert run["config"]["optimizer"] == "adam" and run["config"]["learning_rate"] == 2e-3
    # A finished run leaves no lock behind.
    for folder in (whole, broken):
        assert not os.path.exists(os.path.join(folder, ".brnpa.lock"))


def test_finished_run_is_not_overwritten(runs, capsys):
    whole, _, _ = runs
    path = os.path.join(whole, "model.keras")
    stamp = os.stat(path).st_mtime_ns
    code, _, err = _run(["train", *TRAIN, "--epochs", "2", "--output", whole], capsys)
    assert code == cli.EXIT_ERROR
    assert "--overwrite" in _one_error_line(err)
    assert os.stat(path).st_mtime_ns == stamp


# ------------------------------------------------------------------ explain
def _write(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return str(path)


def test_explain_pictures_names_index_and_no_overwrite(runs, tmp_path, capsys):
    whole, _, _ = runs
    a = _write(tmp_path / "in" / "a" / "0.png", np.full((90, 200, 3), 120, "uint8"))
    b = _write(tmp_path / "in" / "b" / "0.png", np.full((64, 64, 3), 30, "uint8"))
    bad = tmp_path / "in" / "broken.jpg"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    argv = ["explain", a, b, str(bad), "--model", os.path.join(whole, "model.keras"),
            "--method", "brnpa,attention", "--method", "gradcam", "--output", str(out), "--quiet"]
    code, _, err = _run(argv, capsys)
    assert code == cli.EXIT_ERROR and "broken.jpg" in _one_error_line(err)
    index = json.loads((out / "explanations.json").read_text())
    assert index["methods"] == ["brnpa", "attention", "gradcam"]
    assert [e["input"] for e in index["images"]] == [a, b]
    names = keras_brnpa.datasets.class_names(3)
    for entry in index["images"]:
        assert entry["class_name"] == names[entry["class_index"]]
        assert 0 < entry["probability"] <= 1
        assert len(set(entry["outputs"].values())) == 3
    # Relative paths mirrored: a/0 and b/0 do not collide.
    picture = Image.open(out / "a" / "0_gradcam.png")
    width, height = picture.size
    assert max(width, height) >= 512 and width > 2 * height  # the 200x90 aspect, side by side
    assert (out / "b" / "0_attention.png").exists()
    stamp = os.stat(out / "a" / "0_gradcam.png").st_mtime_ns
    code, _, err = _run(argv[:3] + argv[4:], capsys)
    assert code == cli.EXIT_ERROR and "--overwrite" in _one_error_line(err)
    assert os.stat(out / "a" / "0_gradcam.png").st_mtime_ns == stamp


def test_read_image_16_bit_grayscale_and_rgba(tmp_path):
    wide = np.array([[0, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(wide).save(path)
    assert Image.open(path).mode.startswith("I")
    image = explain_command.read_image(str(path))
    np.testing.assert_allclose(image[0, :, 0], [0.0, 32768 / 65535, 1.0], atol=1e-6)
    assert image.shape == (1, 3, 3)
    rgba = np.zeros((2, 2, 4), "uint8")
    rgba[..., 0] = 255
    rgba[..., 3] = 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_allclose(explain_command.read_image(str(tmp_path / "rgba.png"))[0, 0],
                               [1.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def tutorial_model(tmp_path_factory):
    """A Keras-tutorial classifier: Rescaling(1/255) inside, softmax head; and its twin."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(3, name="dense")(x)
    softmax = keras.Model(inputs, keras.layers.Softmax()(logits))
    twin = keras.Model(inputs, logits)
    root = tmp_path_factory.mktemp("tutorial")
    softmax.save(root / "softmax.keras")
    twin.save(root / "logits.keras")
    return softmax, str(root / "softmax.keras"), str(root / "logits.keras")


def test_explain_reads_the_models_scale_and_softmax(tutorial_model, tmp_path, capsys):
    model, path, _ = tutorial_model
    pixels = np.random.default_rng(0).integers(0, 255, (32, 32, 3)).astype("uint8")
    image = _write(tmp_path / "x.png", pixels)
    code, _, err = _run(["explain", image, "--model", path, "--output", str(tmp_path / "o"),
                         "--quiet"], capsys)
    assert code == 0, err
    entry = json.loads((tmp_path / "o" / "explanations.json").read_text())["images"][0]
    expected = keras.ops.convert_to_numpy(model(pixels[None].astype("float32")))[0]
    assert entry["class_index"] == int(expected.argmax())
    assert entry["probability"] == pytest.approx(float(expected.max()), rel=1e-4)
    assert entry["outputs"] == {"gradcam": str(tmp_path / "o" / "x_gradcam.png")}


def test_evaluate_softmax_model_scores_like_its_logits_twin(tutorial_model, tmp_path, capsys):
    _, softmax_path, logits_path = tutorial_model
    scores = {}
    for name, path in (("softmax", softmax_path), ("logits", logits_path)):
        out = tmp_path / name
        code, _, err = _run(["evaluate", "--model", path, "--num-images", "6", "--num-classes",
                             "3", "--steps", "4", "--methods", "gradcam,rise", "--rise-masks",
                             "8", "--output", str(out), "--quiet"], capsys)
        assert code == 0, err
        scores[name] = json.loads((out / "metrics.json").read_text())["rows"]
        assert (out / "report.md").exists() and (out / "gallery.png").exists()
    for a, b in zip(scores["softmax"], scores["logits"]):
        assert a["iauc"] == pytest.approx(b["iauc"], abs=1e-5)
        assert a["dauc"] == pytest.approx(b["dauc"], abs=1e-5)


# -------------------------------------------------------- your own folder
@pytest.mark.backend_neutral  # the CLI's output and files (tests/conftest.py)
def test_train_and_evaluate_on_an_image_folder(tmp_path, capsys):
    pictures, labels, _ = keras_brnpa.datasets.synthetic_parts(24, 64, 2, seed=0)
    for i, (picture, label) in enumerate(zip(pictures, labels)):
        _write(tmp_path / "data" / ["oak", "elm"][label] / f"{i}.png",
               (picture * 255).round().astype("uint8"))
    out = tmp_path / "run"
    code, _, err = _run(["train", "--data", str(tmp_path / "data"), "--image-size", "64",
                         "--epochs", "1", "--batch-size", "8", "--eager", "--quiet",
                         "--output", str(out)], capsys)
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["class_names"] == ["elm", "oak"]
    assert run["config"]["data"] == str(tmp_path / "data")
    # --data at 64 px: low resolution would give 2x2 map cells; auto trains at high (8x8).
    assert run["config"]["resolution"] == "high"
    assert keras_brnpa.models.feature_shape(
        keras.models.load_model(out / "model.keras"))[:2] == (8, 8)
    # Only what applied to a folder run: no synthetic num_classes / num_images.
    assert not {"num_classes", "num_images", "dataset"} & set(run["config"])
    assert run["config"]["validation_split"] == 0.2
    code, stdout, err = _run(["evaluate", "--model", str(out / "model.keras"), "--data",
                              str(tmp_path / "data"), "--steps", "2", "--quiet"], capsys)
    assert code == 0, err
    assert "| brnpa |" in stdout


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "argv, code, words",
    [
        (["train", "--dataset", "no_such_set_xyz"], 2, ["--dataset", "no_such_set_xyz"]),
        (["train", "--backbone", "resnet7"], 2, ["--backbone", "resnet7"]),
        (["train", "--head", "mlp"], 2, ["--head", "mlp"]),
        (["train", "--epochs", "0"], 2, ["--epochs"]),
        (["train", "--dropout", "1.5"], 2, ["--dropout", "1.5"]),
        (["train", "--seed", "-1"], 2, ["--seed", "-1"]),
        (["train", "--num-classes", "1"], 2, ["--num-classes"]),
        (["train", "--image-size", "32", "--resolution", "low", "--num-images", "4"], 2,
         ["--n-parts 3", "--image-size 32", "1x1"]),
        (["train", "--image-size", "8", "--num-images", "4"], 2, ["--image-size"]),
        (["train", "--weights", "./missing.h5"], 2, ["--weights", "missing.h5"]),
        (["train", "--data", "MISSINGDIR"], 2, ["--data"]),
        (["explain", "x.png", "--model", "MISSING"], 2, ["IMAGE", "x.png"]),
        (["evaluate", "--model", "MISSING"], 1, ["--model", "not found"]),
        (["frobnicate"], 2, ["invalid choice"]),
    ],
)
def test_errors_name_the_option_and_touch_nothing(argv, code, words, tmp_path, capsys):
    argv = [a.replace("MISSINGDIR", str(tmp_path / "nodir"))
            .replace("MISSING", str(tmp_path / "missing.keras")) for a in argv]
    out = tmp_path / "out"
    if argv[0] == "train":
        argv += ["--output", str(out), "--eager", "--quiet"]
    got, _, err = _run(argv, capsys)
    assert got == code, err
    line = _one_error_line(err)
    assert line.startswith("brnpa")
    for word in words:
        assert word in line
    assert not out.exists()  # validated before the output folder is touched


def test_methods_errors_are_usage_errors(tutorial_model, capsys):
    _, path, _ = tutorial_model
    for methods, word in ((",", "no method"), ("gradcam,nope", "nope"),
                          ("attention", "build_classifier")):
        code, _, err = _run(["evaluate", "--model", path, "--methods", methods], capsys)
        assert code == cli.EXIT_USAGE, err
        assert word in _one_error_line(err) and "--methods" in err


def test_corrupt_and_truncated_model_files(tutorial_model, tmp_path, capsys):
    _, path, _ = tutorial_model
    random_bytes = tmp_path / "random.keras"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(2000))
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(open(path, "rb").read()[:1500])
    for bad in (random_bytes, truncated):
        code, _, err = _run(["evaluate", "--model", str(bad)], capsys)
        assert code == cli.EXIT_ERROR
        assert "not a valid .keras file" in _one_error_line(err)


def test_a_second_run_on_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from keras_brnpa import _lock\n"
         "with _lock.folder_lock(sys.argv[1]):\n"
         "    print('locked', flush=True)\n"
         "    time.sleep(60)\n", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = _run(["train", *TRAIN, "--epochs", "1", "--output", str(out)], capsys)
    finally:
        holder.kill()
        holder.wait()
    assert code == cli.EXIT_ERROR
    line = _one_error_line(err)
    assert "another brnpa command" in line and f"process {holder.pid}" in line
    assert not (out / "run.json").exists()
    # The holder was killed: its lock file stays, and the next command takes it over.
    assert (out / ".brnpa.lock").read_text().strip() == str(holder.pid)
    loud = [a for a in TRAIN if a != "--quiet"]
    code, _, err = _run(["train", *loud, "--epochs", "1", "--output", str(out)], capsys)
    assert code == 0, err
    assert err.splitlines()[-1] == (f"brnpa train: warning: {out}: took over the lock of "
                                    f"process {holder.pid}, which ended without removing it")
    assert not (out / ".brnpa.lock").exists() and (out / "model.keras").exists()


def test_help_and_version_load_no_backend_and_print_nothing_on_stderr():
    code = (
        "import sys\n"
        "from keras_brnpa.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['explain', '--help'], ['--version']):\n"
        "    assert main(argv) == 0\n"
        "heavy = [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "--input-scale" in result.stdout and "(default: 5)" in result.stdout


def test_python_dash_m_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", "keras_brnpa.cli", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("keras_brnpa ")
    result = subprocess.run([sys.executable, "-m", "keras_brnpa.cli", "trian"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "invalid choice: 'trian'" in result.stderr


def test_console_error_in_a_real_process_has_no_native_log_lines(tmp_path):
    """The entry point after Keras is loaded: exactly one line on stderr."""
    code = (
        "import sys\n"
        "from keras_brnpa.cli import main\n"
        "status = main(['evaluate', '--model', sys.argv[1]])\n"
        "assert 'tensorflow_datasets' not in sys.modules, 'tfds imported eagerly'\n"
        "sys.exit(status)\n"
    )
    missing = str(tmp_path / "missing.keras")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code, missing], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == cli.EXIT_ERROR, result.stderr
    assert result.stderr.splitlines() == [
        f"brnpa evaluate: error: --model: model file not found: {missing}"], result.stderr


# -------------------------------------------------------------------- demo
@pytest.mark.backend_neutral  # the CLI's output and files (tests/conftest.py)
def test_demo_smoke_writes_report_metrics_and_galleries(tmp_path, capsys):
    out = tmp_path / "demo"
    code, _, err = _run(["demo", "--smoke", "--quiet", "--output", str(out)], capsys)
    assert code == 0, err
    report = (out / "report.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["deletion_curves.png", "gallery_attention.png", "gallery_explanations.png"]
    for png in pngs:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png in report
    labels = [label for label, _, _ in demo_command.PLAN]
    assert [row["method"] for row in metrics["rows"]] == labels
    for row in metrics["rows"]:
        assert 0 <= row["dauc"] <= 1 and 0 <= row["iauc"] <= 1
        assert 0 <= row["pointing_game"] <= 1
        assert f"| {row['method']} |" in report
    assert set(metrics["models"]) == {"cnn", "bcnn", "brnpa_low", "brnpa_high"}
    assert "## At a common resolution (8x8)" in report
    assert "split: **test**" in report and " ± " in report
    assert "## Differences from the best row" in report
    common = metrics["common_resolution"]["rows"]
    assert set(common) == set(labels)
    assert all(0 <= c["dauc"] <= 1 and 0 <= c["pointing_game"] <= 1 for c in common.values())
    # RISE (64x64) and the high-resolution BR-NPA (8x8) are compared on the same 8x8 grid.
    assert "| RISE | 64x64 -> 8x8 |" in report
    for baseline in ("B-CNN", "Grad-CAM", "Grad-CAM++", "Score-CAM", "RISE"):
        assert f"- Against {baseline}, BR-NPA (high res.) is" in report
    code, _, err = _run(["demo", "--smoke", "--output", str(out)], capsys)
    assert code != 0 and "--overwrite" in _one_error_line(err)


def test_commands_never_import_commands():
    """Shared pieces live in cli/_common.py, _options.py, _data.py, _training.py."""
    import ast

    folder = os.path.dirname(cli.__file__)
    for command in cli.COMMANDS:
        tree = ast.parse(open(os.path.join(folder, f"{command}.py")).read())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "keras_brnpa.cli":
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.rsplit(".", 1)[-1])
        assert not imported & set(cli.COMMANDS), (command, imported & set(cli.COMMANDS))


# ------------------------------------------------ a new user's hostile cases
def _folder(root, counts, size=32, bad=0):
    """A class-per-subfolder folder: ``counts`` images per class, ``bad`` corrupt files."""
    rng = np.random.default_rng(0)
    for c, n in enumerate(counts):
        for i in range(n):
            _write(root / f"class{c}" / f"{i}.png",
                   rng.integers(0, 255, (size, size, 3)).astype("uint8"))
    for i in range(bad):
        (root / "class0" / f"broken{i}.png").write_bytes(b"not a png")
    return str(root)


@pytest.mark.parametrize("counts, words", [((3,), ["1 class subfolder", "class0"]),
                                           ((3, 1), ["at least 2 images", "'class1' (1)"])])
def test_too_few_classes_or_images_are_refused_naming_data(counts, words, tmp_path, capsys):
    data = _folder(tmp_path / "data", counts)
    out = tmp_path / "out"
    code, _, err = _run(["train", "--data", data, "--output", str(out), "--quiet"], capsys)
    assert code == cli.EXIT_USAGE
    line = _one_error_line(err)
    assert line.startswith("brnpa train: error: --data:")
    assert all(word in line for word in words), line
    assert not out.exists()


def test_model_errors_name_the_option_and_leave_no_folder(runs, tmp_path, capsys):
    whole, _, _ = runs
    teacher = os.path.join(whole, "model.keras")
    out = tmp_path / "out"
    code, _, err = _run(["distill", "--teacher", teacher, "--image-size", "32",
                         "--num-images", "8", "--num-classes", "3", "--output", str(out),
                         "--quiet"], capsys)
    assert code == cli.EXIT_USAGE
    line = _one_error_line(err)
    assert "--image-size 32" in line and "64x64" in line
    image = _write(tmp_path / "x.png", np.zeros((32, 32, 3), "uint8"))
    code, _, err = _run(["explain", image, "--model", teacher, "--layer", "nope",
                         "--output", str(out)], capsys)
    assert code == cli.EXIT_USAGE and "--layer 'nope'" in _one_error_line(err)
    assert not out.exists()


def test_failures_before_the_result_leave_nothing(runs, tmp_path, capsys):
    whole, _, _ = runs
    out = tmp_path / "out"
    # explain: every image corrupt.
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code, _, err = _run(["explain", str(bad), "--model", os.path.join(whole, "model.keras"),
                         "--output", str(out), "--quiet"], capsys)
    assert code == cli.EXIT_ERROR and "none of the 1 image" in err
    assert not out.exists()

    # train: a failure after the folder is claimed, before the first epoch ends.
    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("boom")

    code, _, err = _run(["train", *TRAIN, "--epochs", "1", "--output", str(out)], capsys,
                        callbacks=[Boom()])
    assert code == cli.EXIT_ERROR and "boom" in _one_error_line(err)
    assert not out.exists()
    # The same in a folder that holds the user's own file: only that file stays.
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, _ = _run(["train", *TRAIN, "--epochs", "1", "--output", str(out)], capsys,
                      callbacks=[Boom()])
    assert code == cli.EXIT_ERROR
    assert sorted(os.listdir(out)) == ["notes.txt"]


def test_methods_and_its_alias_method_in_both_commands(tutorial_model, tmp_path, capsys):
    _, path, _ = tutorial_model
    image = _write(tmp_path / "x.png", np.zeros((32, 32, 3), "uint8"))
    for option in ("--methods", "--method"):
        code, _, err = _run(["explain", image, "--model", path, option, "nope",
                             "--output", str(tmp_path / "o")], capsys)
        assert code == cli.EXIT_USAGE
        assert _one_error_line(err).startswith(f"brnpa explain: error: {option}: unknown method")
        code, _, err = _run(["evaluate", "--model", path, option, "nope"], capsys)
        assert _one_error_line(err).startswith(f"brnpa evaluate: error: {option}: unknown")
    code, _, err = _run(["explain", image, "--model", path, "--methods", "gradcam,rise",
                         "--rise-masks", "8", "--output", str(tmp_path / "o"), "--quiet"],
                        capsys)
    assert code == 0, err
    index = json.loads((tmp_path / "o" / "explanations.json").read_text())
    assert index["methods"] == ["gradcam", "rise"]


def test_resolution_note_names_the_flag(capsys):
    import argparse

    from keras_brnpa.cli import _training

    args = argparse.Namespace(image_size=48, resolution="auto", quiet=False, command="train")
    assert _training.resolve_resolution(args) == "high"
    line = _one_error_line(capsys.readouterr().err)
    assert "6x6 map cells" in line and "--image-size 57 or more" in line
    args = argparse.Namespace(image_size=64, resolution="low", quiet=False, command="train")
    assert _training.resolve_resolution(args) == "low"
    assert "--resolution high" in _one_error_line(capsys.readouterr().err)
    for size, expected in ((64, "high"), (224, "high"), (256, "low")):
        args = argparse.Namespace(image_size=size, resolution="auto", quiet=False,
                                  command="train")
        assert _training.resolve_resolution(args) == expected
        # An independent count: the tiny backbone's map side at that resolution.
        backbone = keras_brnpa.models.build_backbone("tiny", resolution=expected,
                                                     input_shape=(size, size, 3))
        assert keras_brnpa.models.feature_shape(backbone)[0] >= 8
    assert capsys.readouterr().err == ""


def _brnpa(argv, **kwargs):
    """The command line in its own process, stdout and stderr piped (not a terminal)."""
    code = "import sys\nfrom keras_brnpa.cli import main\nsys.exit(main())\n"  # as `brnpa`
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=300, env=env, **kwargs)


@pytest.mark.backend_neutral  # the CLI's output and files (tests/conftest.py)
def test_package_warnings_reach_stderr_and_quiet_keeps_results(tutorial_model, tmp_path):
    """A skipped corrupt file is said in one line; redirected progress has no bar codes."""
    _, path, _ = tutorial_model
    data = _folder(tmp_path / "data", (2, 2, 2), bad=1)
    argv = ["evaluate", "--model", path, "--data", data, "--split", "all", "--methods", "rise",
            "--rise-masks",
            "16", "--batch-size", "2", "--steps", "2"]
    loud = _brnpa(argv)
    assert loud.returncode == 0, loud.stderr
    assert loud.stderr.splitlines() == [
        f"brnpa evaluate: warning: image_folder({data!r}) skips 1 file(s) cannot be decoded: "
        f"{os.path.join('class0', 'broken0.png')}"], loud.stderr
    assert "\x1b" not in loud.stdout and "\r" not in loud.stdout and "\b" not in loud.stdout
    progress = [line for line in loud.stdout.splitlines() if "% (" in line]
    assert 1 <= len(progress) <= 10 and progress[-1].startswith("100% (6/6 maps)"), loud.stdout
    quiet = _brnpa(argv + ["--quiet"])
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "| rise |" in quiet.stdout and "%" not in quiet.stdout


def test_progress_is_a_bar_on_a_terminal_and_ten_lines_in_a_log(monkeypatch, capsys):
    from keras_brnpa import _progress

    update = _progress.progress(1000, "RISE")
    for done in range(1, 1001):
        update(done)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"RISE: {p}% ({p * 10}/1000 images)" for p in range(10, 101, 10)]
    monkeypatch.setattr(_progress, "is_terminal", lambda stream=None: True)
    update = _progress.progress(3, "RISE")
    update(3)
    out = capsys.readouterr().out
    assert out.startswith("RISE\n") and "3/3" in out  # keras.utils.Progbar
    # fit: 2 epochs of 10 steps, one line per 10 %.
    monkeypatch.setattr(_progress, "is_terminal", lambda stream=None: False)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.zeros((20, 2), "float32"), np.zeros(20, "int64")
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, validation_data=(x, y),
              callbacks=[_progress.training_lines()])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("%")[0] for line in lines] == [str(p) for p in range(10, 101, 10)]
    assert "val_loss" in lines[4] and "val_loss" in lines[9] and "epoch 2/2 done" in lines[9]


def test_oversized_model_files_are_refused_before_loading(tutorial_model, tmp_path, capsys):
    import zipfile

    _, path, _ = tutorial_model
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        members = {name: archive.read(name) for name in archive.namelist()}

    def rewrite(name, config_bytes):
        target = tmp_path / name
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for member, data in members.items():
                archive.writestr(member, config_bytes if member == "config.json" else data)
        return str(target)

    # A declared 100000x100000 input: refused from the config, no memory taken.
    text = json.dumps(config).replace("[null, 32, 32, 3]", "[null, 100000, 100000, 3]")
    assert "100000" in text
    huge_input = rewrite("huge_input.keras", text.encode())
    code, _, err = _run(["evaluate", "--model", huge_input], capsys)
    assert code == cli.EXIT_ERROR
    line = _one_error_line(err)
    assert "(100000, 100000, 3)" in line and "30,000,000,000 values" in line
    # A config that inflates past the cap (padding spaces compress to almost nothing).
    from keras_brnpa.cli import _common

    padded = json.dumps(config).encode() + b" " * (_common.MAX_CONFIG_BYTES + 1)
    bomb = rewrite("bomb.keras", padded)
    assert os.path.getsize(bomb) < 2**20
    code, _, err = _run(["evaluate", "--model", bomb], capsys)
    assert code == cli.EXIT_ERROR and "larger than 64 MiB" in _one_error_line(err)


# ------------------------------------------------------------ augmentation
@pytest.mark.backend_neutral  # the CLI's wiring and files (tests/conftest.py)
def test_augment_wraps_the_training_batches_only(tmp_path):
    from keras_brnpa.cli import _data

    data = _folder(tmp_path / "data", (4, 4))
    argv = ["train", "--data", data, "--image-size", "32", "--batch-size", "4", "--seed", "1"]
    assert not cli.build_parser().parse_args(argv).augment  # off by default
    plain = _data.load_training_data(cli.build_parser().parse_args(argv))
    augmented = _data.load_training_data(cli.build_parser().parse_args(argv + ["--augment"]))
    assert isinstance(augmented[0], keras_brnpa.datasets.AugmentedDataset)
    assert augmented[2] == plain[2]
    # Validation: the very same batches, not augmented.
    assert not isinstance(augmented[1], keras_brnpa.datasets.AugmentedDataset)
    assert len(augmented[1]) == len(plain[1]) >= 1
    for i in range(len(plain[1])):
        for got, expected in zip(augmented[1][i], plain[1][i]):
            np.testing.assert_array_equal(got, expected)
    # Training: same shapes and labels, other pixels.
    for i in range(len(plain[0])):
        (x, y), (raw_x, raw_y) = augmented[0][i], plain[0][i]
        assert x.shape == raw_x.shape and x.dtype == raw_x.dtype
        np.testing.assert_array_equal(y, raw_y)
        assert np.abs(x - raw_x).max() > 0.01
    assert cli.build_parser().parse_args(["distill", "--teacher", "t.keras", "--augment"]).augment


@pytest.mark.backend_neutral  # the CLI's wiring and files (tests/conftest.py)
def test_train_augment_is_recorded_in_run_json(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _run(["train", "--image-size", "32", "--num-images", "4", "--num-classes",
                         "2", "--batch-size", "4", "--epochs", "1", "--augment", "--eager",
                         "--quiet", "--output", str(out)], capsys)
    assert code == 0, err
    assert json.loads((out / "run.json").read_text())["config"]["augment"] is True


# --------------------------------------------------------------- evaluate
def test_evaluate_with_one_step_scores_and_draws_one_point_curves(tutorial_model, tmp_path,
                                                                  capsys):
    model, path, _ = tutorial_model
    out = tmp_path / "one"
    code, _, err = _run(["evaluate", "--model", path, "--num-images", "4", "--num-classes", "3",
                         "--steps", "1", "--methods", "gradcam", "--output", str(out),
                         "--quiet"], capsys)
    assert code == 0, err
    assert (out / "curves.png").stat().st_size > 0
    (row,) = json.loads((out / "metrics.json").read_text())["rows"]
    # One insertion step restores every cell: the curve is the intact image's
    # probability of its predicted class, and the area is that point.
    images, _, _ = keras_brnpa.datasets.synthetic_parts(4, 32, 3, 2000)  # evaluate's test set
    probabilities = keras.ops.convert_to_numpy(model(images * 255.0))
    assert row["iauc"] == pytest.approx(float(probabilities.max(axis=1).mean()), abs=1e-4)


@pytest.mark.backend_neutral  # the CLI's wiring and files (tests/conftest.py)
def test_evaluate_metrics_chooses_the_columns(tutorial_model, tmp_path, capsys):
    _, path, _ = tutorial_model
    out = tmp_path / "chosen"
    code, stdout, err = _run(["evaluate", "--model", path, "--num-images", "2", "--num-classes",
                              "3", "--steps", "2", "--methods", "gradcam", "--metrics", "road",
                              "dcic", "--output", str(out), "--quiet"], capsys)
    assert code == 0, err
    (row,) = json.loads((out / "metrics.json").read_text())["rows"]
    assert {"dc", "ic", "road", "road_ci95"} <= set(row)
    assert not {"dauc", "iauc", "road_lerf", "sparsity", "pointing_game"} & set(row)
    assert "ROAD MoRF (lower better)" in stdout
    text = (out / "report.md").read_text()
    assert "- ROAD MoRF:" in text and "(lower is better)" in text and "- DC:" in text
    code, _, err = _run(["evaluate", "--model", path, "--metrics", "dauc", "nope"], capsys)
    assert code == cli.EXIT_USAGE
    line = _one_error_line(err)
    assert "--metrics: invalid choice: 'nope'" in line and "road_lerf" in line
