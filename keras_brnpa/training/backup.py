"""The backup of a run: ``RunBackup``, a ``BackupAndRestore`` that stays consistent.

Every epoch's state goes to a new file in ``backup/``; only once it is
completely written does the manifest (``backup.json``, replaced
atomically) name it with its SHA-256, beside the previous copy. Restoring
checks the SHA-256 and falls back to the older copy, then to a fresh start.
"""

import errno
import hashlib
import os
import shutil
import warnings

import keras
import numpy as np

from keras_brnpa._json import write_json
from keras_brnpa.training.run import BACKUP_COPIES
from keras_brnpa.training.run import BACKUP_MANIFEST
from keras_brnpa.training.run import RunStorageError
from keras_brnpa.training.run import _read_json
from keras_brnpa.training.run import _remove


#: Files of ``keras.callbacks.BackupAndRestore`` itself (folders written
#: by keras_brnpa < 0.2): still restored, replaced at the next backup.
_KERAS_BACKUP_FILES = (
    "latest.weights.h5",
    "latest.weights.h5.bkp",
    "training_metadata.json",
    "training_metadata.json.bkp",
)


def _sha256(path):
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
    if keras.config.backend() != "torch":
        return None
    import base64

    import torch

    return base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii")


def _set_global_rng_state(state):
    if state is None or keras.config.backend() != "torch":
        return
    import base64

    import torch

    data = np.frombuffer(base64.b64decode(state), dtype=np.uint8).copy()
    torch.set_rng_state(torch.from_numpy(data))


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

    Args:
        backup_dir: the backup folder (``backup/`` of a run folder).

    Example:

    >>> import os, tempfile, keras, numpy as np
    >>> from keras_brnpa.training.backup import RunBackup
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> folder = os.path.join(tempfile.mkdtemp(), "backup")
    >>> _ = model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=2, verbose=0,
    ...               callbacks=[RunBackup(folder)])
    >>> sorted(os.listdir(folder))
    ['backup.json', 'epoch-00001.weights.h5', 'epoch-00002.weights.h5']
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
