"""Resumable training runs: ``model.fit`` that survives interruptions.

A run lives in one folder:

- ``run.json``: what the run is (``name``, ``config``), ``"running"`` or
  ``"finished"``; a finished run is never overwritten unless asked;
- ``backup/``: the state of the last two finished epochs (weights,
  optimizer, epoch number, seed-generator states (and torch's global
  generator, which unseeded dropout uses on torch); a
  ``keras.callbacks.BackupAndRestore`` whose copies are named by an
  atomically replaced manifest, ``backup.json``, with their SHA-256, so
  that a kill during a save loses nothing and a damaged copy falls back to
  the other), removed once the final model is saved;
- ``history.json``: the logs of every epoch, across interruptions;
- ``model.keras``: the final model, written atomically.

``fit_resumable`` does all of it; ``start_run``, ``finish_run``,
``save_model``, ``discard_backup``, ``read_history`` and ``clear_run`` are
the steps, for callers that save something else than the fitted model
(e.g. a distiller's student).
"""

import json
import os
import shutil
import time

from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid
from keras_brnpa._json import write_json


#: The run record: name, settings, ``"running"`` or ``"finished"``.
RUN_FILE = "run.json"
#: The logs of every finished epoch.
HISTORY_FILE = "history.json"
#: The ``BackupAndRestore`` folder (state of the last finished epoch).
BACKUP_DIR = "backup"
#: The final model.
MODEL_FILE = "model.keras"
#: What ``clear_run`` (and ``overwrite=True``) removes from a run folder.
RUN_FILES = (RUN_FILE, MODEL_FILE, HISTORY_FILE, BACKUP_DIR)


# --------------------------------------------------------------- JSON files
def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"status": "unreadable"}


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


class RunStorageError(OSError):
    """A run could not write its files (a full disk, a read-only folder).

    An ``OSError`` (with the original ``errno``) whose message is one line
    saying what could not be written, and what survives: the run folder
    stays consistent, and running the same call again once the cause is
    fixed resumes from the last backup that was completely written.

    Example:

    >>> import errno, keras_brnpa
    >>> error = keras_brnpa.training.RunStorageError(
    ...     OSError(errno.ENOSPC, "No space left on device"), "the backup of epoch 2")
    >>> str(error), error.errno == errno.ENOSPC, isinstance(error, OSError)
    ('No space left on device: could not write the backup of epoch 2', True, True)
    """

    def __init__(self, error, what):
        code = getattr(error, "errno", None)
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        super().__init__(code, f"{reason}: could not write {what}")

    def __str__(self):
        return self.strerror


def _check_directory(directory):
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
        raise invalid("directory", directory, "a folder path")
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise invalid("directory", directory, "a folder (it exists and is a file)")
    return directory


