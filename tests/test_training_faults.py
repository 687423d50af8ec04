"""Faults during a resumable run (issue 16): kills, Ctrl-C, crashes, a
damaged backup, a full disk. Each ends with the weights of the
uninterrupted run (same seed, same data order)."""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_brnpa

training = keras_brnpa.training
EPOCHS = 4
HERE = os.path.dirname(os.path.abspath(__file__))


def make_run():
    """A fresh model (same initial weights every call) and fresh data."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 3), dtype="float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 0.5).astype("int64")
    train = keras_brnpa.datasets.ArrayDataset(x, y, batch_size=8, shuffle=True, seed=5)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras_brnpa.BRNPAAttention(n_parts=2),
        keras.layers.Dropout(0.3),  # its seed generator must resume too
        keras.layers.Dense(2),
    ])
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, train


def fit(directory, callbacks=()):
    model, train = make_run()
    training.fit_resumable(model, train, epochs=EPOCHS, directory=directory, verbose=0,
                           callbacks=list(callbacks))
    return model


def assert_same_weights(model, reference):
    weights = model.get_weights()
    assert len(weights) == len(reference)
    for a, b in zip(weights, reference):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    model = fit(str(tmp_path_factory.mktemp("whole") / "run"))
    return [w.copy() for w in model.get_weights()]


class _RaiseAt(keras.callbacks.Callback):
    """Raise ``error`` at batch ``batch`` of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch, batch, error):
        super().__init__()
        self.at, self.error, self.epoch = (epoch, batch), error, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise self.error


def _newest_backup(directory):
    manifest = json.load(open(os.path.join(directory, "backup", training.BACKUP_MANIFEST)))
    return [(c["epoch"], os.path.join(directory, "backup", c["file"])) for c in manifest["copies"]]


def _zero_middle(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 3)
        f.write(b"\0" * (size // 3))


# ------------------------------------------------------- SIGKILL (subprocess)
def child_main(directory, kill_at, marker):
    """Run in a subprocess: block (to be killed) at ``kill_at``.

    ``"save:E"``: right after the weights of epoch E reached the disk, before
    the backup's manifest names them. ``"batch:E:B"``: after batch B of epoch E
    (1-based epoch).
    """
    kind, *where = kill_at.split(":")

    def block():
        open(marker, "w").close()
        time.sleep(600)

    callbacks = []
    if kind == "save":
        save_weights = keras.Model.save_weights

        def patched(self, filepath, *args, **kwargs):
            save_weights(self, filepath, *args, **kwargs)
            if f"epoch-{int(where[0]):05d}" in os.fspath(filepath):
                block()

        keras.Model.save_weights = patched
    else:
        class Block(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch + 1

            def on_train_batch_end(self, batch, logs=None):
                if (self.epoch, batch) == (int(where[0]), int(where[1])):
                    block()

        callbacks.append(Block())
    fit(directory, callbacks)


def _run_and_kill(directory, kill_at, marker):
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import test_training_faults as t; "
            f"t.child_main({directory!r}, {kill_at!r}, {marker!r})")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not os.path.exists(marker):
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode()[-3000:])
        assert time.time() < deadline, "the child never reached its kill point"
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    os.remove(marker)


def test_sigkill_during_a_backup_and_mid_epoch_resumes_to_the_same_weights(
        reference, tmp_path):
    directory, marker = str(tmp_path / "run"), str(tmp_path / "marker")
    # Killed after the weights of epoch 2 were written, before the manifest:
    # Keras's own double checkpoint resumed epoch 2 from epoch 2's weights.
    _run_and_kill(directory, "save:2", marker)
    assert [e for e, _ in _newest_backup(directory)] == [1]
    # The rerun is killed in the middle of epoch 3.
    _run_and_kill(directory, "batch:3:1", marker)
    assert [e for e, _ in _newest_backup(directory)] == [2, 1]
    assert [e["epoch"] for e in training.read_history(directory)] == [1, 2]
    assert_same_weights(fit(directory), reference)
    assert [e["epoch"] for e in training.read_history(directory)] == [1, 2, 3, 4]
    assert not os.path.exists(os.path.join(directory, "backup"))


# ---------------------------- Ctrl-C, crashes, a damaged backup (in-process)
def test_ctrl_c_crashes_and_a_damaged_backup_resume_to_the_same_weights(reference, tmp_path):
    directory = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        fit(directory, [_RaiseAt(1, 2, KeyboardInterrupt())])
    with pytest.raises(ZeroDivisionError):
        fit(directory, [_RaiseAt(2, 0, ZeroDivisionError("a crash"))])
    with pytest.raises(KeyboardInterrupt):  # at the last batch of the last epoch
        fit(directory, [_RaiseAt(EPOCHS - 1, 3, KeyboardInterrupt())])
    # The newest copy damaged in its middle (zeros: no OSError when read).
    (newest, path), (older, _) = _newest_backup(directory)
    assert (newest, older) == (3, 2)
    _zero_middle(path)
    with pytest.warns(UserWarning, match="backup of epoch 3 is damaged.*resumed from the "
                                         "backup of epoch 2"):
        model = fit(directory)
    assert_same_weights(model, reference)


def test_every_copy_damaged_starts_again_cleanly(reference, tmp_path):
    directory = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        fit(directory, [_RaiseAt(2, 1, KeyboardInterrupt())])
    for _, path in _newest_backup(directory):
        _zero_middle(path)
    with open(os.path.join(directory, "backup", training.BACKUP_MANIFEST), "w") as f:
        f.write('{"copies": [')  # the manifest too
    with pytest.warns(UserWarning, match="no usable backup.*starts again from epoch 1"):
        model = fit(directory)
    assert_same_weights(model, reference)


# ------------------------------------------------------------------ full disk
def test_full_disk_during_a_backup_is_one_clear_error_then_resumes(
        reference, tmp_path, monkeypatch):
    directory = str(tmp_path / "run")
    save_weights = keras.Model.save_weights

    def full_disk(self, filepath, *args, **kwargs):
        if "epoch-00002" in os.fspath(filepath):
            with open(filepath, "wb") as f:  # half a file, then the disk is full
                f.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_weights(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", full_disk)
    with pytest.raises(training.RunStorageError) as caught:
        fit(directory)
    message = str(caught.value)
    assert "\n" not in message and caught.value.errno == errno.ENOSPC
    assert message.startswith("No space left on device: could not write the backup of epoch 2")
    assert "the backup of epoch 1 is intact" in message
    assert sorted(os.listdir(os.path.join(directory, "backup"))) == [
        training.BACKUP_MANIFEST, "epoch-00001.weights.h5"]
    monkeypatch.setattr(keras.Model, "save_weights", save_weights)  # space freed
    assert_same_weights(fit(directory), reference)


def test_too_little_free_space_is_refused_before_writing(reference, tmp_path, monkeypatch):
    directory = str(tmp_path / "run")
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=4096))
    with pytest.raises(training.RunStorageError, match=r"^No space left on device \(4 KiB free"):
        fit(directory)
    assert os.listdir(os.path.join(directory, "backup")) == []
    monkeypatch.setattr(shutil, "disk_usage", real)
    assert_same_weights(fit(directory), reference)


