"""Multi-device data-parallel training on the engines Keras already has.

Nothing here is home-made parallelism: on JAX the work is done by
``keras.distribution.DataParallel`` (one SPMD program over a device mesh),
on TensorFlow by ``tf.distribute.MirroredStrategy`` (one replica per
device, gradients all-reduced). The PyTorch backend of Keras has no
multi-device engine; ``distribution_scope`` says so clearly instead of
silently training on one device.

This is the only module of the package that dispatches on
``keras.config.backend()`` for distribution; the backends are imported
lazily, inside the functions that need them.

Typical use (what ``brnpa train --distribute`` does)::

    with keras_brnpa.distribute.distribution_scope() as replicas:
        model = keras_brnpa.models.build_classifier(200, head="brnpa")
        keras_brnpa.distribute.synchronize_batch_norm(model)
        model.compile(optimizer="sgd", loss=...)
        # batch_size is the GLOBAL batch, split over replicas.num_replicas
        model.fit(x, y, batch_size=32 * replicas.num_replicas)
"""

import contextlib
import dataclasses

import keras

from keras_brnpa._checks import invalid

#: Backends with a data-parallel engine.
SUPPORTED_BACKENDS = ("jax", "tensorflow")

_TORCH_MESSAGE = (
    "Multi-device training is not supported on the torch backend by "
    "keras_brnpa.distribute: Keras has no multi-device engine for PyTorch. "
    "Train on a single device (drop --distribute), switch to "
    "KERAS_BACKEND=jax (keras.distribution.DataParallel) or "
    "KERAS_BACKEND=tensorflow (tf.distribute.MirroredStrategy), or launch "
    "your own torch.distributed job with torchrun outside this package."
)


@dataclasses.dataclass(frozen=True)
class Replicas:
    """What ``distribution_scope`` yields: the engine and its devices.

    Attributes:
        backend: the Keras backend name.
        devices: tuple of device names, ``"gpu:0"`` style.
        num_replicas: number of data-parallel replicas (= devices). The
            ``batch_size`` given to ``fit`` is the global batch; it must be
            a multiple of ``num_replicas``.
        engine: the ``keras.distribution.DataParallel`` (JAX) or
            ``tf.distribute.MirroredStrategy`` (TensorFlow) object.

    Example:

    >>> import keras_brnpa
    >>> info = keras_brnpa.distribute.Replicas("jax", ("cpu:0",), 1, None)
    >>> info.num_replicas
    1
    """

    backend: str
    devices: tuple
    num_replicas: int
    engine: object


def _check_backend():
    backend = keras.config.backend()
    if backend == "torch":
        raise NotImplementedError(_TORCH_MESSAGE)
    if backend not in SUPPORTED_BACKENDS:
        raise NotImplementedError(
            f"keras_brnpa.distribute supports the backends "
            f"{', '.join(SUPPORTED_BACKENDS)}; the current backend is {backend!r}."
        )
    return backend


def _tf_devices(device_type=None):
    import tensorflow as tf

    found = tf.config.list_logical_devices(
        device_type.upper() if device_type else None
    )
    accelerators = [d for d in found if d.device_type.upper() != "CPU"]
    if device_type is None and accelerators:
        found = accelerators
    elif device_type is None:
        found = [d for d in found if d.device_type.upper() == "CPU"]
    return [f"{d.device_type.lower()}:{d.name.split(':')[-1]}" for d in found]


def list_devices(device_type=None):
    """Devices the current backend can train on.

    Args:
        device_type: ``None`` (the accelerators, GPUs or TPUs, if there are
            any, else the CPUs), ``"cpu"``, ``"gpu"`` or ``"tpu"``.

    Returns:
        List of device names such as ``["gpu:0", "gpu:1"]`` (empty when
        there is no device of the asked type).

    Raises:
        NotImplementedError: on the torch backend (no multi-device engine).

    Example:

    >>> import keras, keras_brnpa
    >>> if keras.config.backend() != "torch":
    ...     devices = keras_brnpa.distribute.list_devices()
    ...     print(len(devices) >= 1 and ":" in devices[0])
    ... else:
    ...     print(True)
    True
    """
    if device_type is not None and device_type not in ("cpu", "gpu", "tpu"):
        raise invalid("device_type", device_type, "None, 'cpu', 'gpu' or 'tpu'")
    backend = _check_backend()
    if backend == "tensorflow":
        return _tf_devices(device_type)
    try:
        return list(keras.distribution.list_devices(device_type))
    except RuntimeError:
        # JAX raises when asked for a platform it has no backend for.
        if device_type is None:
            raise
        return []


def _resolve_devices(devices):
    available = list_devices()
    if devices is None:
        return tuple(available)
    if isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise invalid(
                "devices",
                devices,
                f"a number of devices between 1 and {len(available)} "
                f"(available: {available})",
            )
        return tuple(available[:devices])
    if isinstance(devices, str) or not isinstance(devices, (list, tuple)) or not devices:
        raise invalid(
            "devices",
            devices,
            "None (all devices), an int (the first n devices) or a non-empty "
            f"list of device names from {available}",
        )
    names = []
    for device in devices:
        name = str(device).lower().replace("/device:", "").lstrip("/")
        kind = name.split(":")[0]
        if kind not in ("cpu", "gpu", "tpu") or name not in list_devices(kind):
            raise invalid(
                "devices",
                devices,
                f"device names among {available} (or other local devices of "
                "the same 'type:index' form)",
            )
        names.append(name)
    if len(set(names)) != len(names):
        raise invalid("devices", devices, "distinct device names")
    return tuple(names)


