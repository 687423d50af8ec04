"""Class activation maps of any Keras classifier: Grad-CAM, Grad-CAM++,
Score-CAM, Eigen-CAM and Ablation-CAM.

All of them look at the activations ``A`` (B, h, w, K) of one layer (by
default the ``"backbone"`` of a ``build_classifier`` model, or the last
layer with a 4-D output) and return ``ReLU(sum_k w_k A_k)`` with
method-specific channel weights ``w``.
"""

import contextlib

import numpy as np

from keras_brnpa.explain import _utils
from keras_brnpa.explain._gradients import activations_and_gradients
from keras_brnpa.layers._validation import check_positive_int
from keras_brnpa.models.inspection import check_from_logits
from keras_brnpa.models.inspection import logits_view
from keras_brnpa.models.inspection import resolve_from_logits


class _Setup:
    """Validated arguments shared by the CAM methods."""

    def __init__(
        self, model, images, layer_name, class_index, batch_size, upsample, from_logits=None
    ):
        _utils.check_model(model)
        self.from_logits = check_from_logits(from_logits)
        self.images = _utils.check_images(images, model=model)
        self.batch_size = _utils.check_batch_size(batch_size)
        self.size = _utils.resolve_upsample(upsample, self.images.shape[1:3])
        _utils.check_outputs(model)
        self.class_index = _utils.check_class_index(class_index, len(self.images))
        self.layer_name, self.features_fn, self.head_fn = _utils.split_model(model, layer_name)
        self.model = model

    @contextlib.contextmanager
    def output_scale(self):
        """Within: the model's scale; yields ``resolve(outputs) -> from_logits``.

        With ``from_logits=None`` a model ending with a softmax outputs its
        logits inside the block (``models.logits_view``), so that a softmax
        model and its logits twin give the same maps.
        """
        if self.from_logits is not None:
            yield lambda outputs: self.from_logits
            return
        with logits_view(self.model) as switched:
            if switched:
                yield lambda outputs: True
            else:
                yield lambda outputs: resolve_from_logits(self.model, None, outputs)

    def batches(self):
        return _utils.batches(len(self.images), self.batch_size)

    def classes(self, index):
        return _utils.slice_classes(self.class_index, index)

    def finish(self, maps):
        maps = np.concatenate(maps, axis=0).astype("float32")
        if self.size is not None:
            maps = _utils.resize(maps, self.size)
        return maps


def _weighted_sum(activations, weights):
    """``ReLU(sum_k w_k A_k)`` for A (B, h, w, K) and w (B, K)."""
    cam = np.einsum("bhwk,bk->bhw", activations.astype("float64"), weights.astype("float64"))
    return np.maximum(cam, 0.0)


def grad_cam(
    model,
    images,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
):
    """Grad-CAM: activations weighted by their spatially averaged gradient.

    ``map = ReLU(sum_k mean_ij(d y_c / d A_kij) A_k)`` where ``y_c`` is the
    score of class ``c`` (Selvaraju et al., ICCV 2017). The model is split
    at ``layer_name``; the gradient is taken with the current backend's
    autodiff (one forward and one backward pass per batch).

    Args:
        model: a functional or ``Sequential`` ``keras.Model`` with one
            output ``(B, num_classes)`` (logits or probabilities), e.g.
            from ``keras_brnpa.models.build_classifier`` or a
            ``keras.applications`` backbone nested in a classifier.
            Everything after the layer must depend on the images only
            through that layer. A subclassed model cannot be split at a
            layer: use ``rise``.
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
    setup = _Setup(model, images, layer_name, class_index, batch_size, upsample, from_logits)
    maps = []
    with setup.output_scale() as scale:
        for index in setup.batches():
            acts, grads, _, _ = activations_and_gradients(
                setup.features_fn, setup.head_fn, setup.images[index], setup.classes(index), scale
            )
            maps.append(_weighted_sum(acts, grads.mean(axis=(1, 2))))
    return setup.finish(maps)


def grad_cam_plus_plus(
    model,
    images,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
):
    """Grad-CAM++: channel weights from positive gradients, pixel-weighted.

    With ``g = d y_c / d A`` and the usual exponential-score closed form
    (Chattopadhay et al., WACV 2018)::

        alpha_kij = g_kij^2 / (2 g_kij^2 + sum_ab A_kab g_kij^3)   (0 if 0/0)
        w_k       = sum_ij alpha_kij ReLU(g_kij)
        map       = ReLU(sum_k w_k A_k)

    Args:
        model, images, layer_name, class_index, batch_size, upsample,
        from_logits: as for ``grad_cam``.

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
    setup = _Setup(model, images, layer_name, class_index, batch_size, upsample, from_logits)
    maps = []
    with setup.output_scale() as scale:
        results = [
            activations_and_gradients(
                setup.features_fn, setup.head_fn, setup.images[index], setup.classes(index), scale
            )
            for index in setup.batches()
        ]
    for acts, grads, _, _ in results:
        acts = acts.astype("float64")
        grads = grads.astype("float64")
        g2 = grads**2
        denominator = 2.0 * g2 + acts.sum(axis=(1, 2), keepdims=True) * grads**3
        safe = np.where(denominator != 0.0, denominator, 1.0)
        alpha = np.where(denominator != 0.0, g2 / safe, 0.0)
        weights = (alpha * np.maximum(grads, 0.0)).sum(axis=(1, 2))
        maps.append(_weighted_sum(acts, weights))
    return setup.finish(maps)


