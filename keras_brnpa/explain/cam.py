"""Class activation maps of any Keras classifier: Grad-CAM, Grad-CAM++,
Score-CAM, Eigen-CAM and Ablation-CAM.

All of them look at the activations ``A`` (B, h, w, K) of one layer (by
default the ``"backbone"`` of a ``build_classifier`` model, or the last
layer with a 4-D output) and return ``ReLU(sum_k w_k A_k)`` with
method-specific channel weights ``w``.
"""

import keras
import numpy as np

from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import empty_batch_safe
from keras_brnpa._checks import resolve_classes
from keras_brnpa._scores import class_scores
from keras_brnpa.explain import _utils
from keras_brnpa.explain._setup import _Setup
from keras_brnpa.explain._setup import _weighted_sum
from keras_brnpa.explain._setup import gradient_cam
from keras_brnpa.models.inspection import resolve_from_logits


def _grad_cam(acts, grads):
    return _weighted_sum(acts, keras.ops.mean(grads, axis=(1, 2)))


def _grad_cam_plus_plus(acts, grads):
    ops = keras.ops
    g2 = grads * grads
    denominator = 2.0 * g2 + ops.sum(acts, axis=(1, 2), keepdims=True) * g2 * grads
    nonzero = ops.not_equal(denominator, 0.0)
    alpha = ops.where(nonzero, g2 / ops.where(nonzero, denominator, 1.0), 0.0)
    weights = ops.sum(alpha * ops.relu(grads), axis=(1, 2))
    return _weighted_sum(acts, weights)


@empty_batch_safe
def grad_cam(
    model,
    images,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
    seed=None,
    verbose=0,
    reshape_transform=None,
):
    """Grad-CAM: activations weighted by their spatially averaged gradient.

    ``map = ReLU(sum_k mean_ij(d y_c / d A_kij) A_k)`` where ``y_c`` is the
    score of class ``c`` (Selvaraju et al., ICCV 2017). The activations of
    ``layer_name`` are caught where the model's own graph computes them
    and the gradient is taken with the current backend's autodiff (one
    forward and one backward pass per batch, the backward pass from the
    score to the layer).

    Args:
        model: a functional or ``Sequential`` ``keras.Model`` with one
            output ``(B, num_classes)`` (logits or probabilities), e.g.
            from ``keras_brnpa.models.build_classifier`` or a
            ``keras.applications`` backbone nested in a classifier (a
            functional wrapper, ``Sequential``, two levels deep: the same
            maps). The layer must be called once in the graph. A
            subclassed model has no graph of layers: use ``rise``.
        images: array ``(B, H, W, C)``, as the model takes them (its own
            ``Rescaling`` or normalisation layers apply).
        layer_name: the layer whose activations are explained: a name, a
            nested path ``"outer/inner"`` (``"mobilenetv2_1.00_224/
            block_13_expand_relu"``), a name found once anywhere in nested
            models, or a layer object. Default: ``"backbone"`` when the
            model has one, else the last layer with a 4-D output, nested
            models included (``models.default_feature_layer``).
        class_index: ``None`` (each image's predicted class), an int, or
            one int per image.
        batch_size: images per forward/backward pass.
        upsample: ``False`` (the layer's ``(h, w)``), ``True`` (the image
            size) or a tuple ``(H, W)``; bilinear.
        from_logits: ``None`` (auto-detect, the default): a model that ends
            with a softmax is explained on the logit before it
            (``models.logits_view``), so it gets the same map as its
            logits twin; a final sigmoid counts as probabilities; a linear
            output as logits; when the layers do not say, the outputs
            decide (rows in [0, 1] summing to 1 are probabilities).
            ``True``: the outputs are logits (the score is the logit).
            ``False``: they are probabilities (the score is the
            log-probability).
        seed, verbose: unused (Grad-CAM is deterministic and quick);
            every explainer takes the same keywords (see
            ``explain.explain``).
        reshape_transform: ``None`` or a callable turning the layer's
            output (a backend tensor) into a ``(B, h, w, C)`` grid, as
            pytorch-grad-cam's ``reshape_transform`` (channels last
            here). By default a 4-D output is the grid and transformer
            tokens ``(B, N, C)`` with ``N`` a square, or ``1 + N`` (the
            first, class token dropped), are reshaped to
            ``(B, sqrt N, sqrt N, C)``. It is applied to the activations
            and to their gradients alike.

    Returns:
        float32 NumPy array ``(B, h, w)``, non-negative.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.grad_cam(model, images).shape
    (2, 2, 2)
    >>> keras_brnpa.explain.grad_cam(model, images, upsample=True).shape
    (2, 64, 64)
    """
    return gradient_cam(_grad_cam, model, images, layer_name, class_index, batch_size,
                        upsample, from_logits, reshape_transform)


