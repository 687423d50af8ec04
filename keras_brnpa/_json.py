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


def write_json(path, data):
    """Write ``data`` as JSON to ``path`` atomically (never half a file).

    Example:

    >>> import os, tempfile
    >>> from keras_brnpa._json import write_json
    >>> path = write_json(os.path.join(tempfile.mkdtemp(), "a.json"), {"x": 1})
    >>> open(path).read()
    '{\\n  "x": 1\\n}\\n'
    """
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=json_default)
        f.write("\n")
    os.replace(tmp, path)
    return path
