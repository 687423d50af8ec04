"""Tests of keras_brnpa.training: resumable fit and run folders."""

import json
import os

import keras
import numpy as np
import pytest

import keras_brnpa

training = keras_brnpa.training
EPOCHS = 3


class _Interrupt(Exception):
    pass


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    """A crash right after epoch 1 has been saved."""

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise _Interrupt


def _data():
    rng = np.random.default_rng(0)
    x = rng.random((40, 8, 8, 3), dtype="float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 0.5).astype("int64")
    train = keras_brnpa.datasets.ArrayDataset(x[:32], y[:32], batch_size=8, shuffle=True, seed=5)
    val = keras_brnpa.datasets.ArrayDataset(x[32:], y[32:], batch_size=8)
    return train, val


def _model():
    """The same initial weights every call (fresh random state)."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras_brnpa.BRNPAAttention(n_parts=2),
        keras.layers.Dense(2),
    ])
    # Adam: its moments must be restored too for the weights to agree.
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    whole, broken = str(root / "whole"), str(root / "broken")
    model = _model()
    train, val = _data()
    history = training.fit_resumable(model, train, val, epochs=EPOCHS, directory=whole, verbose=0)
    reference = [w.copy() for w in model.get_weights()]

    first = _model()
    train, val = _data()
    with pytest.raises(_Interrupt):
        training.fit_resumable(first, train, val, epochs=EPOCHS, directory=broken, verbose=0,
                               callbacks=[_StopAfterFirstEpoch()])
    interrupted = {
        "history": training.read_history(broken),
        "files": sorted(os.listdir(broken)),
        "run": json.load(open(os.path.join(broken, training.RUN_FILE))),
    }
    # A new process: a fresh model (other weights) and fresh data objects.
    keras.utils.clear_session()
    second = _model()
    second.set_weights([w + 1.0 for w in second.get_weights()])
    train, val = _data()
    resumed = training.fit_resumable(second, train, val, epochs=EPOCHS, directory=broken, verbose=0)
    return {
        "whole": whole, "broken": broken, "history": history, "reference": reference,
        "interrupted": interrupted, "resumed": resumed, "resumed_weights": second.get_weights(),
    }


def test_resumed_run_equals_an_uninterrupted_one(runs):
    for a, b in zip(runs["resumed_weights"], runs["reference"]):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)
    assert [e["epoch"] for e in runs["resumed"]] == [1, 2, 3]
    for a, b in zip(runs["resumed"], runs["history"]):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
        np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-5)


def test_interrupted_run_keeps_its_backup_and_first_epoch(runs):
    interrupted = runs["interrupted"]
    assert [e["epoch"] for e in interrupted["history"]] == [1]
    assert interrupted["files"] == ["backup", "history.json", "run.json"]
    assert interrupted["run"]["status"] == "running"
    # Epoch 1 was not trained again after the resume.
    assert runs["resumed"][0] == interrupted["history"][0]


def test_history_file_has_one_entry_per_epoch_and_run_is_finished(runs):
    for folder in (runs["whole"], runs["broken"]):
        with open(os.path.join(folder, training.HISTORY_FILE)) as f:
            epochs = json.load(f)["epochs"]
        assert [e["epoch"] for e in epochs] == [1, 2, 3]
        assert {"loss", "val_loss"} <= set(epochs[0])
        assert sorted(os.listdir(folder)) == ["history.json", "model.keras", "run.json"]
        with open(os.path.join(folder, training.RUN_FILE)) as f:
            run = json.load(f)
        assert run["status"] == "finished" and run["epochs_done"] == EPOCHS
        assert run["final"] == epochs[-1]
    model = keras.models.load_model(os.path.join(runs["broken"], training.MODEL_FILE))
    for a, b in zip(model.get_weights(), runs["reference"]):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_finished_run_is_not_silently_overwritten(runs, tmp_path):
    whole = runs["whole"]
    path = os.path.join(whole, training.MODEL_FILE)
    stamp = os.stat(path).st_mtime_ns
    train, val = _data()
    with pytest.raises(ValueError, match="finished .*overwrite=True"):
        training.fit_resumable(_model(), train, val, epochs=EPOCHS, directory=whole, verbose=0)
    assert os.stat(path).st_mtime_ns == stamp
    # overwrite=True starts again (in a copy, to keep the module's runs).
    import shutil

    copy = str(tmp_path / "copy")
    shutil.copytree(whole, copy)
    (tmp_path / "copy" / "notes.txt").write_text("mine")
    history = training.fit_resumable(_model(), train, val, epochs=1, directory=copy,
                                     verbose=0, overwrite=True)
    assert [e["epoch"] for e in history] == [1]
    assert (tmp_path / "copy" / "notes.txt").read_text() == "mine"


def test_start_run_refuses_other_settings_and_resumes_same(tmp_path):
    folder = str(tmp_path / "run")
    assert training.start_run(folder, config={"epochs": 2}, name="train") is False
    with pytest.raises(ValueError, match=r"other settings \(epochs\)"):
        training.start_run(folder, config={"epochs": 3}, name="train")
    with pytest.raises(ValueError, match="other settings"):
        training.start_run(folder, config={"epochs": 2}, name="distill")
    assert training.start_run(folder, config={"epochs": 2}, name="train") is True
    # No config: resume whatever unfinished run is recorded.
    assert training.start_run(folder) is True
    with open(os.path.join(folder, training.RUN_FILE)) as f:
        assert json.load(f)["config"] == {"epochs": 2}


def test_finish_false_leaves_saving_to_the_caller(tmp_path):
    folder = str(tmp_path / "run")
    train, val = _data()
    model = _model()
    history = training.fit_resumable(model, train, epochs=1, directory=folder, verbose=0, finish=False)
    assert sorted(os.listdir(folder)) == ["backup", "history.json", "run.json"]
    training.save_model(model, os.path.join(folder, "model.keras"))
    training.discard_backup(folder)
    run = training.finish_run(folder, final=history[-1])
    assert run["status"] == "finished"
    assert sorted(os.listdir(folder)) == ["history.json", "model.keras", "run.json"]


def test_invalid_arguments(tmp_path):
    train, _ = _data()
    model = _model()
    with pytest.raises(ValueError, match="argument train_data"):
        training.fit_resumable(model, (train.x, train.y), directory=str(tmp_path))
    with pytest.raises(ValueError, match="argument epochs"):
        training.fit_resumable(model, train, epochs=0, directory=str(tmp_path))
    with pytest.raises(ValueError, match="argument initial_epoch"):
        training.fit_resumable(model, train, directory=str(tmp_path), initial_epoch=1)
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ValueError, match="argument directory"):
        training.start_run(str(file))
    with pytest.raises(ValueError, match="argument path"):
        training.save_model(model, str(tmp_path / "model.h5"))


# ----------------------------------------------- one process, an atomic save
def test_a_second_process_on_the_folder_is_refused_and_the_lock_is_reentrant(tmp_path):
    import subprocess
    import sys

    from keras_brnpa import _lock

    folder = str(tmp_path / "run")
    train, _ = _data()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\n"
         "from keras_brnpa import _lock\n"
         "with _lock.folder_lock(sys.argv[1]):\n"
         "    print('locked', flush=True)\n"
         "    sys.stdin.read()\n", folder],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(training.FolderInUseError,
                           match=rf"^another process \(process {holder.pid}\) is using "):
            training.fit_resumable(_model(), train, epochs=1, directory=folder, verbose=0)
        assert os.listdir(folder) == [_lock.LOCK_FILE]  # nothing of a run written
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0 and os.listdir(folder) == []
    # A caller that holds the lock (the CLI) may call fit_resumable inside it.
    with _lock.folder_lock(folder):
        history = training.fit_resumable(_model(), train, epochs=1, directory=folder, verbose=0)
        assert os.path.exists(os.path.join(folder, _lock.LOCK_FILE))
    assert [entry["epoch"] for entry in history] == [1]
    assert sorted(os.listdir(folder)) == ["history.json", "model.keras", "run.json"]


def test_a_failed_final_save_leaves_no_partial_file_and_the_run_resumes(tmp_path, monkeypatch):
    import errno

    folder = str(tmp_path / "run")
    train, _ = _data()
    model = _model()
    save = keras.Model.save

    def full_disk(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03\x04 half a zip file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full_disk)
    with pytest.raises(training.RunStorageError,
                       match=r"^No space left on device: could not write .*model\.keras"):
        training.fit_resumable(model, train, epochs=1, directory=folder, verbose=0)
    assert sorted(os.listdir(folder)) == ["backup", "history.json", "run.json"]
    with open(os.path.join(folder, training.RUN_FILE)) as f:
        assert json.load(f)["status"] == "running"
    monkeypatch.setattr(keras.Model, "save", save)  # space freed: the same call finishes
    history = training.fit_resumable(_model(), train, epochs=1, directory=folder, verbose=0)
    assert [entry["epoch"] for entry in history] == [1]
    assert sorted(os.listdir(folder)) == ["history.json", "model.keras", "run.json"]
    saved = keras.models.load_model(os.path.join(folder, training.MODEL_FILE))
    for a, b in zip(saved.get_weights(), model.get_weights()):  # the epoch of the first call
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_save_model_failing_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.keras"
    path.write_bytes(b"the previous model")

    def broken(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03\x04 half")
        raise RuntimeError("serialisation failed")

    monkeypatch.setattr(keras.Model, "save", broken)
    with pytest.raises(RuntimeError, match="serialisation failed"):
        training.save_model(_model(), str(path))
    assert sorted(os.listdir(tmp_path)) == ["model.keras"]
    assert path.read_bytes() == b"the previous model"