@empty_batch_safe
def grad_cam_plus_plus(
    model,
    images,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
    seed=None,
    verbose=0,
    reshape_transform=None,
):
    """Grad-CAM++: channel weights from positive gradients, pixel-weighted.

    With ``g = d y_c / d A`` and the usual exponential-score closed form
    (Chattopadhay et al., WACV 2018)::

        alpha_kij = g_kij^2 / (2 g_kij^2 + sum_ab A_kab g_kij^3)   (0 if 0/0)
        w_k       = sum_ij alpha_kij ReLU(g_kij)
        map       = ReLU(sum_k w_k A_k)

    Args:
        model, images, layer_name, class_index, batch_size, upsample,
        from_logits, seed, verbose, reshape_transform: as for
            ``grad_cam``.

    Returns:
        float32 NumPy array ``(B, h, w)``, non-negative.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.grad_cam_plus_plus(model, images, class_index=1).shape
    (2, 2, 2)
    """
    return gradient_cam(_grad_cam_plus_plus, model, images, layer_name, class_index,
                        batch_size, upsample, from_logits, reshape_transform)


@empty_batch_safe
def eigen_cam(
    model,
    images,
    layer_name=None,
    batch_size=32,
    upsample=False,
    class_index=None,
    from_logits=None,
    seed=None,
    verbose=0,
    reshape_transform=None,
):
    """Eigen-CAM: projection of the activations on their first principal axis.

    For each image the activations are a matrix ``(h*w, K)``; its first
    right singular vector ``v`` gives ``map = ReLU(A v)``, with the sign of
    ``v`` chosen so that the map's sum is positive (Muhammad and Yeasin,
    IJCNN 2020). No gradient and no class: it shows what the layer finds
    most salient. One forward pass of the layer per batch.

    Args:
        model, images, layer_name, batch_size, upsample,
        reshape_transform: as for ``grad_cam``.
        class_index, from_logits, seed, verbose: unused (Eigen-CAM does
            not depend on a class); every explainer takes the same
            keywords (see ``explain.explain``).

    Returns:
        float32 NumPy array ``(B, h, w)``, non-negative.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="brnpa", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.eigen_cam(model, images).shape
    (2, 2, 2)
    """
    setup = _Setup(model, images, layer_name, None, batch_size, upsample,
                   reshape_transform=reshape_transform)
    maps = []
    ops = keras.ops
    for index in setup.batches():
        acts = setup.features(index)
        b, h, w, k = acts.shape
        flat = ops.reshape(acts, (b, h * w, k))
        _, _, vt = ops.svd(flat, full_matrices=False)
        projection = ops.einsum("bnk,bk->bn", flat, vt[:, 0, :])
        sign = ops.where(ops.sum(projection, axis=1, keepdims=True) < 0, -1.0, 1.0)
        maps.append(ops.reshape(ops.relu(projection * sign), (b, h, w)))
    return setup.finish(maps)


@empty_batch_safe
def ablation_cam(
    model,
    images,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
    seed=None,
    verbose=0,
    reshape_transform=None,
):
    """Ablation-CAM: a channel's weight is the score drop when it is zeroed.

    ``w_k = y_c(A) - y_c(A with channel k set to 0)`` (``y_c``: the
    logit of class ``c``; a final softmax is removed, see
    ``models.logits_view``) and
    ``map = ReLU(sum_k w_k A_k)`` (Desai and Ramaswamy, WACV 2020; the
    paper also divides by ``y_c``, a per-image scale that does not change
    the map's shape and flips it when ``y_c < 0``, so it is left out). The
    ablated activations are evaluated by the part of the model after the
    layer, ``batch_size`` at a time; all-zero channels get weight 0 without
    a forward pass. So everything after the layer must depend on the
    images only through it (no skip connection around it); the other
    CAMs have no such limit.

    Args:
        model, images, layer_name, class_index, batch_size, upsample,
        reshape_transform: as for ``grad_cam`` (the score ``y_c`` is
            the model's output; the channels are the last axis of the
            layer's output, which is ablated as the layer gives it).
        from_logits, seed, verbose: unused (the score is the logit, a
            final softmax removed); every explainer takes the same
            keywords (see ``explain.explain``).

    Returns:
        float32 NumPy array ``(B, h, w)``, non-negative.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.ablation_cam(model, images, batch_size=64).shape
    (2, 2, 2)
    """
    setup = _Setup(model, images, layer_name, class_index, batch_size, upsample,
                   reshape_transform=reshape_transform)
    with setup.output_scale():
        return setup.finish(
            [_ablation_weights_map(setup, index) for index in setup.batches()]
        )


def _ablation_weights_map(setup, index):
    ops = keras.ops
    # The channels are ablated where the layer outputs them (the last axis
    # of its 4-D map or of its tokens); the map is drawn on the grid.
    raw, outputs = setup.features(index, with_outputs=True, raw=True)
    acts = setup.to_grid(raw)
    classes = resolve_classes(setup.classes(index), _utils.to_numpy(outputs))
    b, k = raw.shape[0], raw.shape[-1]
    spatial = tuple(range(1, len(raw.shape) - 1))
    active = _utils.to_numpy(ops.max(ops.abs(raw), axis=spatial)) > 0
    pairs = np.argwhere(active)  # (n, 2): image, channel
    weights = np.zeros((b, k), dtype="float32")
    base = _utils.to_numpy(class_scores(outputs, ops.convert_to_tensor(classes))[1])
    for chunk in _utils.batches(len(pairs), setup.batch_size):
        image_ids, channels = pairs[chunk, 0], pairs[chunk, 1]
        keep = 1.0 - ops.one_hot(ops.convert_to_tensor(channels), k, dtype="float32")
        keep = ops.reshape(keep, (len(channels),) + (1,) * len(spatial) + (k,))
        ablated = ops.take(raw, ops.convert_to_tensor(image_ids), axis=0) * keep
        _, scores = class_scores(setup.head(ablated), ops.convert_to_tensor(classes[image_ids]))
        weights[image_ids, channels] = base[image_ids] - _utils.to_numpy(scores)
    return _weighted_sum(acts, weights)


