"""Looking inside any Keras classifier: nested layers and the output scale.

The explainers and the metrics take users' own models: a
``keras.applications`` backbone nested in a functional classifier, a
``Sequential`` stack, a model ending with a softmax or with logits. These
helpers find a layer by a nested path (``"outer/inner"``) or by object, and
tell whether the model's output is a probability (a final softmax or
sigmoid) or a logit.
"""

import contextlib

import keras

from keras_brnpa._checks import check_from_logits
from keras_brnpa._checks import invalid
from keras_brnpa._warnings import BRNPAWarning

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


def _describe(model):
    return f"<{type(model).__name__} {getattr(model, 'name', '?')!r}>"


def _is_container(layer):
    """A functional or Sequential model: one whose layers can be walked."""
    return isinstance(layer, keras.Model) and (
        isinstance(layer, keras.Sequential) or hasattr(layer, "_nodes_by_depth")
    )


def is_graph_model(model):
    """Whether ``model`` is functional or ``Sequential`` (not subclassed).

    Gradient and activation explainers split a model at a layer, which
    needs its graph of layers; a subclassed model has none.

    Args:
        model: a ``keras.Model``.

    Returns:
        bool.

    Example:

    >>> import keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> keras_brnpa.models.is_graph_model(model)
    True
    """
    return _is_container(model)


def _walk(container, prefix=""):
    """``(path, chain)`` of every layer below ``container``, depth first."""
    for layer in container.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        path = prefix + layer.name
        yield path, [layer]
        if _is_container(layer):
            for sub_path, chain in _walk(layer, path + "/"):
                yield sub_path, [layer] + chain


def _layer_names(model, limit=40):
    names = [path for path, _ in _walk(model)]
    text = ", ".join(names[:limit])
    return text + (f", ... ({len(names)} layers)" if len(names) > limit else "")


def _not_found(model, layer, reason):
    return invalid(
        "layer_name",
        layer,
        f"a layer of the model, by name, by nested path 'outer/inner' or as a layer object "
        f"({reason}; the model's layers: {_layer_names(model)})",
    )


def find_layer(model, layer):
    """Find a layer of a model, looking inside nested models.

    Args:
        model: a functional or ``Sequential`` ``keras.Model``.
        layer: a layer object, a top-level layer name, a nested path
            ``"outer/inner"`` (each part the name of a layer of the model
            before it), or the name of a layer anywhere inside nested
            models when exactly one layer has that name.

    Returns:
        ``(path, chain)``: the full path ``"outer/inner"`` and the list of
        layers from the top-level one down to the layer itself.

    Example:

    >>> import keras, keras_brnpa
    >>> inner = keras.Sequential([keras.Input((8, 8, 3)),
    ...     keras.layers.Conv2D(4, 3, name="conv")], name="features")
    >>> inputs = keras.Input((8, 8, 3))
    >>> outputs = keras.layers.Dense(2)(
    ...     keras.layers.GlobalAveragePooling2D()(inner(inputs)))
    >>> model = keras.Model(inputs, outputs)
    >>> keras_brnpa.models.find_layer(model, "features/conv")[0]
    'features/conv'
    >>> keras_brnpa.models.find_layer(model, "conv")[0]
    'features/conv'
    """
    if not _is_container(model):
        raise invalid(
            "model",
            _describe(model),
            "a functional or Sequential keras.Model (the layers of a subclassed model "
            "cannot be looked up)",
        )
    if isinstance(layer, keras.layers.Layer):
        for path, chain in _walk(model):
            if chain[-1] is layer:
                return path, chain
        raise _not_found(model, f"<{type(layer).__name__} {layer.name!r}>", "not in the model")
    if not isinstance(layer, str) or not layer.strip("/"):
        raise invalid(
            "layer_name", layer, "None, a layer name, a nested path 'outer/inner' or a layer"
        )
    parts = layer.strip("/").split("/")
    container, chain = model, []
    for depth, part in enumerate(parts):
        if not _is_container(container):
            raise _not_found(model, layer, f"{'/'.join(parts[:depth])} is not a model")
        matches = [child for child in container.layers if child.name == part]
        if not matches:
            break
        container = matches[0]
        chain.append(container)
    else:
        return "/".join(parts), chain
    if len(parts) == 1:
        found = [(path, c) for path, c in _walk(model) if c[-1].name == parts[0]]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise _not_found(
                model,
                layer,
                "several layers have that name: " + ", ".join(path for path, _ in found)
                + "; give the full path",
            )
    raise _not_found(model, layer, "no such layer")


def _output_shape(layer):
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return None
    return tuple(shape)


def default_feature_layer(model):
    """The layer the explainers use when none is named.

    ``"backbone"`` when the model has a top-level layer of that name (the
    ``build_classifier`` models); otherwise the last layer whose output is a
    4-D feature map, looking inside nested models (a ``keras.applications``
    backbone with ``pooling="avg"`` gives its last convolutional block).
    Layers whose output has the shape of the model's input (``Rescaling``
    and other preprocessing) are not feature maps.

    Args:
        model: a functional or ``Sequential`` ``keras.Model``.

    Returns:
        The path of the layer (``"outer/inner"`` for a nested one).

    Example:

    >>> import keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((8, 8, 3)),
    ...     keras.layers.Conv2D(4, 3, name="conv"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> keras_brnpa.models.default_feature_layer(model)
    'conv'
    """
    if not _is_container(model):
        raise invalid(
            "model",
            _describe(model),
            "a functional or Sequential keras.Model (a subclassed model has no layer to "
            "explain from)",
        )
    if "backbone" in [layer.name for layer in model.layers]:
        return "backbone"
    input_shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None

    def search(container, prefix):
        for layer in reversed(container.layers):
            if isinstance(layer, keras.layers.InputLayer):
                continue
            shape = _output_shape(layer)
            is_map = shape is not None and len(shape) == 4 and shape != input_shape
            if is_map:
                return prefix + layer.name
            if _is_container(layer):
                found = search(layer, prefix + layer.name + "/")
                if found:
                    return found
        return None

    found = search(model, "")
    if found is None:
        raise invalid(
            "layer_name",
            None,
            "the name of a layer with a 4-D output (the model has none, nested models "
            "included)",
        )
    return found