REAL_DISK_SCRIPT = """
set -e
mkdir -p {mount}
mount -t tmpfs -o size=300k tmpfs {mount}
set +e
{python} -c "$CHILD" {mount} > {out}/out 2> {out}/err
echo $? > {out}/rc
"""

REAL_DISK_CHILD = """
import subprocess, sys
sys.path.insert(0, {here!r})
import keras_brnpa, test_training_faults as t
try:
    t.fit(sys.argv[1] + "/run")
except OSError as error:
    print("first run:", error, file=sys.stderr)
subprocess.run(["mount", "-o", "remount,size=20m", sys.argv[1]], check=True)
t.fit(sys.argv[1] + "/run")
print("finished")
"""


@pytest.mark.skipif(keras.config.backend() != "tensorflow",
                    reason="h5py's behaviour, the same on every backend")
def test_a_really_full_disk_gives_one_line_and_the_next_run_finishes(tmp_path):
    """A 300 KiB tmpfs in a user namespace (skipped where none can be made)."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("no user namespace to mount a small tmpfs in")
    mount, out = tmp_path / "disk", tmp_path / "out"
    out.mkdir()
    script = REAL_DISK_SCRIPT.format(mount=mount, python=sys.executable, out=out)
    env = dict(os.environ, CHILD=REAL_DISK_CHILD.format(here=HERE))
    subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, check=True, timeout=300)
    err = (out / "err").read_text()
    assert (out / "rc").read_text().strip() == "0", err[-3000:]  # 139: a segfault
    assert "Traceback" not in err and "Segmentation" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("first run:")]
    assert len(lines) == 1 and "No space left on device" in lines[0], err[-3000:]
    assert (out / "out").read_text().strip() == "finished"


@pytest.mark.skipif(keras.config.backend() != "tensorflow",
                    reason="the stray line came from TensorFlow's PyFunc data op")
def test_ctrl_c_in_the_cli_prints_one_line(tmp_path):
    output = tmp_path / "run"
    # As a user runs it: no TF_CPP_MIN_LOG_LEVEL of the test process (an
    # in-process cli.main sets it), so brnpa hides TensorFlow's native lines.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["KERAS_BACKEND"] = "tensorflow"
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from keras_brnpa import cli; sys.exit(cli.main())", "train", "--backbone", "tiny", "--image-size",
         "64", "--n-parts", "2", "--num-images", "4000", "--epochs", "3", "--batch-size", "8",
         "--output", str(output)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    while not (output / "run.json").exists() and process.poll() is None:
        assert time.time() < deadline
        time.sleep(0.2)
    time.sleep(2.0)  # inside fit, the data pipeline running
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    # TensorFlow's native start-up log lines (glog: "E0000 ...") aside.
    lines = [line for line in err.decode().splitlines()
             if not re.match(r"[IWE]\d{4} |WARNING: All log", line)]
    assert process.returncode == 130, err.decode()[-3000:]
    assert b"PyFunc" not in out + err
    assert lines == ["brnpa train: interrupted; run the same command again to resume from "
                     "the last finished epoch"]
