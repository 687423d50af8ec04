"""What the ``brnpa`` commands share: errors, option types, quiet imports,
model files, the output-folder lock and the data options.

Nothing here imports Keras or a backend at module level: ``brnpa --help``
must answer at once.
"""

import argparse
import contextlib
import math
import os
import sys

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

SYNTHETIC = "synthetic"
BACKBONES = ("tiny", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
HEADS = ("brnpa", "bcnn", "gap")
LOCK_FILE = ".brnpa.lock"  # keras_brnpa._lock.LOCK_FILE


class CLIError(Exception):
    """A user error: reported as one line on stderr, exit status ``code``.

    Example:

    >>> from keras_brnpa import cli
    >>> error = cli.CLIError("--model: model file not found: m.keras")
    >>> error.code, str(error)
    (1, '--model: model file not found: m.keras')
    """

    def __init__(self, message, code=EXIT_ERROR):
        super().__init__(message)
        self.code = code


class UsageError(CLIError):
    """A wrong option: exit status 2, like argparse's own errors."""

    def __init__(self, message):
        super().__init__(message, code=EXIT_USAGE)


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help with every option's default, descriptions kept as written.

    A default the help text already states ("default: ..."), an unset
    default (``None``), a flag's ``False`` and a required option's are not
    repeated.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            "default" in text.lower()
            or action.default is None
            or action.default is False
            or action.default == argparse.SUPPRESS
            or action.required
        ):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def say(message, quiet=False):
    """A progress line on stdout (silenced by ``--quiet``)."""
    if not quiet:
        print(f"[brnpa] {message}", flush=True)


def result(message):
    """A result line on stdout: printed even with ``--quiet``."""
    print(f"[brnpa] {message}", flush=True)


def warn(args, message):
    """One warning line on stderr, ``brnpa COMMAND: warning: ...`` (not with ``--quiet``)."""
    if not getattr(args, "quiet", False):
        print(f"brnpa {getattr(args, 'command', '')}: warning: {message}".replace("  ", " "),
              file=sys.stderr, flush=True)


def first_line(error):
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) < 400 else line[:397] + "..."


# CLI options of the library's argument names, for the library's errors.
_OPTIONS = {"n_parts": "--n-parts", "input_shape": "--image-size", "image_size": "--image-size",
            "dropout": "--dropout", "weights": "--weights", "backbone": "--backbone",
            "resolution": "--resolution", "num_images": "--num-images",
            "num_classes": "--num-classes", "batch_size": "--batch-size",
            "validation_split": "--validation-split", "layer_name": "--layer"}


def name_option(text):
    """A library error line ("Invalid value for argument n_parts...") led by its option."""
    import re

    match = re.search(r"argument (\w+)", text)
    option = _OPTIONS.get(match.group(1)) if match else None
    return f"{option}: {text}" if option else text


# ----------------------------------------------------------- option types
def _number(kind, text, test, expected):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value) or not test(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text):
    return _number(int, text, lambda v: v >= 1, "an integer >= 1")


def class_count(text):
    return _number(int, text, lambda v: v >= 2, "an integer >= 2 (a classifier needs two classes)")


def seed(text):
    return _number(int, text, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)")


def positive_float(text):
    return _number(float, text, lambda v: v > 0, "a number > 0")


