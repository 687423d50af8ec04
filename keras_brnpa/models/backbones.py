"""ResNet backbones at low and high resolution, and ``to_high_resolution`` for any CNN."""

import copy
import os

import keras

from keras_brnpa._checks import check_choice
from keras_brnpa._checks import invalid

# name -> (stackwise_filters, stackwise_blocks, block_type)
RESNET_CONFIGS = {
    "tiny": ([4, 8, 16, 32], [1, 1, 1, 1], "block"),
    "resnet18": ([64, 128, 256, 512], [2, 2, 2, 2], "basic_block"),
    "resnet34": ([64, 128, 256, 512], [3, 4, 6, 3], "basic_block"),
    "resnet50": ([64, 128, 256, 512], [3, 4, 6, 3], "block"),
    "resnet101": ([64, 128, 256, 512], [3, 4, 23, 3], "block"),
    "resnet152": ([64, 128, 256, 512], [3, 8, 36, 3], "block"),
}

#: Per-stage strides. "high" sets the strides of stages 3 and 4 to 1, so the
#: feature map is 4x larger per side (stride 8 instead of 32 overall).
RESOLUTION_STRIDES = {"low": (1, 2, 2, 2), "high": (1, 2, 1, 1)}


#: Where the ResNets come from: keras-cv (a dependency) or keras-hub (the
#: ``keras-hub`` extra: it installs TensorFlow and tensorflow-text, also for
#: JAX and PyTorch users; see docs/installation.md).
SOURCES = ("keras_cv", "keras_hub")

#: keras-hub block types of the ``RESNET_CONFIGS`` names.
_HUB_BLOCKS = {"basic_block": "basic_block", "block": "bottleneck_block"}


def _resnet_class(source="keras_cv"):
    if source == "keras_hub":
        try:
            import keras_hub
        except ImportError as error:
            raise ImportError(
                "build_backbone(source='keras_hub') needs keras-hub: pip install "
                "'keras-brnpa[keras-hub]' (it also installs TensorFlow and "
                "tensorflow-text), or use source='keras_cv'"
            ) from error
        return keras_hub.models.ResNetBackbone
    try:
        import keras_cv
    except ImportError as error:  # pragma: no cover - keras-cv is a dependency
        raise ImportError(
            "keras_brnpa's ResNet backbones need keras-cv: pip install keras-cv"
        ) from error
    return keras_cv.models.ResNetBackbone


def _check_strides(strides):
    if (
        not isinstance(strides, (list, tuple))
        or len(strides) != 4
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in strides)
    ):
        raise invalid("strides", strides, "a sequence of 4 integers >= 1, one per stage")
    return [int(s) for s in strides]


def _check_feature_model(model):
    shape = model.output_shape
    if isinstance(shape, list) or len(shape) != 4:
        raise invalid(
            "backbone",
            f"<{type(model).__name__} with output shape {shape}>",
            "a keras.Model whose output is one 4-D feature map",
        )
    return model


