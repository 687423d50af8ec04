"""Progress for people and for log files (Keras imported only for a bar).

On a terminal, a live ``keras.utils.Progbar``; when the output goes to a
file or a pipe, one plain line per 10 % (a Progbar there writes one line
per update: about 1,000 lines for one RISE run).
"""

import sys


def is_terminal(stream=None):
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress(total, label=None, unit="image"):
    """``update(done)``: a live bar on a terminal, else a line per 10 %."""
    if is_terminal():
        import keras

        if label:
            print(label, flush=True)
        bar = keras.utils.Progbar(total, unit_name=unit)
        return lambda done: bar.update(done)
    state = {"decile": 0}
    prefix = f"{label}: " if label else ""

    def update(done):
        decile = 10 if not total else min(10, int(10 * done / total))
        if decile > state["decile"]:
            state["decile"] = decile
            print(f"{prefix}{int(100 * done / total)}% ({done}/{total} {unit}s)", flush=True)

    return update


def training_lines():
    """A Keras callback printing one line per 10 % of a ``fit`` (for log files).

    Each line gives the epoch, the batch and the logs at that point; a tenth
    that ends with an epoch waits for the epoch's validation logs. When the
    number of steps is unknown it prints one line per epoch.
    """
    import keras

    def text(logs):
        return ", ".join(f"{key} {value:.4g}" for key, value in (logs or {}).items()
                         if isinstance(value, (int, float)))

    class TrainingLines(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.decile = None
            self.pending = False

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            epochs = self.params.get("epochs") or 1
            if self.decile is None:  # a resumed run starts at its epoch
                self.decile = int(10 * epoch / epochs)

        def on_train_batch_end(self, batch, logs=None):
            steps, epochs = self.params.get("steps"), self.params.get("epochs") or 1
            if not steps:
                return
            fraction = (self.epoch * steps + batch + 1) / (epochs * steps)
            decile = int(10 * fraction)
            if decile > self.decile:
                self.decile = decile
                if batch + 1 == steps:
                    self.pending = True  # printed with the validation logs
                else:
                    print(f"{int(100 * fraction)}% (epoch {self.epoch + 1}/{epochs}, batch "
                          f"{batch + 1}/{steps}): {text(logs)}", flush=True)

        def on_epoch_end(self, epoch, logs=None):
            epochs = self.params.get("epochs") or 1
            if self.pending or not self.params.get("steps"):
                self.pending = False
                done = int(100 * (epoch + 1) / epochs)
                print(f"{done}% (epoch {epoch + 1}/{epochs} done): {text(logs)}", flush=True)

    return TrainingLines()