def data_parallel(devices=None):
    """The backend's data-parallel engine over ``devices``.

    Args:
        devices: ``None`` (every device of ``list_devices()``), an int ``n``
            (the first ``n`` of them) or a list of names like
            ``["gpu:0", "gpu:1"]``.

    Returns:
        ``keras.distribution.DataParallel`` on JAX,
        ``tf.distribute.MirroredStrategy`` on TensorFlow.

    Raises:
        NotImplementedError: on the torch backend.
        ValueError: for unknown devices.

    Example:

    >>> import keras, keras_brnpa
    >>> if keras.config.backend() != "torch":
    ...     engine = keras_brnpa.distribute.data_parallel(1)
    ...     print(type(engine).__name__ in ("DataParallel", "MirroredStrategy"))
    ... else:
    ...     print(True)
    True
    """
    return _engine(_resolve_devices(devices))


def _engine(devices):
    backend = _check_backend()
    if backend == "jax":
        return keras.distribution.DataParallel(devices=list(devices))
    import tensorflow as tf

    names = [f"/device:{d.split(':')[0].upper()}:{d.split(':')[1]}" for d in devices]
    return tf.distribute.MirroredStrategy(devices=names)


@contextlib.contextmanager
def distribution_scope(devices=None):
    """Context in which to build, compile and fit a data-parallel model.

    Inside the context, the variables of new models are replicated on every
    device and ``fit`` / ``evaluate`` / ``predict`` split each batch over the
    devices: ``batch_size`` is the global batch (a multiple of the number
    of devices), gradients are averaged over the whole batch, so the
    training trajectory is the one of a single device with the same global
    batch (up to floating-point summation order; on TensorFlow call
    ``synchronize_batch_norm`` so that batch normalisation also uses the
    global batch).

    On JAX this is ``keras.distribution.DataParallel(...).scope()``; on
    TensorFlow ``tf.distribute.MirroredStrategy(...).scope()``. For several
    hosts, see docs/backends.md (``keras.distribution.initialize()`` on
    JAX, ``MultiWorkerMirroredStrategy`` on TensorFlow).

    Args:
        devices: ``None`` (all accelerators, else all CPUs), an int ``n``
            (the first ``n`` devices) or a list of names like
            ``["gpu:0", "gpu:1"]``.

    Yields:
        A ``Replicas`` record (``backend``, ``devices``, ``num_replicas``,
        ``engine``).

    Raises:
        NotImplementedError: on the torch backend, with what to do instead.

    Example:

    >>> import keras, keras_brnpa
    >>> if keras.config.backend() != "torch":
    ...     with keras_brnpa.distribute.distribution_scope(1) as replicas:
    ...         model = keras.Sequential([
    ...             keras.Input((16, 16, 3)),
    ...             keras.layers.Conv2D(4, 3, activation="relu"),
    ...             keras_brnpa.BRNPAAttention(n_parts=2),
    ...             keras.layers.Dense(3),
    ...         ])
    ...     print(replicas.num_replicas)
    ... else:
    ...     print(1)
    1
    """
    resolved = _resolve_devices(devices)
    backend = keras.config.backend()
    engine = _engine(resolved)
    info = Replicas(backend, resolved, len(resolved), engine)
    with engine.scope():
        yield info


def _walk_layers(layer):
    yield layer
    for sub in getattr(layer, "layers", None) or []:
        if sub is not layer:
            yield from _walk_layers(sub)


def synchronize_batch_norm(model):
    """Make batch normalisation use the global batch under data parallelism.

    With ``tf.distribute.MirroredStrategy`` each replica computes its batch
    statistics on its own slice of the batch, unless the layer is
    ``synchronized`` (an all-reduce of the moments). This sets
    ``synchronized=True`` on every ``keras.layers.BatchNormalization`` of
    ``model`` (nested models included) on TensorFlow. On JAX the step is
    one program over the global batch, so the statistics are already
    global and nothing is changed. Outside a distribution scope a
    synchronized layer computes ordinary moments.

    Args:
        model: a ``keras.Model`` or layer.

    Returns:
        The number of layers changed.

    Example:

    >>> import keras, keras_brnpa
    >>> model = keras.Sequential([
    ...     keras.Input((16, 16, 3)),
    ...     keras.layers.Conv2D(4, 3),
    ...     keras.layers.BatchNormalization(),
    ...     keras_brnpa.BRNPAAttention(n_parts=2),
    ... ])
    >>> changed = keras_brnpa.distribute.synchronize_batch_norm(model)
    >>> changed == 1 if keras.config.backend() == "tensorflow" else changed == 0
    True
    """
    if not isinstance(model, keras.layers.Layer):
        raise invalid("model", model, "a keras.Model or keras.layers.Layer")
    if keras.config.backend() != "tensorflow":
        return 0
    changed = 0
    seen = set()
    for layer in _walk_layers(model):
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            changed += 1
    return changed


__all__ = [
    "Replicas",
    "SUPPORTED_BACKENDS",
    "data_parallel",
    "distribution_scope",
    "list_devices",
    "synchronize_batch_norm",
]
