"""``fit_resumable``: ``model.fit`` that survives interruptions."""

import os

from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid
from keras_brnpa._lock import folder_lock
from keras_brnpa.training.run import BACKUP_DIR
from keras_brnpa.training.run import HISTORY_FILE
from keras_brnpa.training.run import MODEL_FILE
from keras_brnpa.training.run import _check_directory
from keras_brnpa.training.run import _partial_path
from keras_brnpa.training.run import _remove
from keras_brnpa.training.run import discard_backup
from keras_brnpa.training.run import finish_run
from keras_brnpa.training.run import read_history
from keras_brnpa.training.run import save_model
from keras_brnpa.training.run import start_run


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
    ``directory/model.keras`` (written to ``model.partial.keras`` and
    renamed; a failed save removes the partial file and the run stays
    resumable), the backup removed and ``run.json`` marked finished (with
    ``epochs_done`` and the ``final`` logs).

    One process per folder: the call holds ``directory/.brnpa.lock`` (the
    lock of the ``brnpa`` commands) from start to end, so a second
    process on the same folder gets a ``FolderInUseError`` at once instead
    of mixing its epochs with the first's. The lock is re-entrant within a
    process (a caller that already holds it, as ``brnpa train`` does, may
    call ``fit_resumable``); with ``finish=False`` it is released when the
    call returns. A lock left by a killed process is taken over with a
    warning.

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
        RunStorageError: a backup, the history or the final model could
            not be written (a full disk); the run folder stays resumable.
        FolderInUseError: another process is using ``directory``.

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
    from keras_brnpa.training.backup import RunBackup
    from keras_brnpa.training.callbacks import EpochSetter
    from keras_brnpa.training.callbacks import HistoryFile

    directory = _check_directory(directory)
    epochs = check_positive_int("epochs", epochs)
    _check_data(train_data)
    for name, value in (("overwrite", overwrite), ("finish", finish)):
        check_bool(name, value)
    for name in ("x", "y", "epochs", "initial_epoch", "validation_data", "callbacks", "verbose"):
        if name in fit_kwargs:
            raise invalid(name, fit_kwargs[name], "not given: fit_resumable sets it")
    with folder_lock(directory):
        start_run(directory, overwrite=overwrite)
        # A kill during an earlier final save may have left the partial file.
        _remove(_partial_path(os.path.join(directory, MODEL_FILE)))
        ordered = callable(getattr(train_data, "set_epoch", None))
        callbacks = list(callbacks)
        run_callbacks = [HistoryFile(os.path.join(directory, HISTORY_FILE))]
        if ordered:
            run_callbacks.insert(0, EpochSetter(train_data))
            fit_kwargs.setdefault("shuffle", False)
        run_callbacks.append(RunBackup(os.path.join(directory, BACKUP_DIR)))
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
