"""Tests of the ``brnpa`` command line (keras_brnpa.cli)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_brnpa import cli

# Lines that TensorFlow's C++ runtime prints on stderr when it is imported,
# before any code of the package runs (they cannot be switched off from
# Python; see the report of the CLI issue).
_NATIVE_LOG_PREFIXES = ("WARNING: All log messages", "I0000", "W0000", "E0000", "To enable the")

TRAIN = ["--image-size", "64", "--num-images", "16", "--num-classes", "3",
         "--batch-size", "16", "--eager", "--quiet"]


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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted 2-epoch run and one interrupted after epoch 1."""
    root = tmp_path_factory.mktemp("runs")
    whole, broken = str(root / "whole"), str(root / "broken")
    assert cli.main(["train", *TRAIN, "--epochs", "2", "--output", whole]) == 0
    interrupted = cli.main(
        ["train", *TRAIN, "--epochs", "2", "--output", broken],
        callbacks=[_InterruptAfterFirstEpoch()],
    )
    with open(os.path.join(broken, cli.HISTORY_FILE)) as f:
        history_before = json.load(f)["epochs"]
    state = {
        "interrupted_code": interrupted,
        "history_before": history_before,
        "model_before": os.path.exists(os.path.join(broken, cli.MODEL_FILE)),
        "backup_before": os.path.isdir(os.path.join(broken, cli.BACKUP_DIR)),
    }
    state["resumed_code"] = cli.main(["train", *TRAIN, "--epochs", "2", "--output", broken])
    return whole, broken, state


def _history(folder):
    with open(os.path.join(folder, cli.HISTORY_FILE)) as f:
        return json.load(f)["epochs"]


def test_resume_after_interruption_ends_like_an_uninterrupted_run(runs):
    whole, broken, state = runs
    assert state["interrupted_code"] == cli.EXIT_INTERRUPTED
    assert [e["epoch"] for e in state["history_before"]] == [1]
    assert not state["model_before"] and state["backup_before"]
    assert state["resumed_code"] == 0
    resumed, reference = _history(broken), _history(whole)
    assert [e["epoch"] for e in resumed] == [1, 2] == [e["epoch"] for e in reference]
    # Epoch 1 was not trained again: its logs are those of the first process.
    assert resumed[0] == state["history_before"][0]
    # Same seed, same data order, restored weights and optimizer: as good.
    np.testing.assert_allclose(resumed[1]["loss"], reference[1]["loss"], rtol=0.05)
    assert resumed[1]["val_accuracy"] >= reference[1]["val_accuracy"] - 0.1
    assert not os.path.exists(os.path.join(broken, cli.BACKUP_DIR))
    with open(os.path.join(broken, cli.RUN_FILE)) as f:
        run = json.load(f)
    assert run["status"] == "finished" and run["epochs_done"] == 2
    # The saved model predicts like the trained one would: valid logits.
    model = keras.models.load_model(os.path.join(broken, cli.MODEL_FILE))
    assert model.output_shape == (None, 3)


def test_finished_run_is_not_overwritten(runs, capsys):
    whole, _, _ = runs
    path = os.path.join(whole, cli.MODEL_FILE)
    stamp = os.stat(path).st_mtime_ns
    code, _, err = _run(["train", *TRAIN, "--epochs", "2", "--output", whole], capsys)
    assert code != 0
    assert "--overwrite" in _one_error_line(err)
    assert os.stat(path).st_mtime_ns == stamp


