"""The model's own explanations: BR-NPA / B-CNN attention maps, feature norm."""

import weakref

import keras

from keras_brnpa._checks import empty_batch_safe
from keras_brnpa.explain import _utils
from keras_brnpa.models.classifier import attention_model
from keras_brnpa.models.classifier import head_kind

# One attention model per classifier: building it adds a node to the shared
# layers, so it is built once and reused.
_ATTENTION_MODELS = weakref.WeakKeyDictionary()


def _attention_model(model):
    _utils.check_model(model)
    try:
        return _ATTENTION_MODELS[model]
    except (KeyError, TypeError):
        pass
    built = attention_model(model)
    try:
        _ATTENTION_MODELS[model] = built
    except TypeError:  # not weak-referenceable: no cache
        pass
    return built


def _run(model, images, batch_size, upsample, keys):
    """Batched attention-model outputs ``keys`` as float32 backend tensors."""
    net = _attention_model(model)
    images = _utils.check_images(images, model=model)
    batch_size = _utils.check_batch_size(batch_size)
    size = _utils.resolve_upsample(upsample, images.shape[1:3])
    forward = _utils.model_forward(net)
    collected = {key: [] for key in keys}
    for index in _utils.batches(len(images), batch_size):
        # Every batch padded to one of a few sizes (a new shape costs a
        # compilation on TensorFlow and JAX).
        batch, n = _utils.pad_batch(images[index], batch_size)
        out = forward(batch)
        for key in keys:
            collected[key].append(keras.ops.cast(out[key][:n], "float32"))
    return {
        key: keras.ops.concatenate(value, axis=0) if len(value) > 1 else value[0]
        for key, value in collected.items()
    }, size


def parts_and_norm(model, images, batch_size=32):
    """``(attention_maps, feature_norm_map)`` of ``model`` from one forward pass.

    What the authors' sparsity (``metrics.sparsity_density``) needs, at
    the feature-map size, as float32 NumPy arrays.
    """
    out, _ = _run(model, images, batch_size, False, ["attention_maps", "feature_norm"])
    return _finish(out["attention_maps"], None), _finish(out["feature_norm"], None)


def _finish(maps, size):
    return _utils.finish_maps([maps], size)


@empty_batch_safe
def attention_maps(
    model,
    images,
    batch_size=32,
    upsample=False,
    layer_name=None,
    class_index=None,
    from_logits=None,
    seed=None,
    verbose=0,
):
    """All attention maps of a classifier from ``build_classifier``.

    BR-NPA head: the part maps, part 1 (the most active region) first, each
    summing to 1 over the feature map. B-CNN head: its learned non-negative
    maps. GAP head (plain CNN): the feature-norm map as a single part.

    Args:
        model: a classifier from ``keras_brnpa.models.build_classifier``.
        images: array ``(B, H, W, 3)``, preprocessed for the model.
        batch_size: images per forward pass.
        upsample: ``False`` (the feature-map size ``(h, w)``), ``True`` (the
            image size) or a tuple ``(H, W)``; bilinear.
        layer_name, class_index, from_logits, seed, verbose: unused (the
            model's own maps come from its head and do not depend on a
            class); every explainer takes the same keywords (see
            ``explain.explain``).

    Returns:
        float32 NumPy array ``(B, h, w, n_parts)`` (``n_parts = 1`` for GAP).

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     5, backbone="tiny", head="brnpa", n_parts=3, input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> maps = keras_brnpa.explain.attention_maps(model, images)
    >>> maps.shape, bool(np.allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-4))
    ((2, 2, 2, 3), True)
    >>> keras_brnpa.explain.attention_maps(model, images, upsample=True).shape
    (2, 64, 64, 3)
    """
    out, size = _run(model, images, batch_size, upsample, ["attention_maps"])
    return _finish(out["attention_maps"], size)


@empty_batch_safe
def feature_norm_map(
    model,
    images,
    batch_size=32,
    upsample=False,
    layer_name=None,
    class_index=None,
    from_logits=None,
    seed=None,
    verbose=0,
):
    """The norm ``||f_ij||`` of the backbone's feature vectors.

    The plain CNN's "attention" in the paper, and the factor of BR-NPA's
    explanation map.

    Args:
        model, images, batch_size, upsample, layer_name, class_index,
        from_logits, seed, verbose: as for ``attention_maps`` (the last
            five unused).

    Returns:
        float32 NumPy array ``(B, h, w)``, non-negative.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     5, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.feature_norm_map(model, images, upsample=(16, 16)).shape
    (2, 16, 16)
    """
    out, size = _run(model, images, batch_size, upsample, ["feature_norm"])
    return _finish(out["feature_norm"], size)


@empty_batch_safe
def explanation_map(
    model,
    images,
    batch_size=32,
    upsample=False,
    layer_name=None,
    class_index=None,
    from_logits=None,
    seed=None,
    verbose=0,
):
    """One explanation map per image, as the paper defines it per model.

    - BR-NPA head: attention map of part 1 times the feature norm
      (``a_1 * ||f||``), the paper's explanation map;
    - B-CNN head: the mean of its attention maps times the feature norm
      (``mean_k(a_k) * ||f||``), the authors' B-CNN explanation map;
    - GAP head: the feature norm.

    Args:
        model, images, batch_size, upsample, layer_name, class_index,
        from_logits, seed, verbose: as for ``attention_maps`` (the last
            five unused).

    Returns:
        float32 NumPy array ``(B, h, w)``, non-negative.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     5, backbone="tiny", head="brnpa", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.explanation_map(model, images).shape
    (2, 2, 2)
    """
    net = _attention_model(model)  # validates the model first
    del net
    kind = head_kind(model)
    out, size = _run(model, images, batch_size, upsample, ["attention_maps", "feature_norm"])
    if kind == "brnpa":
        maps = out["attention_maps"][..., 0] * out["feature_norm"]
    elif kind == "bcnn":
        maps = keras.ops.mean(out["attention_maps"], axis=-1) * out["feature_norm"]
    else:
        maps = out["feature_norm"]
    return _finish(maps, size)