def eigen_cam(model, images, layer_name=None, batch_size=32, upsample=False):
    """Eigen-CAM: projection of the activations on their first principal axis.

    For each image the activations are a matrix ``(h*w, K)``; its first
    right singular vector ``v`` gives ``map = ReLU(A v)``, with the sign of
    ``v`` chosen so that the map's sum is positive (Muhammad and Yeasin,
    IJCNN 2020). No gradient and no class: it shows what the layer finds
    most salient. One forward pass of the layer per batch.

    Args:
        model, images, layer_name, batch_size, upsample: as for
            ``grad_cam``.

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
    setup = _Setup(model, images, layer_name, None, batch_size, upsample)
    maps = []
    for index in setup.batches():
        acts = _utils.call_model(setup.features_fn, setup.images[index]).astype("float64")
        b, h, w, k = acts.shape
        flat = acts.reshape(b, h * w, k)
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        projection = np.einsum("bnk,bk->bn", flat, vt[:, 0, :])
        sign = np.where(projection.sum(axis=1, keepdims=True) < 0, -1.0, 1.0)
        maps.append(np.maximum(projection * sign, 0.0).reshape(b, h, w))
    return setup.finish(maps)


def ablation_cam(
    model,
    images,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
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
    a forward pass.

    Args:
        model, images, layer_name, class_index, batch_size, upsample: as
            for ``grad_cam`` (the score ``y_c`` is the model's output).

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
    setup = _Setup(model, images, layer_name, class_index, batch_size, upsample)
    with setup.output_scale():
        return setup.finish(
            [_ablation_weights_map(setup, index) for index in setup.batches()]
        )


def _ablation_weights_map(setup, index):
    acts = _utils.call_model(setup.features_fn, setup.images[index])
    outputs = _utils.call_model(setup.head_fn, acts)
    classes = _utils.resolve_classes(setup.classes(index), outputs)
    b, k = acts.shape[0], acts.shape[-1]
    active = np.abs(acts).reshape(b, -1, k).max(axis=1) > 0
    pairs = np.argwhere(active)  # (n, 2): image, channel
    weights = np.zeros((b, k))
    for chunk in _utils.batches(len(pairs), setup.batch_size):
        image_ids, channels = pairs[chunk, 0], pairs[chunk, 1]
        ablated = acts[image_ids].copy()
        ablated[np.arange(len(channels)), :, :, channels] = 0.0
        scores = _utils.call_model(setup.head_fn, ablated, pad_to=setup.batch_size)
        targets = classes[image_ids]
        weights[image_ids, channels] = (
            outputs[image_ids, targets] - scores[np.arange(len(channels)), targets]
        )
    return _weighted_sum(acts, weights)


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
        from_logits: as for ``grad_cam`` (the weight is the softmax of
            logits, or the output itself for probabilities).
        max_channels: ``None`` (every channel) or an int: per image, only
            the channels with the largest mean activation are used.
        verbose: 0 (silent) or 1 (a Keras progress bar over the images).

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
    setup = _Setup(model, images, layer_name, class_index, batch_size, upsample, from_logits)
    progress = _utils.progress(len(setup.images), verbose, "Score-CAM")
    maps = []
    with setup.output_scale() as scale:
        for index in setup.batches():
            maps.append(_score_cam_map(setup, index, scale, max_channels))
            progress(index.stop)
    return setup.finish(maps)


def _score_cam_map(setup, index, scale, max_channels):
    height, width = setup.images.shape[1:3]
    x = setup.images[index]
    acts = _utils.call_model(setup.features_fn, x)
    outputs = _utils.call_model(setup.head_fn, acts)
    classes = _utils.resolve_classes(setup.classes(index), outputs)
    from_logits = scale(outputs)
    b, k = acts.shape[0], acts.shape[-1]
    flat = acts.reshape(b, -1, k)
    use = flat.max(axis=1) > flat.min(axis=1)
    if max_channels is not None and max_channels < k:
        order = np.argsort(-flat.mean(axis=1), axis=1, kind="stable")
        top = np.zeros_like(use)
        np.put_along_axis(top, order[:, :max_channels], True, axis=1)
        use &= top
    pairs = np.argwhere(use)
    weights = np.zeros((b, k))
    for chunk in _utils.batches(len(pairs), setup.batch_size):
        image_ids, channels = pairs[chunk, 0], pairs[chunk, 1]
        channel_maps = acts[image_ids, :, :, channels]  # (n, h, w)
        masks = _utils.resize(channel_maps.astype("float64"), (height, width))
        low = masks.min(axis=(1, 2), keepdims=True)
        high = masks.max(axis=(1, 2), keepdims=True)
        masks = (masks - low) / np.where(high > low, high - low, 1.0)
        masked = x[image_ids] * masks[..., None]
        masked_outputs = _utils.call_model(setup.model, masked, pad_to=setup.batch_size)
        scores = _utils.class_scores(masked_outputs, classes[image_ids], from_logits)
        weights[image_ids, channels] = scores
    return _weighted_sum(acts, weights)