# -------------------------------------------------------------- run folders
def clear_run(directory, files=RUN_FILES):
    """Remove the files a run wrote in ``directory``, and nothing else.

    Args:
        directory: the run folder.
        files: names (files or folders) to remove, default ``RUN_FILES``.

    Example:

    >>> import os, tempfile, keras_brnpa
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("run.json", "notes.txt"):
    ...     open(os.path.join(folder, name), "w").close()
    >>> keras_brnpa.training.clear_run(folder)
    >>> os.listdir(folder)
    ['notes.txt']
    """
    directory = _check_directory(directory)
    for name in files:
        target = os.path.join(directory, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.remove(target)


def start_run(directory, config=None, name=None, overwrite=False, files=RUN_FILES):
    """Claim ``directory`` for a run; say whether it resumes an unfinished one.

    - A folder whose ``run.json`` says ``"finished"`` is refused
      (``ValueError``) unless ``overwrite=True``, which first removes the
      run's ``files`` (only those: your other files stay).
    - An unfinished run is resumed. When ``config`` (a JSON-able dict of
      the settings) or ``name`` is given and differs from the recorded one,
      it is refused: resuming would mix two runs. ``None`` accepts the
      recorded run whatever its settings.
    - Otherwise a new run starts. ``run.json`` then says ``"running"``.

    Args:
        directory: the run folder (created if needed).
        config: ``None`` or a dict of the run's settings.
        name: ``None`` or a name for the kind of run (``"train"``, ...);
            a new run without a name is called ``"fit"``.
        overwrite: bool, start a new run: first remove the ``files`` of
            whatever run the folder holds.
        files: what ``overwrite`` removes (see ``clear_run``).

    Returns:
        ``True`` when an unfinished run is resumed, ``False`` for a new run.

    Raises:
        ValueError: the folder holds a finished run, or an unfinished one
            with other settings, or ``directory`` is a file.
        OSError: the folder cannot be created or written.

    Example:

    >>> import tempfile, keras_brnpa
    >>> folder = tempfile.mkdtemp()
    >>> keras_brnpa.training.start_run(folder, config={"epochs": 2})
    False
    >>> keras_brnpa.training.start_run(folder, config={"epochs": 2})
    True
    >>> keras_brnpa.training.finish_run(folder)["status"]
    'finished'
    >>> keras_brnpa.training.start_run(folder, config={"epochs": 2})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ... holds a finished 'fit' run; pass overwrite=True to replace it, or choose another directory
    """
    directory = _check_directory(directory)
    if config is not None and not isinstance(config, dict):
        raise invalid("config", config, "None or a dict of the run's settings")
    overwrite = check_bool("overwrite", overwrite)
    path = os.path.join(directory, RUN_FILE)
    run = _read_json(path) if os.path.isdir(directory) else None
    if run is not None and not isinstance(run, dict):
        run = {"status": "unreadable"}
    if overwrite:
        if os.path.isdir(directory):
            clear_run(directory, files)
        run = None
    elif run is not None and run.get("status") == "finished":
        raise ValueError(
            f"{directory} holds a finished '{run.get('command', name or 'fit')}' run; pass "
            "overwrite=True to replace it, or choose another directory"
        )
    elif run is not None:
        recorded = run.get("config") if isinstance(run.get("config"), dict) else {}
        other_name = name is not None and run.get("command") != name
        if config is None:
            config = recorded
        if other_name or run.get("status") == "unreadable" or config != recorded:
            changed = sorted(
                key for key in set(config) | set(recorded) if config.get(key) != recorded.get(key)
            )
            raise ValueError(
                f"{directory} holds an unfinished '{run.get('command')}' run with other "
                f"settings ({', '.join(changed) or 'name'}); resume it with the same "
                "settings, or pass overwrite=True"
            )
    os.makedirs(directory, exist_ok=True)
    write_json(
        path,
        {
            "command": (run or {}).get("command") or name or "fit",
            "config": config if config is not None else {},
            "status": "running",
            "started": (run or {}).get("started", time.strftime("%Y-%m-%dT%H:%M:%S")),
        },
    )
    return run is not None


def finish_run(directory, **info):
    """Mark the run in ``directory`` as finished (``run.json``).

    Args:
        directory: the run folder.
        **info: JSON-able values recorded in ``run.json`` (e.g. the final
            metrics).

    Returns:
        The run record (a dict) as written.

    Example:

    >>> import tempfile, keras_brnpa
    >>> folder = tempfile.mkdtemp()
    >>> _ = keras_brnpa.training.start_run(folder, name="train")
    >>> run = keras_brnpa.training.finish_run(folder, accuracy=0.9)
    >>> run["status"], run["command"], run["accuracy"]
    ('finished', 'train', 0.9)
    """
    directory = _check_directory(directory)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, RUN_FILE)
    run = _read_json(path)
    run = run if isinstance(run, dict) else {}
    run.update(info)
    run["status"] = "finished"
    run["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(path, run)
    return run


def read_history(directory):
    """The per-epoch logs of the run in ``directory`` (``history.json``).

    Returns:
        A list of dicts, one per finished epoch in epoch order, each with
        ``"epoch"`` (1-based) and the logs of ``fit`` (``"loss"``,
        ``"val_loss"``, ...); ``[]`` when there is none.

    Example:

    >>> import tempfile, keras_brnpa
    >>> keras_brnpa.training.read_history(tempfile.mkdtemp())
    []
    """
    history = _read_json(os.path.join(_check_directory(directory), HISTORY_FILE))
    if not isinstance(history, dict) or not isinstance(history.get("epochs"), list):
        return []
    return history["epochs"]


def save_model(model, path):
    """``model.save(path)`` atomically: a crash never leaves half a file.

    The model is written to ``<path without .keras>.partial.keras`` and then
    renamed, so ``path`` holds either the previous file or the new one.

    Args:
        model: a Keras model.
        path: destination, ending in ``.keras``.

    Example:

    >>> import os, tempfile, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> keras_brnpa.training.save_model(model, path)
    >>> keras.models.load_model(path).output_shape
    (None, 2)
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise invalid("path", path, "a file name ending in '.keras'")
    tmp = path[: -len(".keras")] + ".partial.keras"
    model.save(tmp)
    os.replace(tmp, path)


def discard_backup(directory):
    """Remove ``directory/backup`` once the final model is safely saved.

    Example:

    >>> import os, tempfile, keras_brnpa
    >>> folder = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(folder, "backup"))
    >>> keras_brnpa.training.discard_backup(folder)
    >>> os.listdir(folder)
    []
    """
    shutil.rmtree(os.path.join(_check_directory(directory), BACKUP_DIR), ignore_errors=True)


# ---------------------------------------------------------------- callbacks
def _history_callback(path):
    import keras

    class HistoryFile(keras.callbacks.Callback):
        """Every epoch's logs in a JSON file, idempotent across resumptions."""

        def on_epoch_end(self, epoch, logs=None):
            history = _read_json(path)
            if not isinstance(history, dict) or not isinstance(history.get("epochs"), list):
                history = {"epochs": []}
            epochs = [e for e in history["epochs"] if e.get("epoch") != epoch + 1]
            entry = {"epoch": epoch + 1}
            entry.update({k: float(v) for k, v in (logs or {}).items()})
            epochs.append(entry)
            history["epochs"] = sorted(epochs, key=lambda e: e["epoch"])
            try:
                write_json(path, history)
            except OSError as error:
                raise RunStorageError(
                    error, f"{path} after epoch {epoch + 1}; run the same call again to "
                    "resume once fixed"
                ) from None

    return HistoryFile()


