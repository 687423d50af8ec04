"""The per-epoch callbacks of ``fit_resumable`` beside the backup.

``HistoryFile`` keeps ``history.json``; ``EpochSetter`` gives a data set
the epoch number so that a resumed run sees the same batches.
"""

import keras

from keras_brnpa._json import write_json
from keras_brnpa.training.run import RunStorageError
from keras_brnpa.training.run import _read_json


class HistoryFile(keras.callbacks.Callback):
    """Every epoch's logs in a JSON file, idempotent across resumptions.

    Args:
        path: the JSON file (``history.json`` of a run folder).

    Example:

    >>> import json, os, tempfile, numpy as np
    >>> from keras_brnpa.training.callbacks import HistoryFile
    >>> path = os.path.join(tempfile.mkdtemp(), "history.json")
    >>> HistoryFile(path).on_epoch_end(0, {"loss": np.float32(0.5)})
    >>> json.load(open(path))
    {'epochs': [{'epoch': 1, 'loss': 0.5}]}
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        path = self.path
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


class EpochSetter(keras.callbacks.Callback):
    """Give the data set the epoch number (same order after a resume).

    Args:
        data: a data set with a ``set_epoch(epoch)`` method.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> from keras_brnpa.training.callbacks import EpochSetter
    >>> data = keras_brnpa.datasets.ArrayDataset(
    ...     np.zeros((8, 2), "float32"), np.arange(8), batch_size=4, shuffle=True)
    >>> EpochSetter(data).on_epoch_begin(3)
    >>> data.epoch
    3
    """

    def __init__(self, data):
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch, logs=None):
        self.data.set_epoch(epoch)
