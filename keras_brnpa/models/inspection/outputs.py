"""The output of any Keras classifier: its final activation, logits or probabilities."""

import contextlib

import keras

from keras_brnpa._checks import check_from_logits
from keras_brnpa.models.inspection.layer_paths import _is_container

#: Layers that pass their input through unchanged in inference: looking
#: for the model's final activation continues behind them.
_PASS_THROUGH = (
    keras.layers.Dropout,
    keras.layers.Identity,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.ActivityRegularization,
)


def _activation_name(function):
    if function is None:
        return "linear"
    try:
        name = keras.activations.serialize(function)
    except Exception:  # a custom callable
        name = getattr(function, "__name__", None)
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    return name if isinstance(name, str) else None


def _classify(operation):
    """``(kind, operation)`` for one operation, or ``"through"`` to look behind it."""
    if isinstance(operation, keras.layers.InputLayer):
        return "linear", None
    if _is_container(operation):
        return _final_site(operation)
    if isinstance(operation, keras.layers.Softmax):
        return "softmax", operation
    if not isinstance(operation, keras.layers.Layer):
        name = type(operation).__name__  # keras.ops.softmax etc. in a functional graph
        return {"Softmax": "softmax", "Sigmoid": "sigmoid"}.get(name), operation
    if isinstance(operation, keras.layers.Lambda):
        return None, operation
    if hasattr(operation, "activation"):
        name = _activation_name(operation.activation)
        if name in ("softmax", "sigmoid"):
            return name, operation
        return ("linear" if name else None), operation
    if isinstance(operation, _PASS_THROUGH):
        return "through", operation
    if type(operation).__module__.startswith("keras."):
        return "linear", operation  # a built-in layer with no activation
    return None, operation  # a custom layer: unknown


def _final_site(model):
    """``(kind, operation)`` of what makes the model's output.

    ``kind`` is ``"softmax"``, ``"sigmoid"``, ``"linear"`` or ``None``
    (unknown: a subclassed model, a ``Lambda``, a custom layer).
    """
    if not _is_container(model):
        return None, None
    if isinstance(model, keras.Sequential):
        for layer in reversed(model.layers):
            kind, operation = _classify(layer)
            if kind != "through":
                return kind, operation
        return "linear", None
    try:
        tensor = model.output
    except (AttributeError, ValueError):
        return None, None
    if isinstance(tensor, (list, tuple, dict)):
        return None, None
    for _ in range(1000):  # a chain of pass-through layers
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None, None
        kind, operation = _classify(history.operation)
        if kind != "through":
            return kind, operation
        tensor = operation._inbound_nodes[history.node_index].input_tensors[0]
    return None, None


def output_activation(model):
    """The activation that makes a classifier's output, read from its layers.

    Args:
        model: a ``keras.Model``.

    Returns:
        ``"softmax"`` or ``"sigmoid"`` (the output is a probability),
        ``"linear"`` (logits), or ``None`` when the layers do not say (a
        subclassed model, a ``Lambda`` or custom final layer).

    Example:

    >>> import keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((4,)),
    ...     keras.layers.Dense(3, activation="softmax")])
    >>> keras_brnpa.models.output_activation(model)
    'softmax'
    """
    return _final_site(model)[0]


def outputs_look_like_probabilities(outputs, atol=1e-3):
    """Whether every row of ``(B, K)`` outputs is in [0, 1] and sums to 1.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> keras_brnpa.models.outputs_look_like_probabilities(np.array([[0.2, 0.8]]))
    True
    """
    import numpy as np

    outputs = np.asarray(outputs, "float64")
    if outputs.ndim != 2 or outputs.shape[1] < 2 or not np.all(np.isfinite(outputs)):
        return False
    return bool(
        np.all(outputs >= -atol)
        and np.all(outputs <= 1 + atol)
        and np.allclose(outputs.sum(axis=1), 1.0, atol=atol)
    )


def resolve_from_logits(model, from_logits, outputs=None):
    """``from_logits`` with ``None`` resolved from the model.

    ``True`` / ``False`` are returned as given. ``None`` (auto-detect):
    ``False`` when the model ends with a softmax or a sigmoid (its output
    is a probability), ``True`` when it ends with a linear layer; when the
    layers do not say (subclassed model, ``Lambda``), ``outputs`` (the
    model's ``(B, K)`` outputs on some images) decide: rows that are
    probabilities (in [0, 1], summing to 1) mean ``False``.

    Args:
        model: a ``keras.Model`` or a callable.
        from_logits: ``None``, ``True`` or ``False``.
        outputs: optional ``(B, K)`` array of the model's outputs.

    Returns:
        bool.

    Example:

    >>> import keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> keras_brnpa.models.resolve_from_logits(model, None)
    True
    """
    from_logits = check_from_logits(from_logits)
    if from_logits is not None:
        return from_logits
    kind = output_activation(model) if isinstance(model, keras.Model) else None
    if kind in ("softmax", "sigmoid"):
        return False
    if kind == "linear":
        return True
    if outputs is None:
        return True
    return not outputs_look_like_probabilities(outputs)


@contextlib.contextmanager
def logits_view(model):
    """Within the block, ``model`` outputs the logits before its final softmax.

    Gradient explanations (Grad-CAM and friends) are defined on the class
    score before the softmax; a model that ends with
    ``Dense(activation="softmax")``, a ``Softmax`` layer, an
    ``Activation("softmax")`` or ``keras.ops.softmax`` is switched, for the
    duration of the block, to output that score, and restored on exit (also
    on error). Models that end otherwise are left as they are.

    Args:
        model: a ``keras.Model``.

    Yields:
        ``True`` when the final softmax was removed, else ``False``.

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((4,)),
    ...     keras.layers.Dense(3, activation="softmax")])
    >>> x = np.ones((1, 4), "float32")
    >>> with keras_brnpa.models.logits_view(model) as switched:
    ...     logits = keras.ops.convert_to_numpy(model(x))
    >>> switched, bool(np.allclose(keras.ops.convert_to_numpy(model(x)),
    ...     np.exp(logits) / np.exp(logits).sum()))
    (True, True)
    """
    kind, operation = _final_site(model)
    if kind != "softmax" or operation is None:
        yield False
        return
    if hasattr(operation, "activation") and not isinstance(operation, keras.layers.Softmax):
        saved = operation.activation
        operation.activation = keras.activations.linear
        try:
            yield True
        finally:
            operation.activation = saved
        return
    had_own = "call" in vars(operation)
    saved = vars(operation).get("call")

    def identity(inputs, *args, **kwargs):
        return inputs

    operation.call = identity
    try:
        yield True
    finally:
        if had_own:
            operation.call = saved
        else:
            del operation.call
