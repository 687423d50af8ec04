"""ResNet backbones at low and high resolution (keras-cv ``ResNetBackbone``)."""

import copy
import os

import keras

from keras_brnpa.layers._validation import check_choice
from keras_brnpa.layers._validation import invalid

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


def _resnet_class():
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
):
    """Build a ResNet feature extractor at low or high resolution.

    The backbone is keras-cv's ``ResNetBackbone``, whose per-stage strides
    set the resolution: ``"low"`` is the usual ResNet (strides 1, 2, 2, 2:
    a 448 px image gives a 14x14 map); ``"high"`` is the paper's BR-NPA
    backbone (strides 1, 2, 1, 1: a 56x56 map, 16x more locations). Strides
    do not change weight shapes, so a high-resolution backbone can take the
    weights of a low-resolution one (see ``to_high_resolution``).

    Args:
        name: ``"resnet18"``, ``"resnet34"``, ``"resnet50"``,
            ``"resnet101"``, ``"resnet152"``, ``"tiny"`` (a 44k-parameter
            bottleneck ResNet with one block per stage, for tests and
            demos), or a ``keras.Model`` whose output is a 4-D feature map
            (returned unchanged).
        resolution: ``"low"`` or ``"high"``.
        strides: optional sequence of 4 per-stage strides, overrides
            ``resolution``.
        weights: ``None`` (random), a keras-cv preset name such as
            ``"resnet50_imagenet"`` (downloaded when online; offline it
            fails with a clear message), or a path to a ``.weights.h5`` or
            ``.keras`` file with the weights of the same architecture.
        input_shape: image shape, channels last.
        include_rescaling: if ``True`` a ``Rescaling(1/255)`` layer comes
            first (inputs in ``[0, 255]``).
        model_name: name of the returned model.

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
    resnet = _resnet_class()
    kwargs = dict(
        stackwise_strides=strides,
        include_rescaling=include_rescaling,
        input_shape=tuple(input_shape),
        name=model_name,
    )
    if isinstance(weights, str) and not _looks_like_path(weights):
        return _from_preset(resnet, weights, kwargs)
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


def _from_preset(resnet, preset, kwargs):
    known = sorted(resnet.presets)
    if preset not in known:
        raise invalid("weights", preset, "None, a file path or a keras-cv preset: " + ", ".join(known))
    try:
        return resnet.from_preset(preset, **kwargs)
    except Exception as error:  # network failures come in many types
        raise RuntimeError(
            f"Could not load the keras-cv preset weights={preset!r} "
            f"({type(error).__name__}: {error}). Presets are downloaded on "
            "first use: connect to the internet once, or pass the path of a "
            "saved weights file instead."
        ) from error


def _is_resnet(config):
    return (
        isinstance(config, dict)
        and config.get("class_name") == "ResNetBackbone"
        and isinstance(config.get("config"), dict)
        and "stackwise_strides" in config["config"]
    )


def _replace_strides(config, strides):
    """Return (new_config, count) with every ResNetBackbone's strides set."""
    if _is_resnet(config):
        config = copy.deepcopy(config)
        config["config"]["stackwise_strides"] = list(strides)
        return config, 1
    if isinstance(config, dict):
        out, count = {}, 0
        for key, value in config.items():
            out[key], c = _replace_strides(value, strides)
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


def to_high_resolution(model, strides=RESOLUTION_STRIDES["high"]):
    """Return the high-resolution twin of a model, with the same weights.

    Every keras-cv ``ResNetBackbone`` inside ``model`` (the model itself, a
    backbone from ``build_backbone`` or a classifier from
    ``build_classifier``) gets the per-stage ``strides`` (default 1, 2, 1, 1:
    stages 3 and 4 at stride 1), and all weights are copied: strides do not
    change weight shapes. The feature map becomes 4x larger per side.

    Args:
        model: a ``keras.Model`` containing a keras-cv ``ResNetBackbone``.
        strides: the 4 per-stage strides of the twin.

    Returns:
        A new ``keras.Model``; ``model`` is not modified.

    Example:

    >>> import keras_brnpa
    >>> low = keras_brnpa.models.build_classifier(
    ...     10, backbone="tiny", input_shape=(64, 64, 3))
    >>> high = keras_brnpa.models.to_high_resolution(low)
    >>> keras_brnpa.models.feature_shape(low), keras_brnpa.models.feature_shape(high)
    ((2, 2, 128), (8, 8, 128))
    """
    if not isinstance(model, keras.Model):
        raise invalid("model", model, "a keras.Model")
    strides = _check_strides(strides)
    config = keras.saving.serialize_keras_object(model)
    new_config, count = _replace_strides(config, strides)
    if count == 0:
        raise invalid(
            "model",
            f"<{type(model).__name__} {model.name!r}>",
            "a model containing a keras-cv ResNetBackbone (build_backbone or "
            "build_classifier); for another backbone, build its "
            "high-resolution version yourself and copy the weights with "
            "set_weights",
        )
    twin = keras.saving.deserialize_keras_object(new_config)
    twin.set_weights(model.get_weights())
    return twin
