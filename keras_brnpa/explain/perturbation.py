"""Black-box saliency by random masking: RISE."""

import math
import numbers

import keras
import numpy as np

from keras_brnpa._checks import check_class_index
from keras_brnpa._checks import check_from_logits
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import empty_batch_safe
from keras_brnpa._checks import invalid
from keras_brnpa._checks import resolve_classes
from keras_brnpa._scores import class_scores
from keras_brnpa.explain import _utils
from keras_brnpa.models.inspection import resolve_from_logits


class RiseMasks:
    """The random masks of RISE, generated lazily from a seed.

    Only the small binary grids and the shifts are stored; ``masks(idx)``
    builds the requested ``(n, H, W)`` float masks: each grid cell is kept
    with probability ``p``, the grid is upsampled bilinearly to
    ``(mask_size + 1) * cell`` pixels and cropped at a random shift.
    """

    def __init__(self, n_masks, mask_size, p, image_size, seed):
        rng = np.random.default_rng(seed)
        self.height, self.width = image_size
        self.cell = (math.ceil(self.height / mask_size), math.ceil(self.width / mask_size))
        self.up_size = ((mask_size + 1) * self.cell[0], (mask_size + 1) * self.cell[1])
        self.grids = (rng.random((n_masks, mask_size, mask_size)) < p).astype("float64")
        self.shifts = np.stack(
            [rng.integers(0, self.cell[0], n_masks), rng.integers(0, self.cell[1], n_masks)],
            axis=1,
        )

    def masks_tensor(self, index):
        """The masks ``index`` as a float32 ``(n, H, W)`` backend tensor.

        Upsampled and cropped on the device: each mask's rows
        ``dy .. dy + H`` and columns ``dx .. dx + W`` of its upsampled grid
        are gathered with ``take_along_axis``.
        """
        ops = keras.ops
        up = _utils.resize_maps_tensor(self.grids[index].astype("float32"), self.up_size)
        shifts = self.shifts[index]
        n = len(shifts)
        rows = ops.convert_to_tensor((shifts[:, 0:1] + np.arange(self.height))[:, :, None])
        cols = ops.convert_to_tensor((shifts[:, 1:2] + np.arange(self.width))[:, None, :])
        up = ops.take_along_axis(
            up, ops.broadcast_to(rows, (n, self.height, self.up_size[1])), axis=1
        )
        return ops.take_along_axis(up, ops.broadcast_to(cols, (n, self.height, self.width)), axis=2)

    def masks(self, index):
        """The masks ``index`` as a float32 NumPy array ``(n, H, W)``."""
        return _utils.to_numpy(self.masks_tensor(index)).astype("float32", copy=False)


@empty_batch_safe
def rise(
    model,
    images,
    n_masks=2000,
    mask_size=8,
    p=0.5,
    batch_size=32,
    seed=0,
    class_index=None,
    upsample=False,
    from_logits=None,
    verbose=0,
    layer_name=None,
):
    """RISE: saliency as the probability-weighted mean of random masks.

    ``S(x) = sum_m p_c(image * M_m) M_m(x) / (n_masks * p)`` over
    ``n_masks`` random smooth masks ``M_m`` (Petsiuk et al., BMVC 2018): a
    pixel is salient when the class stays probable while it is visible. Any
    classifier works (no layer, no gradient). The masked images are built
    and evaluated ``batch_size`` at a time; the masks themselves are
    regenerated from ``seed`` for each batch, so memory does not grow with
    ``n_masks``.

    Args:
        model: any ``keras.Model`` (functional, ``Sequential`` or
            subclassed) with one output ``(B, num_classes)``.
        images: array ``(B, H, W, C)``, preprocessed for the model.
        n_masks: number of random masks (the paper uses 4000-8000 on
            ImageNet; a few hundred already rank regions on small images).
        mask_size: cells per side of the random binary grid.
        p: probability that a cell is kept, in ``(0, 1)``.
        batch_size: masked images per forward pass.
        seed: int seed of the masks (the same masks for every image).
        class_index: ``None`` (the predicted class), an int or one per image.
        upsample: the map is already at the image size; ``False`` or
            ``True`` keep it, a tuple ``(H, W)`` resizes it.
        verbose: 0 (silent) or 1 (a Keras progress bar over the masked
            images).
        from_logits: ``None`` (auto-detect from the model's final layer,
            or from its outputs when the layers do not say; see
            ``models.resolve_from_logits``), ``True`` if the model outputs
            logits (a softmax is applied), ``False`` if probabilities.
        layer_name: unused (RISE looks at the images, not at a layer);
            every explainer takes the same keywords (see
            ``explain.explain``).

    Returns:
        float32 NumPy array ``(B, H, W)`` at the image size.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.rise(model, images, n_masks=8, batch_size=2).shape
    (2, 64, 64)
    """
    _utils.check_model(model)
    images = _utils.check_images(images, model=model)
    n_masks = check_positive_int("n_masks", n_masks)
    mask_size = check_positive_int("mask_size", mask_size)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p < 1:
        raise invalid("p", p, "a float in (0, 1)")
    batch_size = _utils.check_batch_size(batch_size)
    seed = check_seed(seed, allow_none=True)
    from_logits = check_from_logits(from_logits)
    size = _utils.resolve_upsample(upsample, images.shape[1:3])
    _utils.check_outputs(model)
    class_index = check_class_index(class_index, len(images))

    n_images, height, width = images.shape[:3]
    if not model.built:  # a subclassed model never called: build it eagerly
        _utils.call_model(model, images[:1])
    forward = _utils.model_forward(model)
    ops = keras.ops
    outputs = []
    for index in _utils.batches(n_images, batch_size):
        padded, n = _utils.pad_batch(images[index], batch_size)
        outputs.append(_utils.to_numpy(_utils.single_output(forward(padded)))[:n])
    outputs = np.concatenate(outputs).astype("float32")
    if outputs.ndim != 2:
        raise invalid(
            "model", f"<model with outputs of shape {outputs.shape}>",
            "a classifier with one output of shape (B, num_classes)",
        )
    classes = resolve_classes(class_index, outputs)
    from_logits = resolve_from_logits(model, from_logits, outputs)
    generator = RiseMasks(n_masks, mask_size, float(p), (height, width), seed)
    images_t = ops.convert_to_tensor(images)
    classes_t = ops.convert_to_tensor(classes.astype("int32"))
    saliency = ops.zeros((n_images, height, width), dtype="float32")
    progress = _utils.progress(n_images * n_masks, verbose, "RISE", unit="masked image")
    for chunk in _utils.batches(n_images * n_masks, batch_size):
        flat = np.arange(chunk.start, chunk.stop)
        image_ids = ops.convert_to_tensor((flat // n_masks).astype("int32"))
        masks = generator.masks_tensor(flat % n_masks)
        masked = ops.take(images_t, image_ids, axis=0) * masks[..., None]
        padded, n = _utils.pad_batch(masked, batch_size)
        scores = class_scores(
            forward(padded)[:n], ops.take(classes_t, image_ids, axis=0), softmax=from_logits
        )[1]
        saliency = saliency + ops.segment_sum(
            scores[:, None, None] * masks, image_ids, num_segments=n_images
        )
        progress(chunk.stop)
    saliency = saliency / (n_masks * float(p))
    return _utils.finish_maps([saliency], size if size != (height, width) else None)