@empty_batch_safe
def score_cam(
    model,
    images,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
    max_channels=None,
    verbose=0,
    seed=None,
    reshape_transform=None,
):
    """Score-CAM: a channel's weight is the class probability of the image
    masked by that channel.

    Each activation channel ``A_k`` is upsampled to the image size and
    min-max normalised to ``[0, 1]``, giving a mask ``M_k``; the weight is
    ``w_k = p_c(image * M_k)``, the softmax probability of class ``c``, and
    ``map = ReLU(sum_k w_k A_k)`` (Wang et al., CVPR Workshops 2020, as in
    the authors' code). The masked images are built and evaluated
    ``batch_size`` at a time, so at most one batch of perturbed images is in
    memory. Constant channels (dead ReLUs) get weight 0 without a forward
    pass.

    Cost: one forward pass of the whole model per image and channel (2048
    channels for a ResNet-50): use ``max_channels`` to keep only each
    image's most active channels.

    Args:
        model, images, layer_name, class_index, batch_size, upsample,
        from_logits, reshape_transform: as for ``grad_cam`` (the weight is the softmax of
            logits, or the output itself for probabilities).
        max_channels: ``None`` (every channel) or an int: per image, only
            the channels with the largest mean activation are used.
        verbose: 0 (silent) or 1 (a Keras progress bar over the images).
        seed: unused (Score-CAM is deterministic); every explainer takes
            the same keywords (see ``explain.explain``).

    Returns:
        float32 NumPy array ``(B, h, w)``, non-negative.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.score_cam(model, images, max_channels=2, batch_size=2).shape
    (2, 2, 2)
    """
    if max_channels is not None:
        max_channels = check_positive_int("max_channels", max_channels)
    setup = _Setup(model, images, layer_name, class_index, batch_size, upsample, from_logits,
                   reshape_transform)
    progress = _utils.progress(len(setup.images), verbose, "Score-CAM")
    maps = []
    # The weights are probabilities: the model's own outputs (no logits view).
    for index in setup.batches():
        maps.append(_score_cam_map(setup, index, max_channels))
        progress(index.stop)
    return setup.finish(maps)


def _score_cam_map(setup, index, max_channels):
    ops = keras.ops
    height, width = setup.images.shape[1:3]
    acts, outputs = setup.features(index, with_outputs=True)
    outputs_np = _utils.to_numpy(outputs)
    classes = resolve_classes(setup.classes(index), outputs_np)
    from_logits = resolve_from_logits(setup.model, setup.from_logits, outputs_np)
    b, h, w, k = acts.shape
    high = _utils.to_numpy(ops.max(acts, axis=(1, 2)))
    use = high > _utils.to_numpy(ops.min(acts, axis=(1, 2)))
    if max_channels is not None and max_channels < k:
        order = np.argsort(-_utils.to_numpy(ops.mean(acts, axis=(1, 2))), axis=1, kind="stable")
        top = np.zeros_like(use)
        np.put_along_axis(top, order[:, :max_channels], True, axis=1)
        use &= top
    pairs = np.argwhere(use)
    weights = np.zeros((b, k), dtype="float32")
    # (B * K, h, w): channel k of image i at row i * K + k.
    channel_maps = ops.reshape(ops.transpose(acts, (0, 3, 1, 2)), (b * k, h, w))
    x = ops.convert_to_tensor(setup.images[index])
    forward = _utils.model_forward(setup.model)
    for chunk in _utils.batches(len(pairs), setup.batch_size):
        image_ids, channels = pairs[chunk, 0], pairs[chunk, 1]
        masks = _utils.resize_maps_tensor(
            ops.take(channel_maps, ops.convert_to_tensor(image_ids * k + channels), axis=0),
            (height, width),
        )
        low = ops.min(masks, axis=(1, 2), keepdims=True)
        span = ops.max(masks, axis=(1, 2), keepdims=True) - low
        masks = (masks - low) / ops.where(span > 0, span, 1.0)
        masked = ops.take(x, ops.convert_to_tensor(image_ids), axis=0) * masks[..., None]
        padded, n = _utils.pad_batch(masked, setup.batch_size)
        scores = class_scores(
            forward(padded)[:n], ops.convert_to_tensor(classes[image_ids]), softmax=from_logits
        )[1]
        weights[image_ids, channels] = _utils.to_numpy(scores)
    return _weighted_sum(acts, weights)