def build_backbone(
    name="resnet50",
    resolution="low",
    strides=None,
    weights=None,
    input_shape=(None, None, 3),
    include_rescaling=False,
    model_name="backbone",
    source="keras_cv",
):
    """Build a ResNet feature extractor at low or high resolution.

    The backbone is keras-cv's ``ResNetBackbone`` (``source="keras_cv"``,
    the default) or keras-hub's (``source="keras_hub"``, the ``keras-hub``
    extra), whose per-stage strides set the resolution: ``"low"`` is the usual ResNet (strides 1, 2, 2, 2:
    a 448 px image gives a 14x14 map); ``"high"`` is the paper's BR-NPA
    backbone (strides 1, 2, 1, 1: a 56x56 map, 16x more locations). Strides
    do not change weight shapes, so a high-resolution backbone can take the
    weights of a low-resolution one (see ``to_high_resolution``).

    Args:
        name: ``"resnet18"``, ``"resnet34"``, ``"resnet50"``,
            ``"resnet101"``, ``"resnet152"``, ``"tiny"`` (a 44k-parameter
            bottleneck ResNet with one block per stage, for tests and
            demos; 106k with keras-hub, whose stage 1 must have 64
            filters), or a ``keras.Model`` whose output is a 4-D feature map
            (returned unchanged).
        resolution: ``"low"`` or ``"high"``.
        strides: optional sequence of 4 per-stage strides, overrides
            ``resolution``.
        weights: ``None`` (random), a preset name of the source
            (keras-cv: ``"resnet50_imagenet"``, ...; keras-hub:
            ``"resnet_50_imagenet"``, ...: downloaded when online, a clear
            error offline; the preset sets the architecture, ``name`` is
            then ignored), or a path to a ``.weights.h5`` or ``.keras``
            file with the weights of the same architecture.
        input_shape: image shape, channels last.
        include_rescaling: keras-cv only: if ``True`` a
            ``Rescaling(1/255)`` layer comes first (inputs in ``[0, 255]``).
        model_name: name of the returned model.
        source: ``"keras_cv"`` or ``"keras_hub"``. The two build the same
            ResNets with different layer layouts: weights files of one do
            not load into the other.

    Returns:
        A ``keras.Model`` mapping images ``(B, H, W, 3)`` to features
        ``(B, H / s, W / s, C)`` with ``s = 32`` (low) or ``8`` (high).

    Example:

    >>> import keras_brnpa
    >>> low = keras_brnpa.models.build_backbone("tiny", input_shape=(64, 64, 3))
    >>> high = keras_brnpa.models.build_backbone(
    ...     "tiny", resolution="high", input_shape=(64, 64, 3))
    >>> low.output_shape, high.output_shape
    ((None, 2, 2, 128), (None, 8, 8, 128))
    """
    if isinstance(name, keras.Model):
        return _check_feature_model(name)
    if not isinstance(name, str) or name not in RESNET_CONFIGS:
        raise invalid(
            "name",
            name,
            "a keras.Model or one of " + ", ".join(repr(k) for k in RESNET_CONFIGS),
        )
    if strides is None:
        check_choice("resolution", resolution, tuple(RESOLUTION_STRIDES))
        strides = RESOLUTION_STRIDES[resolution]
    strides = _check_strides(strides)
    filters, blocks, block_type = RESNET_CONFIGS[name]
    check_choice("source", source, SOURCES)
    resnet = _resnet_class(source)
    if source == "keras_hub":
        if include_rescaling:
            raise invalid(
                "include_rescaling",
                include_rescaling,
                "False with source='keras_hub' (scale the images before the model)",
            )
        kwargs = dict(
            stackwise_num_strides=strides, image_shape=tuple(input_shape), name=model_name
        )
        if isinstance(weights, str) and not _looks_like_path(weights):
            return _from_preset(resnet, weights, kwargs, source)
        model = resnet(
            input_conv_filters=[16 if name == "tiny" else 64],
            input_conv_kernel_sizes=[7],
            # keras-hub's ResNet wants 64 filters in stage 1 (also for "tiny").
            stackwise_num_filters=[64] + list(filters[1:]),
            stackwise_num_blocks=list(blocks),
            block_type=_HUB_BLOCKS[block_type],
            **kwargs,
        )
        if weights is not None:
            _load_weights_file(model, weights)
        return model
    kwargs = dict(
        stackwise_strides=strides,
        include_rescaling=include_rescaling,
        input_shape=tuple(input_shape),
        name=model_name,
    )
    if isinstance(weights, str) and not _looks_like_path(weights):
        return _from_preset(resnet, weights, kwargs, source)
    model = resnet(
        stackwise_filters=list(filters),
        stackwise_blocks=list(blocks),
        block_type=block_type,
        **kwargs,
    )
    if weights is not None:
        _load_weights_file(model, weights)
    return model


def _looks_like_path(value):
    return os.sep in value or value.endswith((".h5", ".keras")) or os.path.exists(value)


def _load_weights_file(model, path):
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise invalid("weights", path, "None, a keras-cv preset name or an existing weights file")
    path = os.fspath(path)
    if path.endswith(".keras"):
        source = keras.models.load_model(path, compile=False)
        if isinstance(source, keras.Model) and "backbone" in [l.name for l in source.layers]:
            source = source.get_layer("backbone")
        model.set_weights(source.get_weights())
    else:
        model.load_weights(path)


def _from_preset(resnet, preset, kwargs, source="keras_cv"):
    library = source.replace("_", "-")
    known = sorted(resnet.presets)
    if preset not in known:
        raise invalid(
            "weights", preset, f"None, a file path or a {library} preset: " + ", ".join(known)
        )
    try:
        return resnet.from_preset(preset, **kwargs)
    except Exception as error:  # network failures come in many types
        raise RuntimeError(
            f"Could not load the {library} preset weights={preset!r} "
            f"({type(error).__name__}: {error}). Presets are downloaded on "
            "first use: connect to the internet once, or pass the path of a "
            "saved weights file instead."
        ) from error


