"""One process per output folder: the lock of ``brnpa`` commands and of
``training.fit_resumable`` (no Keras import).

``folder_lock(path)`` holds ``path/.brnpa.lock`` (an ``flock`` on the file,
which holds the owner's process id) while its block runs and removes the
file at the end. The system releases an ``flock`` when its process dies,
even by ``kill -9``: the file such a process leaves behind is taken over by
the next caller, with a warning naming the dead process. The lock is
re-entrant within one process (the CLI holds it around
``fit_resumable``, which takes it again). Where ``fcntl`` is missing
(Windows), there is no lock.
"""

import contextlib
import os
import warnings

from keras_brnpa._warnings import BRNPAWarning

#: The lock file of a run or output folder.
LOCK_FILE = ".brnpa.lock"

# realpath of the folder -> [file descriptor, depth] held by this process.
_HELD = {}


class FolderInUseError(RuntimeError):
    """Another process holds the folder's lock (``.brnpa.lock``).

    Raised by ``keras_brnpa.training.fit_resumable`` (and reported by the
    ``brnpa`` commands) when another process works in the same folder.

    Attributes:
        path: the folder.
        pid: the process id of the lock's owner, or ``None``.

    Example:

    >>> import keras_brnpa
    >>> error = keras_brnpa.training.FolderInUseError("runs/a", 1234)
    >>> str(error)
    'another process (process 1234) is using runs/a; wait for it to finish, or choose another folder'
    >>> isinstance(error, RuntimeError), error.pid
    (True, 1234)
    """

    def __init__(self, path, pid):
        owner = f" (process {pid})" if pid else ""
        super().__init__(f"another process{owner} is using {path}; wait for it to finish, "
                         "or choose another folder")
        self.path = path
        self.pid = pid


def _read_pid(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def _acquire(fcntl, path, lock_path):
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise FolderInUseError(path, pid) from None
        # The previous owner may have removed the file between our open and
        # our flock: then we locked an orphan inode, and start again.
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def folder_lock(path):
    """Hold ``path/.brnpa.lock`` (created with ``path``) while the block runs.

    Raises:
        FolderInUseError: another process holds it.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    key = os.path.realpath(path)
    held = _HELD.get(key)
    if held is not None:
        held[1] += 1
        try:
            yield
        finally:
            held[1] -= 1
        return
    os.makedirs(path, exist_ok=True)
    lock_path = os.path.join(path, LOCK_FILE)
    fd = _acquire(fcntl, path, lock_path)
    previous = _read_pid(fd)
    if previous is not None and previous != os.getpid():
        warnings.warn(f"{path}: took over the lock of process {previous}, which ended without "
                      "removing it", BRNPAWarning, stacklevel=3)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[key]
        try:
            os.remove(lock_path)
        except OSError:
            pass
        os.close(fd)
