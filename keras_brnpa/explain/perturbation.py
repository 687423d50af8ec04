"""Black-box saliency by random masking: RISE."""

import math
import numbers

import numpy as np

from keras_brnpa.explain import _utils
from keras_brnpa.layers._validation import check_positive_int
from keras_brnpa.layers._validation import invalid
from keras_brnpa.models.inspection import check_from_logits
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

    def masks(self, index):
        up = _utils.resize(self.grids[index], self.up_size)
        out = np.empty((len(up), self.height, self.width), dtype="float32")
        for i, (dy, dx) in enumerate(self.shifts[index]):
            out[i] = up[i, dy : dy + self.height, dx : dx + self.width]
        return out


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
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise invalid("seed", seed, "None or an int")
    from_logits = check_from_logits(from_logits)
    size = _utils.resolve_upsample(upsample, images.shape[1:3])
    _utils.check_outputs(model)
    class_index = _utils.check_class_index(class_index, len(images))

    n_images, height, width = images.shape[:3]
    outputs = np.concatenate(
        [_utils.call_model(model, images[index]) for index in _utils.batches(n_images, batch_size)]
    )
    classes = _utils.resolve_classes(class_index, outputs)
    from_logits = resolve_from_logits(model, from_logits, outputs)
    generator = RiseMasks(n_masks, mask_size, float(p), (height, width), seed)
    saliency = np.zeros((n_images, height, width), dtype="float64")
    progress = _utils.progress(n_images * n_masks, verbose, "RISE", unit="masked image")
    for chunk in _utils.batches(n_images * n_masks, batch_size):
        flat = np.arange(chunk.start, chunk.stop)
        image_ids, mask_ids = flat // n_masks, flat % n_masks
        masks = generator.masks(mask_ids)
        masked = images[image_ids] * masks[..., None]
        scores = _utils.class_scores(
            _utils.call_model(model, masked, pad_to=batch_size), classes[image_ids], from_logits
        )
        np.add.at(saliency, image_ids, scores[:, None, None] * masks)
        progress(chunk.stop)
    saliency /= n_masks * float(p)
    saliency = saliency.astype("float32")
    if size is not None and size != (height, width):
        saliency = _utils.resize(saliency, size)
    return saliency
