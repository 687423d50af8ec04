"""Run folders: ``run.json``, ``history.json``, the final model and the file names.

The bookkeeping of a training run, without Keras at import: claiming a
folder (``start_run``), marking it finished (``finish_run``), reading the
per-epoch logs (``read_history``), saving the final model atomically
(``save_model``) and removing what a run wrote (``discard_backup``,
``clear_run``). ``keras_brnpa.training.fit_resumable`` calls these steps;
callers that save something else than the fitted model call them
themselves.
"""

import json
import os
import shutil
import time

from keras_brnpa._checks import check_bool
from keras_brnpa._checks import invalid
from keras_brnpa._json import remove_quietly as _remove
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
#: The backup's manifest: the epochs of the (at most two) complete copies,
#: newest first, each with its weights file and SHA-256.
BACKUP_MANIFEST = "backup.json"
#: Copies of the state kept in ``backup/``.
BACKUP_COPIES = 2


# --------------------------------------------------------------- JSON files
def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"status": "unreadable"}


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
    When the write fails (a full disk, an error while serialising, Ctrl-C)
    the partial file is removed and ``path`` is left as it was.

    Args:
        model: a Keras model.
        path: destination, ending in ``.keras``.

    Raises:
        RunStorageError: the file could not be written (an ``OSError``).

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
    tmp = _partial_path(path)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        raise RunStorageError(error, f"{path} (it is as it was before the save)") from None
    except BaseException:
        _remove(tmp)
        raise


def _partial_path(path):
    """Where ``save_model`` writes ``path`` before renaming it."""
    return os.fspath(path)[: -len(".keras")] + ".partial.keras"


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
