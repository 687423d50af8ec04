"""Agreement of explanation maps with ground-truth regions.

``pointing_game`` and ``energy_in_mask``: does the map's maximum fall in
the object, and what share of the map's energy lies in it, against
boolean masks or bounding boxes (the sparsity of maps is in
``keras_brnpa.metrics.map_sparsity``).

All functions take and return NumPy arrays (backend tensors are accepted
and converted).
"""

import numpy as np

from keras_brnpa._image import resize_maps
from keras_brnpa._checks import check_saliency
from keras_brnpa._checks import describe
from keras_brnpa._checks import invalid
from keras_brnpa._checks import to_numpy

#: Boxes are drawn on a grid this many times finer than the saliency map
#: when no ``size`` is given.
BOX_OVERSAMPLING = 8


# ------------------------------------------------------------------ regions
def upsample(saliency, size):
    """Bilinear resize of ``(B, h, w)`` maps to ``size = (H, W)``.

    ``keras.ops.image.resize`` with ``"bilinear"``, half-pixel centres,
    clamped edges and no antialiasing (computed in float32, returned as
    float64); the identity when the size is unchanged. The maximum of an upsampled map stays inside the block of
    the maximal cell when that cell is a strict local maximum.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> keras_brnpa.metrics.localization.upsample(np.ones((1, 2, 2)), (4, 6)).shape
    (1, 4, 6)
    """
    saliency = np.asarray(saliency, np.float64)
    if tuple(saliency.shape[1:]) == tuple(size):
        return saliency
    return resize_maps(saliency, size).astype(np.float64)


def _check_size(size):
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in size)
    ):
        raise invalid("size", size, "None or a pair of integers (height, width) >= 1")
    return int(size[0]), int(size[1])


def boxes_to_masks(boxes, size):
    """Rasterise normalised boxes into boolean masks.

    A pixel ``(y, x)`` of an ``(H, W)`` grid is inside a box
    ``[ymin, xmin, ymax, xmax]`` (fractions of the image size, in
    ``[0, 1]``) when its centre ``((y + 0.5) / H, (x + 0.5) / W)`` is
    inside the box, borders included. Several boxes of one image are
    merged (union).

    Args:
        boxes: ``(B, 4)`` array (one box per image) or a list of ``B``
            arrays of shape ``(n_i, 4)`` or ``(4,)`` (``n_i >= 0`` boxes
            for image ``i``).
        size: ``(H, W)`` of the masks.

    Returns:
        Boolean NumPy array ``(B, H, W)``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> keras_brnpa.metrics.localization.boxes_to_masks(
    ...     np.array([[0.0, 0.5, 0.5, 1.0]]), (2, 2))[0]
    array([[False,  True],
           [False, False]])
    """
    height, width = _check_size(size)
    if isinstance(boxes, (list, tuple)):
        per_image = [to_numpy("masks_or_boxes", b) for b in boxes]
    else:
        array = to_numpy("masks_or_boxes", boxes)
        if array.ndim != 2 or array.shape[-1] != 4:
            raise invalid(
                "masks_or_boxes",
                describe(array),
                "boxes of shape (batch, 4) or a list of (n_i, 4) arrays",
            )
        per_image = list(array[:, None, :])
    ys = (np.arange(height) + 0.5) / height
    xs = (np.arange(width) + 0.5) / width
    masks = np.zeros((len(per_image), height, width), bool)
    for i, image_boxes in enumerate(per_image):
        if image_boxes.size == 0:
            continue
        if image_boxes.ndim == 1:
            image_boxes = image_boxes[None]
        if (
            image_boxes.ndim != 2
            or image_boxes.shape[-1] != 4
            or not np.issubdtype(image_boxes.dtype, np.number)
        ):
            raise invalid(
                "masks_or_boxes",
                describe(image_boxes),
                f"boxes [ymin, xmin, ymax, xmax] of shape (n, 4) for image {i}",
            )
        image_boxes = image_boxes.astype(np.float64)
        if (
            not np.all(np.isfinite(image_boxes))
            or np.any(image_boxes < 0)
            or np.any(image_boxes > 1)
            or np.any(image_boxes[:, 2] < image_boxes[:, 0])
            or np.any(image_boxes[:, 3] < image_boxes[:, 1])
        ):
            raise invalid(
                "masks_or_boxes",
                describe(image_boxes),
                f"boxes [ymin, xmin, ymax, xmax] normalised to [0, 1] with ymin <= ymax "
                f"and xmin <= xmax (image {i}: {image_boxes.tolist()})",
            )
        for ymin, xmin, ymax, xmax in image_boxes:
            inside_y = (ys >= ymin) & (ys <= ymax)
            inside_x = (xs >= xmin) & (xs <= xmax)
            masks[i] |= inside_y[:, None] & inside_x[None, :]
    return masks


def _is_mask_list(value):
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(
        to_numpy("masks_or_boxes", v).dtype == bool for v in value
    )