def test_overwrite_replaces_only_the_run_files(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("user file")
    (folder / cli.RUN_FILE).write_text(json.dumps({"command": "train", "status": "finished"}))
    (folder / cli.MODEL_FILE).write_text("old")
    cli._remove_artefacts(str(folder), cli.RUN_ARTEFACTS)
    assert (folder / "notes.txt").read_text() == "user file"
    assert not (folder / cli.MODEL_FILE).exists()


def test_unfinished_run_with_other_settings_is_refused(tmp_path, capsys):
    folder = str(tmp_path / "run")
    cli.start_run(folder, "train", {"epochs": 2}, overwrite=False)
    with pytest.raises(cli.CLIError, match="epochs"):
        cli.start_run(folder, "train", {"epochs": 3}, overwrite=False)
    assert cli.start_run(folder, "train", {"epochs": 2}, overwrite=False) is True


def test_explain_writes_overlays_and_reports_unreadable_images(runs, tmp_path, capsys):
    from PIL import Image

    whole, _, _ = runs
    good = tmp_path / "bird.png"
    Image.fromarray(np.full((80, 70, 3), 120, "uint8")).save(good)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    out = tmp_path / "overlays"
    code, stdout, err = _run(
        ["explain", str(bad), str(good), "--model", os.path.join(whole, cli.MODEL_FILE),
         "--output", str(out)],
        capsys,
    )
    assert code != 0
    assert "broken.jpg" in _one_error_line(err)
    written = Image.open(out / "bird_brnpa.png")
    assert written.size == (128, 64)  # the image and its overlay, 64 px each
    assert "bird.png" in stdout


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--dataset", "no_such_set_xyz"], ["unknown dataset", "no_such_set_xyz"]),
        (["train", "--backbone", "resnet7"], ["unknown backbone", "resnet7"]),
        (["train", "--head", "mlp"], ["unknown head", "mlp"]),
        (["train", "--epochs", "0"], ["--epochs"]),
        (["explain", "x.png", "--model", "MISSING"], ["not found", "missing.keras"]),
        (["evaluate", "--model", "MISSING"], ["not found"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_errors_are_one_line_without_traceback(argv, words, tmp_path, capsys):
    argv = [a.replace("MISSING", str(tmp_path / "missing.keras")) for a in argv]
    if argv[0] == "train":
        argv += ["--output", str(tmp_path / "out")]
    code, _, err = _run(argv, capsys)
    assert code != 0
    line = _one_error_line(err)
    assert line.startswith("brnpa")
    for word in words:
        assert word in line


def test_corrupt_model_file(tmp_path, capsys):
    corrupt = tmp_path / "model.keras"
    corrupt.write_bytes(b"PK\x03\x04 this is not a keras archive")
    code, _, err = _run(["evaluate", "--model", str(corrupt)], capsys)
    assert code != 0
    assert "cannot load the model" in _one_error_line(err)


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = _run(["train", *TRAIN, "--output", str(blocker / "run")], capsys)
    assert code != 0
    assert "output folder" in _one_error_line(err)


def test_console_error_in_a_real_process(tmp_path):
    """The installed entry point: exit status, one line, no traceback, and
    ``tensorflow_datasets`` never imported for the synthetic data."""
    code = (
        "import sys\n"
        "from keras_brnpa.cli import main\n"
        "status = main(['train', '--backbone', 'vgg', '--output', sys.argv[1]])\n"
        "assert 'tensorflow_datasets' not in sys.modules, 'tfds imported eagerly'\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == cli.EXIT_USAGE, result.stderr
    lines = [
        line for line in result.stderr.splitlines()
        if line.strip() and not line.startswith(_NATIVE_LOG_PREFIXES)
    ]
    assert lines == ["brnpa train: error: unknown backbone 'vgg': use one of "
                     + ", ".join(cli.BACKBONES)], result.stderr
    assert "Traceback" not in result.stderr


def test_demo_smoke_writes_report_metrics_and_galleries(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, err = _run(["demo", "--smoke", "--quiet", "--output", str(out)], capsys)
    assert code == 0, err
    report = (out / "report.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) >= 2
    for png in pngs:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png in report
    expected = {"BR-NPA (low res.)", "BR-NPA (high res.)", "B-CNN", "Grad-CAM",
                "Grad-CAM++", "Score-CAM", "RISE"}
    assert set(metrics["methods"]) == expected
    for label, scores in metrics["methods"].items():
        assert 0 <= scores["dauc"] <= 1 and 0 <= scores["iauc"] <= 1
        assert 0 <= scores["pointing_game"] <= 1
        assert f"| {label} |" in report
        # The report's verdicts are computed from these numbers.
    for baseline in expected - {"BR-NPA (low res.)", "BR-NPA (high res.)"}:
        assert f"- Against {baseline}, BR-NPA (high res.) is" in report
    # A second run without --overwrite refuses to touch the finished demo.
    code, _, err = _run(["demo", "--smoke", "--output", str(out)], capsys)
    assert code != 0 and "--overwrite" in _one_error_line(err)


def test_verdicts_follow_the_direction_of_each_metric():
    methods = {
        "ours": {"accuracy": 0.9, "dauc": 0.10, "iauc": 0.50, "sparsity": 3.0,
                 "pointing_game": 0.5, "energy_in_mask": 0.30},
        "base": {"accuracy": 0.9, "dauc": 0.20, "iauc": 0.70, "sparsity": 2.0,
                 "pointing_game": 0.5, "energy_in_mask": 0.10},
    }
    sentence = cli.verdicts(methods, "ours", "base")
    better, rest = sentence.split("; worse on ")
    worse, same = rest.split("; on par on ")
    assert "DAUC" in better and "sparsity" in better and "energy in mask" in better
    assert "IAUC" in worse
    assert "accuracy" in same and "pointing game" in same