# ---------------------------------------------------------------- the output
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


# ------------------------------------------------------------- the input
#: Input conventions a model may expect, for images read in [0, 1].
INPUT_SCALES = ("0-1", "0-255", "imagenet")
#: Per-channel (RGB) mean of ImageNet images in [0, 1]: what ImageNet weights
#: normalised by mean and std subtract (``"imagenet"`` everywhere in the package).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
#: Per-channel (RGB) standard deviation of ImageNet images in [0, 1].
IMAGENET_STD = (0.229, 0.224, 0.225)


def _first_layers(model):
    """The layers a model applies first, nested models opened, in order."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if _is_container(layer):
            yield from _first_layers(layer)
        else:
            yield layer


def input_scale(model):
    """The pixel range a classifier expects, read from its own first layers.

    A ``Rescaling`` layer with a scale of at most 1/100 (``1/255``,
    ``1/127.5``) before any convolution or dense layer means the model
    takes 0-255 pixels; a ``Normalization`` layer whose mean exceeds 2
    too. Otherwise the package's convention, [0, 1], is assumed (the
    ``build_classifier`` models, the synthetic data and ``image_folder``
    use it). A model that expects ImageNet mean/std inputs without a layer
    that says so cannot be told apart: pass the scale explicitly.

    Args:
        model: a functional or ``Sequential`` ``keras.Model``.

    Returns:
        ``"0-1"`` or ``"0-255"``.

    Example:

    >>> import keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
    ...     keras.layers.Conv2D(2, 3)])
    >>> keras_brnpa.models.input_scale(model)
    '0-255'
    """
    import numpy as np

    if not _is_container(model):
        return "0-1"
    for layer in _first_layers(model):
        if isinstance(layer, keras.layers.Rescaling):
            scale = np.asarray(layer.scale, "float64")
            return "0-255" if np.all(np.abs(scale) <= 0.01) else "0-1"
        if isinstance(layer, keras.layers.Normalization):
            mean = getattr(layer, "mean", None)
            if mean is None:
                return "0-1"
            mean = np.asarray(keras.ops.convert_to_numpy(mean), "float64")
            return "0-255" if np.any(mean > 2.0) else "0-1"
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense, keras.layers.Flatten)):
            break
    return "0-1"


def check_input_scale(model, images, name="images"):
    """Warn when images do not look like the pixel range the model takes.

    Images look like 0-255 pixels when they are non-negative with a
    maximum above 1.5 (integer 0-255 images, or floats that were never
    divided by 255): given to a model whose ``input_scale`` is ``"0-1"``
    they get a ``UserWarning``. The reverse, non-negative images with a
    maximum of at most 1.5 given to a ``"0-255"`` model, too. Images with
    negative values (mean/std normalised) and all-zero images are left
    alone. Nothing is changed: a warning only.

    Args:
        model: a ``keras.Model``.
        images: NumPy array of images (finite values).
        name: the argument's name, for the message.

    Returns:
        ``"0-1"``, ``"0-255"`` or ``None``: the range the images look like
        when it disagrees with the model's, else ``None``.

    Example:

    >>> import warnings, numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 3)])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     keras_brnpa.models.inspection.check_input_scale(
    ...         model, np.full((1, 4, 4, 3), 200, "uint8"))
    '0-255'
    >>> "divide them by 255" in str(caught[0].message)
    True
    """
    import warnings

    import numpy as np

    images = np.asarray(images)
    if images.size == 0:
        return None
    low, high = float(images.min()), float(images.max())
    if low < 0 or high <= 0:
        return None
    looks = "0-255" if high > 1.5 else "0-1"
    expected = input_scale(model)
    if looks == expected:
        return None
    if looks == "0-255":
        advice = (
            "the model takes [0, 1] inputs (keras_brnpa.models.input_scale(model) == '0-1'): "
            "divide them by 255, or give the model a Rescaling(1 / 255) first layer"
        )
    else:
        advice = (
            "the model takes 0-255 inputs (its first layers rescale them): multiply them by 255"
        )
    warnings.warn(
        f"{name} look like {looks} pixels (values {low:g} to {high:g}) but {advice}.",
        BRNPAWarning,
        stacklevel=3,
    )
    return looks


def scale_images(images, scale):
    """Images in [0, 1] converted to a model's input convention.

    Args:
        images: array ``(..., 3)`` in [0, 1].
        scale: ``"0-1"`` (unchanged), ``"0-255"`` (times 255) or
            ``"imagenet"`` (minus the ImageNet mean, over its std).

    Returns:
        float32 NumPy array of the same shape.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> keras_brnpa.models.scale_images(np.full((1, 3), 0.5), "0-255").tolist()
    [[127.5, 127.5, 127.5]]
    """
    import numpy as np

    if scale not in INPUT_SCALES:
        raise invalid("scale", scale, "one of " + ", ".join(repr(s) for s in INPUT_SCALES))
    images = np.asarray(images, "float32")
    if scale == "0-255":
        return images * np.float32(255.0)
    if scale == "imagenet":
        return ((images - np.asarray(IMAGENET_MEAN, "float32"))
                / np.asarray(IMAGENET_STD, "float32")).astype("float32")
    return images