def _regions(saliency, masks_or_boxes, size):
    """Masks ``(B, H, W)`` and the saliency upsampled to ``(H, W)``."""
    batch, h, w = saliency.shape
    if _is_mask_list(masks_or_boxes):
        masks_or_boxes = np.stack([to_numpy("masks_or_boxes", m) for m in masks_or_boxes])
    if isinstance(masks_or_boxes, (list, tuple)):
        is_mask = False
    else:
        masks_or_boxes = to_numpy("masks_or_boxes", masks_or_boxes)
        is_mask = masks_or_boxes.ndim == 3
    if is_mask:
        masks = masks_or_boxes
        if masks.dtype != bool:
            if not np.issubdtype(masks.dtype, np.number) or not np.all(
                (masks == 0) | (masks == 1)
            ):
                raise invalid(
                    "masks_or_boxes",
                    describe(masks),
                    "boolean masks (batch, height, width) (or 0/1 values)",
                )
            masks = masks.astype(bool)
        if 0 in masks.shape:
            raise invalid("masks_or_boxes", describe(masks), "non-empty masks")
        if size is not None and tuple(size) != masks.shape[1:]:
            raise invalid(
                "size",
                size,
                f"None or the masks' own size {masks.shape[1:]} (size is for boxes)",
            )
    else:
        if size is None:
            size = (BOX_OVERSAMPLING * h, BOX_OVERSAMPLING * w)
        masks = boxes_to_masks(masks_or_boxes, size)
    if masks.shape[0] != batch:
        raise invalid(
            "masks_or_boxes",
            f"<{masks.shape[0]} regions>",
            f"one mask or set of boxes per saliency map: {batch}",
        )
    return masks, upsample(saliency, masks.shape[1:])


def pointing_game(saliency, masks_or_boxes, size=None):
    """Pointing game: is each map's maximum inside the ground-truth region?

    The saliency map is first resized (bilinear, ``upsample``) to the mask
    size; its maximum pixel (the first one, in row-major order, when
    several are equal) scores a hit when it lies inside the region. A
    constant map (all-zero included) points nowhere: it is never a hit,
    whatever the region (otherwise it would score whenever the region
    covers the first pixel).

    Args:
        saliency: ``(B, h, w)`` maps.
        masks_or_boxes: either boolean masks ``(B, H, W)`` (or a list of
            ``B`` boolean ``(H, W)`` arrays), or boxes
            ``[ymin, xmin, ymax, xmax]`` normalised to ``[0, 1]`` (fractions
            of the image height and width): an array ``(B, 4)``, or a list
            of ``B`` arrays ``(n_i, 4)`` (several boxes per image: their
            union; none: never a hit). See ``boxes_to_masks``.
        size: for boxes only, ``(H, W)`` of the grid the boxes are drawn on
            and the map resized to; default ``8 * (h, w)``.

    Returns:
        Boolean NumPy array ``(B,)``; its mean is the pointing-game
        accuracy.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> saliency = np.zeros((2, 2, 2)); saliency[0, 0, 0] = saliency[1, 1, 1] = 1.0
    >>> boxes = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]])
    >>> keras_brnpa.metrics.pointing_game(saliency, boxes)
    array([ True, False])
    """
    saliency = check_saliency(saliency)
    masks, resized = _regions(saliency, masks_or_boxes, size)
    flat = resized.reshape(len(resized), -1).argmax(axis=1)
    hits = masks.reshape(len(masks), -1)[np.arange(len(masks)), flat]
    # Constancy is judged on the map as given (resizing adds rounding).
    return hits & (saliency.max(axis=(1, 2)) > saliency.min(axis=(1, 2)))


def energy_in_mask(saliency, masks_or_boxes, size=None):
    """Share of each map's energy inside the ground-truth region.

    ``sum(s * mask) / sum(s)`` with ``s`` the saliency map resized
    (bilinear) to the mask size and its negative values clipped to 0; in
    ``[0, 1]``, higher is better (the "energy-based pointing game" of
    Score-CAM). An all-zero map gives ``nan``.

    Args:
        saliency: ``(B, h, w)`` maps.
        masks_or_boxes: boolean masks ``(B, H, W)`` or normalised boxes,
            as in ``pointing_game``.
        size: for boxes only, the grid size (default ``8 * (h, w)``).

    Returns:
        NumPy float64 array ``(B,)``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> saliency = np.array([[[3.0, 1.0], [0.0, 0.0]]])
    >>> mask = np.array([[[True, False], [False, False]]])
    >>> keras_brnpa.metrics.energy_in_mask(saliency, mask)
    array([0.75])
    """
    saliency = check_saliency(saliency)
    masks, resized = _regions(saliency, masks_or_boxes, size)
    resized = np.clip(resized, 0, None)
    total = resized.sum(axis=(1, 2))
    inside = (resized * masks).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)