def unit_float(text):
    return _number(float, text, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def dropout(text):
    return _number(float, text, lambda v: 0 <= v < 1, "a number in [0, 1)")


# ---------------------------------------------------------- quiet imports
@contextlib.contextmanager
def native_stderr_hidden(restore=True):
    """Drop what C++ libraries (TensorFlow, XLA) write on stderr.

    While a command runs, file descriptor 2 points to ``/dev/null`` and
    Python's ``sys.stderr`` to the real stderr, so the command's messages
    and Python warnings still show. ``BRNPA_DEBUG=1`` keeps everything;
    ``TF_CPP_MIN_LOG_LEVEL`` set by the user is respected. With
    ``restore=False`` (the process's own command line) descriptor 2 stays
    on ``/dev/null`` until the process ends: TensorFlow's data threads may
    still write while Python shuts down after Ctrl-C.
    """
    user_level = "TF_CPP_MIN_LOG_LEVEL" in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd != 2 or os.environ.get("BRNPA_DEBUG") or user_level:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    original = sys.stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
        yield
    finally:
        if restore:
            try:
                sys.stderr.flush()
                sys.stderr.close()
            finally:
                sys.stderr = original
                os.dup2(saved, 2)
                os.close(saved)
                os.close(devnull)
        else:
            sys.stderr.flush()


def import_keras():
    """Import Keras and the package quietly; returns ``keras``.

    Other libraries' warnings are hidden; the package's own (see
    ``package_warnings``) still show.
    """
    import logging
    import warnings

    import keras

    import keras_brnpa  # noqa: F401  (registers the package's layers)

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for category in (UserWarning, DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    from keras_brnpa._warnings import BRNPAWarning

    warnings.filterwarnings("default", category=BRNPAWarning)
    return keras


@contextlib.contextmanager
def package_warnings(prefix, quiet):
    """The package's warnings as one line each on stderr (none with ``--quiet``).

    ``prefix`` starts each line (``"brnpa train"``); repeated identical
    warnings are shown once.
    """
    import warnings

    from keras_brnpa._warnings import BRNPAWarning

    shown = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = first_line(message)
        if quiet or text in shown:
            return
        shown.add(text)
        print(f"{prefix}: warning: {text}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        if quiet:
            warnings.simplefilter("ignore")
        else:
            warnings.filterwarnings("default", category=BRNPAWarning)
        yield


# ---------------------------------------------------------------- models
def load_model(path, option="--model"):
    """Load a ``.keras`` classifier, or raise a one-line ``CLIError``."""
    import zipfile

    keras = import_keras()
    if not os.path.exists(path):
        raise CLIError(f"{option}: model file not found: {path}")
    if not os.path.isfile(path):
        raise CLIError(f"{option}: not a file: {path}")
    if not zipfile.is_zipfile(path):
        raise CLIError(
            f"{option}: {path} is not a valid .keras file (a .keras model is a zip archive; "
            "this file is truncated, corrupt or of another format)"
        )
    _check_model_size(path, option)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # zip, h5, json and deserialisation errors
        raise CLIError(f"{option}: {path} is not a valid .keras file: {first_line(error)}") from None


#: The largest ``config.json`` of a ``.keras`` file that is read (uncompressed).
MAX_CONFIG_BYTES = 64 * 2**20
#: The most values one input image of a loaded model may declare
#: (``H * W * C``: 8192 x 8192 x 4 at most, 1 GiB in float32).
MAX_INPUT_VALUES = 2**28


def _declared_inputs(node):
    """Every ``batch_shape`` (or ``batch_input_shape``) list in a model config."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("batch_shape", "batch_input_shape") and isinstance(value, list):
                yield value
            else:
                yield from _declared_inputs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _declared_inputs(value)


def _check_model_size(path, option):
    """Refuse, before deserialising, a config too large to read or a huge input.

    A ``.keras`` whose ``config.json`` inflates to gigabytes would be read
    for minutes; a model declaring a 100000x100000 input would only fail
    with an out-of-memory error.
    """
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            with archive.open("config.json") as f:
                text = f.read(MAX_CONFIG_BYTES + 1)
    except KeyError:
        raise CLIError(f"{option}: {path} is not a valid .keras file (no config.json inside)"
                       ) from None
    except (OSError, zipfile.BadZipFile, RuntimeError) as error:
        raise CLIError(f"{option}: {path} is not a valid .keras file: {first_line(error)}"
                       ) from None
    if len(text) > MAX_CONFIG_BYTES:
        raise CLIError(f"{option}: {path}: its config.json is larger than "
                       f"{MAX_CONFIG_BYTES // 2**20} MiB uncompressed; not loaded (a Keras "
                       "model's config is a few hundred KiB)")
    try:
        config = json.loads(text)
    except ValueError as error:
        raise CLIError(f"{option}: {path} is not a valid .keras file: config.json: "
                       f"{first_line(error)}") from None
    for shape in _declared_inputs(config):
        dims = [d for d in shape[1:] if isinstance(d, int)]
        values = math.prod(dims) if dims else 0
        if values > MAX_INPUT_VALUES:
            raise CLIError(f"{option}: {path} declares an input of shape "
                           f"{tuple(shape[1:])}: {values:,} values per image, more than the "
                           f"{MAX_INPUT_VALUES:,} this command accepts; not loaded")


def model_image_size(model, fallback=None):
    """``(H, W)`` of the model's input, or ``fallback`` when it is free."""
    shape = tuple(model.input_shape[1:3])
    if None in shape:
        size = fallback or 224
        return (size, size)
    return shape


# ------------------------------------------------------ the output folder
@contextlib.contextmanager
def output_lock(path):
    """Hold ``path/.brnpa.lock`` for the whole command.

    A second ``brnpa`` run (or ``training.fit_resumable``) on the same
    folder is refused at once instead of mixing its files with the first's.
    The lock file holds the process id and is removed at the end; the
    system releases the lock of a killed process, whose file the next
    command takes over with a notice.
    """
    from keras_brnpa import _lock

    try:
        lock = _lock.folder_lock(path)
        lock.__enter__()
    except _lock.FolderInUseError as error:
        owner = f" (process {error.pid})" if error.pid else ""
        raise CLIError(f"another brnpa command{owner} is using {path}; wait for it to finish, "
                       "or choose another --output") from None
    except OSError as error:
        raise CLIError(
            f"--output: cannot write to {path}: {error.strerror or first_line(error)}"
        ) from None
    try:
        yield
    except BaseException:
        if not lock.__exit__(*sys.exc_info()):
            raise
    else:
        lock.__exit__(None, None, None)


def _resumable(path):
    """Whether ``path`` holds finished epochs of a run (a reason to keep it)."""
    for _, _, files in os.walk(path):
        if "history.json" in files or "model.keras" in files:
            return True
    return False


@contextlib.contextmanager
def output_folder(path, resumable=False):
    """Lock ``path`` for the command; a failure leaves no trace of it.

    When the block fails (an error, Ctrl-C) everything the command created
    in ``path`` is removed (and ``path`` itself when the command created
    it), unless ``resumable`` and the folder holds finished epochs that the
    same command resumes from. The lock file never outlives the command.
    """
    existed = os.path.isdir(path)
    before = set(os.listdir(path)) if existed else set()
    try:
        with output_lock(path):
            try:
                yield
            except BaseException:
                if not (resumable and _resumable(path)):
                    _remove_new(path, before)
                raise
    finally:
        if not existed:
            with contextlib.suppress(OSError):
                os.rmdir(path)  # only when empty


def _remove_new(path, before):
    import shutil

    from keras_brnpa import _lock

    for name in set(os.listdir(path)) - before - {_lock.LOCK_FILE}:
        target = os.path.join(path, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(target)


def check_writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".brnpa-write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise CLIError(
            f"--output: cannot write to {path}: {error.strerror or first_line(error)}"
        ) from None


def claim_run(path, command, config, overwrite, files):
    """``training.start_run`` with the CLI's one-line errors."""
    from keras_brnpa import training

    check_writable(path)
    try:
        return training.start_run(path, config=config, name=command, overwrite=overwrite,
                                  files=files)
    except ValueError as error:
        message = str(error).replace("overwrite=True", "--overwrite").replace(
            "choose another directory", "choose another --output")
        raise CLIError(message) from None


def verbose_level(args):
    """Progress of ``fit``: 0 with --quiet, 1 (a live bar) on a terminal, else
    ``"lines"`` (one line per 10 %, ``keras_brnpa._progress.training_lines``)."""
    from keras_brnpa._progress import is_terminal

    if getattr(args, "quiet", False):
        return 0
    return 1 if is_terminal() else "lines"



# ------------------------------------------------------------- Ctrl-C
@contextlib.contextmanager
def interrupts_reach_training():
    """Ctrl-C during ``fit`` stops at the end of the current batch.

    TensorFlow runs the Python side of a data pipeline inside its own ops:
    a ``KeyboardInterrupt`` raised there is taken for a data error (a stray
    ``[[{{node PyFunc}}]]`` line) and can be lost. While a ``fit`` runs,
    the handler only records Ctrl-C; the callback this yields raises
    ``KeyboardInterrupt`` after the current batch, in plain Python. Outside
    ``fit``, and at a second Ctrl-C, it raises at once.
    """
    import signal

    import keras

    state = {"fitting": False, "requested": False}

    class StopOnCtrlC(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            state["fitting"] = True

        def on_train_end(self, logs=None):
            state["fitting"] = False

        def on_train_batch_end(self, batch, logs=None):
            if state["requested"]:
                state["fitting"] = False
                raise KeyboardInterrupt

        on_test_batch_end = on_train_batch_end

    def handler(signum, frame):
        if state["fitting"] and not state["requested"]:
            state["requested"] = True
            return
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        yield StopOnCtrlC()
        return
    try:
        yield StopOnCtrlC()
        if state["requested"]:  # Ctrl-C in the last batch: still an interruption
            raise KeyboardInterrupt
    finally:
        signal.signal(signal.SIGINT, previous)