#: The backup's manifest: the epochs of the (at most two) complete copies,
#: newest first, each with its weights file and SHA-256.
BACKUP_MANIFEST = "backup.json"
#: Copies of the state kept in ``backup/``.
BACKUP_COPIES = 2
#: Files of ``keras.callbacks.BackupAndRestore`` itself (folders written
#: by keras_brnpa < 0.2): still restored, replaced at the next backup.
_KERAS_BACKUP_FILES = (
    "latest.weights.h5",
    "latest.weights.h5.bkp",
    "training_metadata.json",
    "training_metadata.json.bkp",
)


def _sha256(path):
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _close_h5_files():
    """Close the HDF5 files a failed save left open.

    h5py keeps a file whose write failed (full disk) open; closing it at
    interpreter exit crashed the process (segfault). Errors are ignored:
    the file is removed anyway.
    """
    try:
        import h5py
    except ImportError:  # pragma: no cover - Keras depends on h5py
        return
    try:
        ids = h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)
    except Exception:  # pragma: no cover - defensive
        return
    for file_id in ids:
        try:
            file_id.close()
        except Exception:
            pass


def _global_rng_state():
    """The backend's own global generator, where layers draw from it.

    Keras on torch draws unseeded dropout from torch's global generator
    (not from the layer's seed generator): its state is saved with each
    backup so that a resumed run draws the same masks. Other backends:
    ``None``.
    """
    import keras

    if keras.config.backend() != "torch":
        return None
    import base64

    import torch

    return base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii")


def _set_global_rng_state(state):
    import keras

    if state is None or keras.config.backend() != "torch":
        return
    import base64

    import numpy as np
    import torch

    data = np.frombuffer(base64.b64decode(state), dtype=np.uint8).copy()
    torch.set_rng_state(torch.from_numpy(data))


