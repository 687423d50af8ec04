"""Finding layers of any Keras classifier: nested paths, the default feature layer."""

import keras

from keras_brnpa._checks import invalid


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
