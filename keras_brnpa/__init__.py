"""keras_brnpa: BR-NPA attention for Keras 3 image classifiers.

Parameter-free, high-resolution attention maps that explain a classifier's
decision (Gomez et al., Pattern Recognition 2022), on TensorFlow, JAX and
PyTorch.

Example:

>>> import keras, keras_brnpa
>>> model = keras.Sequential([
...     keras.Input((32, 32, 3)),
...     keras.layers.Conv2D(8, 3, activation="relu"),
...     keras_brnpa.BRNPAAttention(n_parts=3),
...     keras.layers.Dense(10),
... ])
>>> model.output_shape
(None, 10)
"""

# The package is imported lazily: ``import keras_brnpa`` (and ``brnpa
# --help``) loads no Keras backend. A submodule or class is imported on
# first use (PEP 562 ``__getattr__``). The Keras-serialisable classes (the
# layers, the losses, the Distiller) are registered as soon as Keras is
# imported, before or after this package, so that ``keras.models.load_model``
# finds them without any other step.
import importlib as _importlib
import sys as _sys
import typing as _typing

from keras_brnpa.version import __version__

if _typing.TYPE_CHECKING:  # for static tools (IDEs, the API pages): the real imports
    from keras_brnpa import datasets  # noqa: F401
    from keras_brnpa import distillation  # noqa: F401
    from keras_brnpa import distribute  # noqa: F401
    from keras_brnpa import evaluation  # noqa: F401
    from keras_brnpa import explain  # noqa: F401
    from keras_brnpa import fewshot  # noqa: F401
    from keras_brnpa import losses  # noqa: F401
    from keras_brnpa import metrics  # noqa: F401
    from keras_brnpa import models  # noqa: F401
    from keras_brnpa import training  # noqa: F401
    from keras_brnpa import visualize  # noqa: F401
    from keras_brnpa.distillation import Distiller  # noqa: F401
    from keras_brnpa.layers import BilinearAttentionPooling  # noqa: F401
    from keras_brnpa.layers import BRNPAAttention  # noqa: F401

_SUBMODULES = (
    "cli", "datasets", "distillation", "distribute", "evaluation", "explain", "fewshot",
    "layers", "losses", "metrics", "models", "training", "visualize",
)
_CLASSES = {
    "BRNPAAttention": "keras_brnpa.layers",
    "BilinearAttentionPooling": "keras_brnpa.layers",
    "Distiller": "keras_brnpa.distillation",
}
_SERIALIZABLES = ("keras_brnpa.layers", "keras_brnpa.losses", "keras_brnpa.distillation")


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"keras_brnpa.{name}")
    if name in _CLASSES:
        return getattr(_importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module 'keras_brnpa' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES) | set(_CLASSES))


def _register_serializables():
    for module in _SERIALIZABLES:
        _importlib.import_module(module)


class _AfterKerasImport:
    """A one-shot import hook: registers the package's classes once Keras is imported."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        _sys.meta_path[:] = [f for f in _sys.meta_path if f is not self]
        import importlib.util

        spec = importlib.util.find_spec("keras")
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader:
    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            _register_serializables()
        except ImportError:  # pragma: no cover - a broken install shows later
            pass


if "keras" in _sys.modules:
    _register_serializables()
else:
    _sys.meta_path.insert(0, _AfterKerasImport())

__all__ = [
    "BRNPAAttention",
    "BilinearAttentionPooling",
    "Distiller",
    "__version__",
    "datasets",
    "distillation",
    "distribute",
    "evaluation",
    "explain",
    "fewshot",
    "losses",
    "metrics",
    "models",
    "training",
    "visualize",
]