def _backup_callback(backup_dir):
    import warnings

    import keras
    import numpy as np

    class RunBackup(keras.callbacks.BackupAndRestore):
        """``BackupAndRestore`` whose backup is always consistent.

        Keras's ``double_checkpoint`` copies the last file aside and then
        writes the weights and the epoch number in place: a kill between
        the two resumes an epoch from the weights of the next one, and a
        file damaged without an ``OSError`` (zeros in its middle) cannot be
        loaded although the other copy is intact. Here every epoch's state
        goes to a new file, and only once it is completely written (and
        synced) does the manifest, replaced atomically, name it with its
        SHA-256 beside the previous copy. Restoring checks the SHA-256 and
        falls back to the older copy, then to a fresh start (the model's
        initial weights), with a warning. The states of the model's seed
        generators (dropout) are saved in the manifest too, so that a
        resumed run draws the same masks. The free space is checked before
        writing (h5py crashed the interpreter on a full disk) and a failed
        write raises one ``RunStorageError`` and leaves the last complete
        copy in place.
        """

        def __init__(self, backup_dir):
            super().__init__(
                backup_dir, save_freq="epoch", double_checkpoint=True, delete_checkpoint=False
            )
            self._manifest = os.path.join(backup_dir, BACKUP_MANIFEST)

        # ------------------------------------------------------------ state
        def _optimizer_variables(self):
            optimizer = self.model.optimizer
            if optimizer is None:
                return []
            if not optimizer.built:
                optimizer.build(self.model.trainable_variables)
            return list(optimizer.variables)

        def _seed_states(self):
            return [v for v in self.model.variables if "seed_generator_state" in v.path]

        def _snapshot(self):
            variables = list(self.model.variables) + self._optimizer_variables()
            return [(v, keras.ops.convert_to_numpy(v)) for v in variables]

        def _records(self):
            manifest = _read_json(self._manifest)
            if isinstance(manifest, dict) and isinstance(manifest.get("copies"), list):
                return [r for r in manifest["copies"] if isinstance(r, dict)], False
            records = []
            for weights, metadata in (
                ("latest.weights.h5", "training_metadata.json"),
                ("latest.weights.h5.bkp", "training_metadata.json.bkp"),
            ):
                info = _read_json(os.path.join(self.backup_dir, metadata))
                if isinstance(info, dict) and isinstance(info.get("epoch"), int):
                    records.append({"epoch": info["epoch"], "file": weights})
            return records, manifest is not None

        # ---------------------------------------------------------- restore
        def on_train_begin(self, logs=None):
            if not self.model.built:
                return super().on_train_begin(logs)
            records, damaged_manifest = self._records()
            if not records and not damaged_manifest:
                return
            snapshot = self._snapshot()
            failures = ["the manifest is unreadable"] if damaged_manifest else []
            for record in records:
                reason = self._restore(record)
                if reason is None:
                    if failures:
                        warnings.warn(
                            f"{self.backup_dir}: {'; '.join(failures)}; resumed from the "
                            f"backup of epoch {record['epoch']} instead",
                            stacklevel=2,
                        )
                    return
                failures.append(f"the backup of epoch {record.get('epoch')} {reason}")
                for variable, value in snapshot:
                    variable.assign(value)
            self.model._initial_epoch = 0
            warnings.warn(
                f"{self.backup_dir}: no usable backup ({'; '.join(failures)}); the run "
                "starts again from epoch 1",
                stacklevel=2,
            )

        def _restore(self, record):
            """Load one copy; ``None`` when done, else why it failed."""
            name = record.get("file")
            epoch = record.get("epoch")
            if not isinstance(name, str) or os.path.basename(name) != name:
                return "is not a valid record"
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                return "is not a valid record"
            path = os.path.join(self.backup_dir, name)
            if not os.path.isfile(path):
                return f"is missing ({name})"
            if "sha256" in record and _sha256(path) != record["sha256"]:
                return f"is damaged ({name}: its SHA-256 differs)"
            try:
                self.model.load_weights(path)
            except Exception as error:
                return f"could not be loaded ({name}: {_first_line(error)})"
            states = record.get("seed_states", [])
            variables = self._seed_states()
            if len(states) == len(variables):
                for variable, value in zip(variables, states):
                    variable.assign(np.asarray(value, dtype=variable.dtype))
            _set_global_rng_state(record.get("global_rng_state"))
            self.model._initial_epoch = epoch
            return None

        # ------------------------------------------------------------- save
        def _save_model(self):
            epoch = self._current_epoch
            name = f"epoch-{epoch:05d}.weights.h5"
            path = os.path.join(self.backup_dir, name)
            records, _ = self._records()
            kept = [
                r for r in records
                if isinstance(r, dict) and "sha256" in r and r.get("epoch") != epoch
            ][: BACKUP_COPIES - 1]
            what = f"the backup of epoch {epoch} in {self.backup_dir}"
            if kept:
                what += f" (the backup of epoch {kept[0]['epoch']} is intact)"
            what += "; the run stopped: run the same call again to resume once fixed"
            try:
                os.makedirs(self.backup_dir, exist_ok=True)
                self._check_space(path)
                try:
                    self.model.save_weights(path, overwrite=True)
                except BaseException:
                    _close_h5_files()
                    _remove(path)
                    raise
                _fsync(path)
                record = {
                    "epoch": epoch,
                    "file": name,
                    "sha256": _sha256(path),
                    "global_rng_state": _global_rng_state(),
                    "seed_states": [
                        keras.ops.convert_to_numpy(v).tolist() for v in self._seed_states()
                    ],
                }
                write_json(self._manifest, {"copies": [record] + kept})
            except OSError as error:
                if not any(r.get("file") == name for r in kept):
                    _remove(path)
                raise RunStorageError(error, what) from None
            except Exception as error:  # h5py reports some write errors otherwise
                _remove(path)
                raise RunStorageError(OSError(_first_line(error)), what) from None
            keep = {r["file"] for r in [record] + kept} | {BACKUP_MANIFEST}
            for other in os.listdir(self.backup_dir):
                if other not in keep and (
                    other.endswith(".weights.h5") or other in _KERAS_BACKUP_FILES
                ):
                    _remove(os.path.join(self.backup_dir, other))

        def _check_space(self, path):
            """Refuse to start an h5 write that cannot fit (h5py crashes)."""
            import errno
            import shutil

            variables = list(self.model.variables) + self._optimizer_variables()
            needed = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)
            needed = int(needed * 1.1) + (1 << 20)
            free = shutil.disk_usage(os.path.dirname(path)).free
            if free < needed:
                raise OSError(
                    errno.ENOSPC,
                    f"No space left on device ({free // 1024} KiB free in "
                    f"{os.path.dirname(path)}, a backup needs about {needed // 1024} KiB)",
                )

    return RunBackup(backup_dir)


