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
- ``model.keras``: the final model, written atomically;
- ``.brnpa.lock``: held while a process works in the folder (one at a
  time), removed at the end.

``fit_resumable`` does all of it; ``start_run``, ``finish_run``,
``save_model``, ``discard_backup``, ``read_history`` and ``clear_run`` are
the steps, for callers that save something else than the fitted model
(e.g. a distiller's student).

Modules, one job each: ``run`` (the run folder's files, no Keras at
import), ``backup`` (``RunBackup``, the consistent ``BackupAndRestore``),
``callbacks`` (the history file and the data order) and ``fit``
(``fit_resumable``).
"""

from keras_brnpa._lock import FolderInUseError
from keras_brnpa.training.fit import fit_resumable
from keras_brnpa.training.run import BACKUP_COPIES
from keras_brnpa.training.run import BACKUP_DIR
from keras_brnpa.training.run import BACKUP_MANIFEST
from keras_brnpa.training.run import HISTORY_FILE
from keras_brnpa.training.run import MODEL_FILE
from keras_brnpa.training.run import RUN_FILE
from keras_brnpa.training.run import RUN_FILES
from keras_brnpa.training.run import RunStorageError
from keras_brnpa.training.run import clear_run
from keras_brnpa.training.run import discard_backup
from keras_brnpa.training.run import finish_run
from keras_brnpa.training.run import read_history
from keras_brnpa.training.run import save_model
from keras_brnpa.training.run import start_run

__all__ = [
    "BACKUP_DIR",
    "BACKUP_MANIFEST",
    "FolderInUseError",
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