#: Config keys of the ResNet backbones whose strides are init arguments:
#: keras-cv ``stackwise_strides``, keras-hub ``stackwise_num_strides``.
_STRIDE_KEYS = ("stackwise_strides", "stackwise_num_strides")


def _resnet_stride_key(config):
    """The stride key of a serialized keras-cv/keras-hub ResNetBackbone, or None."""
    if (
        isinstance(config, dict)
        and config.get("class_name") == "ResNetBackbone"
        and isinstance(config.get("config"), dict)
    ):
        for key in _STRIDE_KEYS:
            if key in config["config"]:
                return key
    return None


def _replace_strides(config, strides):
    """Return (new_config, count) with every ResNetBackbone's strides set."""
    key = _resnet_stride_key(config)
    if key is not None:
        config = copy.deepcopy(config)
        config["config"][key] = list(strides)
        return config, 1
    if isinstance(config, dict):
        out, count = {}, 0
        for k, value in config.items():
            out[k], c = _replace_strides(value, strides)
            count += c
        return out, count
    if isinstance(config, list):
        out, count = [], 0
        for value in config:
            new, c = _replace_strides(value, strides)
            out.append(new)
            count += c
        return out, count
    return config, 0


# ------------------------------------------------- any CNN: graph surgery
#: Layers whose ``strides`` downsample the feature map (and can be set to 1).
_STRIDED = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
)


def _is_graph(layer):
    return isinstance(layer, keras.Model) and (
        isinstance(layer, keras.Sequential) or hasattr(layer, "_nodes_by_depth")
    )


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _walk_strides(model, level, path, found):
    """Record ``(level, path, layer, node)`` for every strided layer of ``model``.

    ``level`` is the cumulative stride of the model's input; the return
    value is the cumulative stride of its output (the largest over its
    inputs where branches merge).
    """
    if isinstance(model, keras.Sequential):
        for layer in model.layers:
            level = _layer_strides(layer, level, path, found, None)
        return level
    levels = {id(t): level for t in model.inputs}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or node.operation is None:
                continue
            known = [levels[id(t)] for t in node.input_tensors if id(t) in levels]
            out = _layer_strides(node.operation, max(known, default=level), path, found, node)
            for t in node.output_tensors:
                levels[id(t)] = out
    return max(levels.get(id(t), level) for t in model.outputs)


def _layer_strides(layer, level, path, found, node):
    if _is_graph(layer):
        found.append((level, path + (layer.name,), None, None))  # a nested model's input
        return _walk_strides(layer, level, path + (layer.name,), found)
    if isinstance(layer, keras.layers.InputLayer):
        return level
    if isinstance(layer, _STRIDED):
        step = max(_pair(layer.strides))
        if step > 1:
            found.append((level, path, layer, node))
        return level * step
    return level


def _cannot(model, reason):
    return invalid(
        "model",
        f"<{type(model).__name__} {getattr(model, 'name', '?')!r}>",
        "a functional or Sequential CNN with at least two downsampling steps (strided "
        "Conv2D, DepthwiseConv2D, SeparableConv2D or pooling layers), or a model "
        "containing a keras-cv/keras-hub ResNetBackbone (build_backbone, "
        f"build_classifier) [{reason}]",
    )


def _layer_config(config, path, name):
    """The serialized config dict of layer ``name`` below the containers ``path``."""
    for part in tuple(path) + (name,):
        layers = config["config"]["layers"]
        matches = [entry for entry in layers if entry["config"].get("name") == part]
        if len(matches) != 1:
            raise KeyError(part)
        config = matches[0]
    return config["config"]


def _padding_source(node):
    """The ZeroPadding2D layer feeding ``node`` directly, or None."""
    if node is None or len(node.input_tensors) != 1:
        return None
    source = node.input_tensors[0]._keras_history[0]
    return source if isinstance(source, keras.layers.ZeroPadding2D) else None