def _epoch_setter(data):
    import keras

    class EpochSetter(keras.callbacks.Callback):
        """Give the data set the epoch number (same order after a resume)."""

        def on_epoch_begin(self, epoch, logs=None):
            data.set_epoch(epoch)

    return EpochSetter()


def _check_data(train_data):
    import numpy as np

    if isinstance(train_data, (tuple, list, dict, np.ndarray)) or hasattr(train_data, "__array__"):
        raise invalid(
            "train_data",
            f"<{type(train_data).__name__}>",
            "a dataset: a keras.utils.PyDataset (wrap arrays in "
            "keras_brnpa.datasets.ArrayDataset(x, y, shuffle=True, seed=0) so that a "
            "resumed run sees the same batches), a tf.data.Dataset or a generator",
        )


def fit_resumable(
    model,
    train_data,
    validation_data=None,
    epochs=1,
    directory="run",
    callbacks=(),
    verbose="auto",
    overwrite=False,
    finish=True,
    **fit_kwargs,
):
    """``model.fit`` that survives interruptions and resumes where it stopped.

    Call it again after an interruption (Ctrl-C, a kill, a crash, a
    preempted machine) with the same arguments: it restores the weights,
    the optimizer state and the epoch number of the last finished epoch and
    goes on from there. Calling it on a finished run raises a
    ``ValueError`` (``overwrite=True`` starts again).

    At the end of every epoch the state is saved in ``directory/backup``
    (a ``keras.callbacks.BackupAndRestore`` whose two copies are named by
    an atomically replaced manifest with their SHA-256: a kill during a
    save, or a damaged newest copy, falls back to the previous one; a full
    disk raises one ``RunStorageError`` and the next call resumes) and the
    epoch's
    logs are added to ``directory/history.json`` (see ``read_history``).
    With ``finish=True`` the fitted model is then saved atomically to
    ``directory/model.keras``, the backup removed and ``run.json`` marked
    finished (with ``epochs_done`` and the ``final`` logs).

    Data order: when ``train_data`` has a ``set_epoch(epoch)`` method (as
    ``keras_brnpa.datasets.ArrayDataset``, ``synthetic_parts_dataset`` and
    ``image_folder(..., as_numpy=True)`` do), it is called at the start of
    every epoch and ``fit`` gets ``shuffle=False``: the data orders itself
    as a function of its seed and the epoch number, so a resumed run sees
    exactly the batches of an uninterrupted one and ends with the same
    weights (the model's own randomness, e.g. dropout, aside: seed it with
    ``keras.utils.set_random_seed``). A ``tf.data.Dataset`` shuffles by its
    own state, which does not survive a restart: the resumed epochs see
    other (equally random) orders.

    Args:
        model: a compiled Keras model (or a ``keras_brnpa.Distiller``).
        train_data: a dataset ``fit`` accepts: a ``keras.utils.PyDataset``
            (wrap arrays in ``keras_brnpa.datasets.ArrayDataset``), a
            ``tf.data.Dataset`` or a generator. Bare arrays are refused:
            ``fit`` would shuffle them from the global random state.
        validation_data: as for ``fit``.
        epochs: int >= 1, the total number of epochs of the run.
        directory: the run folder (created if needed).
        callbacks: more ``keras.callbacks.Callback`` objects; they run after
            the backup of each epoch is written.
        verbose: as for ``fit``.
        overwrite: bool, start again over a finished (or other) run,
            removing its files (see ``start_run``).
        finish: bool; ``False`` stops after the last epoch and leaves saving
            the model, ``discard_backup`` and ``finish_run`` to the caller
            (e.g. to save a distiller's student).
        **fit_kwargs: other ``fit`` arguments (``class_weight``,
            ``steps_per_epoch``, ...).

    Returns:
        The per-epoch logs of the whole run, resumed epochs included: a
        list of dicts as ``read_history`` gives.

    Raises:
        ValueError: invalid arguments, or ``directory`` holds a finished run
            (or an unfinished run recorded with other settings).
        RunStorageError: a backup or the history could not be written
            (a full disk); the run folder stays resumable.

    Example:

    >>> import os, tempfile, keras, numpy as np, keras_brnpa
    >>> keras.utils.set_random_seed(0)
    >>> data = keras_brnpa.datasets.ArrayDataset(
    ...     np.random.rand(16, 4).astype("float32"), np.arange(16) % 2,
    ...     batch_size=8, shuffle=True, seed=0)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> folder = tempfile.mkdtemp()
    >>> history = keras_brnpa.training.fit_resumable(
    ...     model, data, epochs=2, directory=folder, verbose=0)
    >>> [entry["epoch"] for entry in history]
    [1, 2]
    >>> sorted(os.listdir(folder))
    ['history.json', 'model.keras', 'run.json']
    """
    import keras

    directory = _check_directory(directory)
    epochs = check_positive_int("epochs", epochs)
    _check_data(train_data)
    for name, value in (("overwrite", overwrite), ("finish", finish)):
        check_bool(name, value)
    for name in ("x", "y", "epochs", "initial_epoch", "validation_data", "callbacks", "verbose"):
        if name in fit_kwargs:
            raise invalid(name, fit_kwargs[name], "not given: fit_resumable sets it")
    start_run(directory, overwrite=overwrite)

    ordered = callable(getattr(train_data, "set_epoch", None))
    callbacks = list(callbacks)
    run_callbacks = [_history_callback(os.path.join(directory, HISTORY_FILE))]
    if ordered:
        run_callbacks.insert(0, _epoch_setter(train_data))
        fit_kwargs.setdefault("shuffle", False)
    run_callbacks.append(_backup_callback(os.path.join(directory, BACKUP_DIR)))
    model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        callbacks=run_callbacks + callbacks,
        verbose=verbose,
        **fit_kwargs,
    )
    history = read_history(directory)
    if finish:
        save_model(model, os.path.join(directory, MODEL_FILE))
        discard_backup(directory)
        finish_run(directory, epochs_done=len(history), final=history[-1] if history else {})
    return history


__all__ = [
    "BACKUP_DIR",
    "BACKUP_MANIFEST",
    "HISTORY_FILE",
    "MODEL_FILE",
    "RUN_FILE",
    "RUN_FILES",
    "RunStorageError",
    "clear_run",
    "discard_backup",
    "finish_run",
    "fit_resumable",
    "read_history",
    "save_model",
    "start_run",
]
