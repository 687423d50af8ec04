"""JSON helpers shared by every subpackage (training runs, reports, the CLI)."""

import json
import os


def json_default(value):
    """``json.dump``'s ``default``: NumPy scalars and arrays as Python values.

    Example:

    >>> import json, numpy as np
    >>> from keras_brnpa._json import json_default
    >>> json.dumps({"a": np.float32(0.5), "b": np.arange(2)}, default=json_default)
    '{"a": 0.5, "b": [0, 1]}'
    """
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path, data, sort_keys=True):
    """Write ``data`` as JSON to ``path`` atomically (never half a file).

    The text goes to ``<path>.tmp``, is synced to the disk and then renamed
    over ``path``: a crash or a full disk leaves either the previous file
    or the new one, and no ``.tmp`` file.

    Args:
        path: the destination file.
        data: JSON-able data (NumPy scalars and arrays allowed).
        sort_keys: bool, write the keys of every dict in sorted order.

    Returns:
        ``path``.

    Example:

    >>> import os, tempfile
    >>> from keras_brnpa._json import write_json
    >>> path = write_json(os.path.join(tempfile.mkdtemp(), "a.json"), {"x": 1})
    >>> open(path).read()
    '{\\n  "x": 1\\n}\\n'
    """
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=sort_keys, default=json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    return path


def remove_quietly(path):
    """Remove the file ``path`` if it can be removed; never raise ``OSError``.

    For clean-ups on failure paths (a temporary file after a failed write),
    where the original error is the one to report.

    Example:

    >>> import os, tempfile
    >>> from keras_brnpa._json import remove_quietly
    >>> path = os.path.join(tempfile.mkdtemp(), "gone.tmp")
    >>> remove_quietly(path)  # a missing file is not an error
    >>> open(path, "w").close(); remove_quietly(path); os.path.exists(path)
    False
    """
    try:
        os.remove(path)
    except OSError:
        pass