def _generic_high_resolution(model):
    if not _is_graph(model):
        raise _cannot(model, "a subclassed model has no graph of layers to change")
    found = []
    _walk_strides(model, 1, (), found)
    containers = [(level, path) for level, path, layer, _ in found if layer is None]
    found = [entry for entry in found if entry[2] is not None]
    levels = sorted({level for level, *_ in found})
    if len(levels) < 2:
        raise _cannot(model, f"{len(levels)} downsampling step(s) found")
    last_two = set(levels[-2:])
    config = keras.saving.serialize_keras_object(model)
    config = copy.deepcopy(config)
    for level, path, layer, node in found:
        if level not in last_two:
            continue
        target = _layer_config(config, path, layer.name)
        target["strides"] = (1, 1)
        kernel = _pair(
            layer.pool_size if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D))
            else layer.kernel_size
        )
        if layer.padding == "same" or kernel == (1, 1):
            continue
        # A valid padding after explicit zero padding (keras.applications'
        # "correct_pad"): pad k - 1 in total, as "same" does at stride 1.
        padding = _padding_source(node)
        if padding is not None and len(padding._inbound_nodes) == 1:
            _layer_config(config, path, padding.name)["padding"] = tuple(
                ((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel
            )
        else:
            target["padding"] = "same"
    for level, path in containers:
        if level > levels[-2]:
            # A nested model whose input is a map that is now larger.
            _free_inputs(_layer_config(config, path[:-1], path[-1]))
    return config


def _free_inputs(inner):
    """Let a nested model take any map size (its input is an intermediate map)."""
    shape = inner.get("build_input_shape")
    if isinstance(shape, (list, tuple)) and len(shape) == 4:
        inner["build_input_shape"] = [shape[0], None, None, shape[3]]
    for entry in inner.get("layers", []):
        if entry.get("class_name") == "InputLayer":
            shape = entry["config"].get("batch_shape")
            if isinstance(shape, (list, tuple)) and len(shape) == 4:
                entry["config"]["batch_shape"] = [shape[0], None, None, shape[3]]


def to_high_resolution(model, strides=None):
    """Return the high-resolution twin of a CNN, with the same weights.

    Two cases:

    - ``model`` is or contains a keras-cv or keras-hub ``ResNetBackbone``
      (``build_backbone``, ``build_classifier``): each gets the per-stage
      ``strides`` (default 1, 2, 1, 1: stages 3 and 4 at stride 1, the
      paper's backbone; applying it twice changes nothing).
    - any other functional or ``Sequential`` CNN (``keras.applications``
      MobileNetV2, ResNet50V2, EfficientNetB0, ConvNeXtTiny, ... or a
      classifier around one): the strided ``Conv2D``,
      ``DepthwiseConv2D``, ``SeparableConv2D`` and pooling layers of the
      last two downsampling steps (every layer whose input has the
      largest, or the second largest, cumulative stride: a residual
      shortcut goes with its branch) get stride 1. A valid-padded layer
      gets the padding that keeps the size at stride 1 ("same", or the
      zero padding before it made symmetric). Each call removes two more
      steps.

    Strides do not change weight shapes: all weights are copied. With
    stride-2 steps the feature map becomes 4x larger per side. A model
    with fewer than two downsampling steps, a subclassed model, or one
    whose layers after the features depend on the map size (``Flatten``
    then ``Dense``) raises a ``ValueError``.

    Args:
        model: a ``keras.Model``.
        strides: ResNetBackbones only: the 4 per-stage strides of the twin
            (``None``: 1, 2, 1, 1). Other models take only ``None``.

    Returns:
        A new ``keras.Model``; ``model`` is not modified.

    Example:

    >>> import keras, keras_brnpa
    >>> low = keras_brnpa.models.build_classifier(
    ...     10, backbone="tiny", input_shape=(64, 64, 3))
    >>> high = keras_brnpa.models.to_high_resolution(low)
    >>> keras_brnpa.models.feature_shape(low), keras_brnpa.models.feature_shape(high)
    ((2, 2, 128), (8, 8, 128))
    >>> net = keras.applications.MobileNetV2(
    ...     input_shape=(64, 64, 3), include_top=False, weights=None)
    >>> net.output_shape, keras_brnpa.models.to_high_resolution(net).output_shape
    ((None, 2, 2, 1280), (None, 8, 8, 1280))
    """
    if not isinstance(model, keras.Model):
        raise invalid("model", model, "a keras.Model")
    config = keras.saving.serialize_keras_object(model)
    high = _check_strides(RESOLUTION_STRIDES["high"] if strides is None else strides)
    new_config, count = _replace_strides(config, high)
    if count == 0:
        if strides is not None and list(high) != list(RESOLUTION_STRIDES["high"]):
            raise invalid(
                "strides",
                strides,
                "None for a model without a keras-cv/keras-hub ResNetBackbone (its last "
                "two downsampling steps get stride 1)",
            )
        new_config = _generic_high_resolution(model)
    try:
        twin = keras.saving.deserialize_keras_object(new_config)
        twin.set_weights(model.get_weights())
    except ValueError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise _cannot(
            model,
            "the layers after the changed strides depend on the map size, the weights "
            f"do not fit the high-resolution twin: {reason}",
        ) from error
    return twin
