"""The curve engine of the perturbation metrics: batched model calls.

Every perturbation metric (deletion and insertion AUC, their correlations,
ROAD) scores the class of each image on several perturbed versions of it.
``score_points`` does that for any perturbation: it enumerates the jobs
(image, point), asks the metric's ``perturb`` function for the perturbed
images of one chunk of jobs at a time, and evaluates every chunk with the
model's compiled predict function, all chunks padded to one size (one
trace). ``block_curves`` is its deletion/insertion mode: cells of a grid
removed (``mode="deletion"``) or restored (``mode="insertion"``) in the
order of the saliency.
"""

import keras
import numpy as np

from keras_brnpa._checks import invalid
from keras_brnpa._checks import resolve_classes
from keras_brnpa._checks import single_output
from keras_brnpa._checks import to_numpy
from keras_brnpa.models.inspection import outputs_look_like_probabilities
from keras_brnpa.models.inspection import resolve_from_logits

MODES = ("deletion", "insertion")


def check_model(model):
    if not callable(model):
        raise invalid("model", model, "a keras.Model or a callable from images to scores")
    return model


def as_scores(outputs, batch):
    """A model's outputs as a ``(batch, num_classes)`` NumPy array, checked."""
    outputs = to_numpy("model", single_output(outputs))
    if outputs.ndim != 2 or outputs.shape[0] != batch:
        raise invalid(
            "model",
            f"<model with output of shape {outputs.shape}>",
            f"a classifier with a single (batch, num_classes) output, batch={batch}",
        )
    return outputs


def class_scores(outputs, classes, from_logits):
    """Score of ``classes`` in each row of ``outputs`` (float64).

    ``from_logits`` is a bool, or one bool per image (the leading axis).
    """
    outputs = np.asarray(outputs, np.float64)
    logits = np.asarray(from_logits, bool)
    if logits.any():
        soft = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
        soft = soft / soft.sum(axis=-1, keepdims=True)
        outputs = np.where(logits.reshape(logits.shape + (1,) * (outputs.ndim - logits.ndim)),
                           soft, outputs)
    return np.take_along_axis(outputs, classes[..., None], axis=-1)[..., 0]


def resolve_per_image(model, from_logits, outputs):
    """``from_logits`` for each image: the model's answer when it gives one.

    When the model's layers do not say (a callable, a subclassed model),
    ``resolve_from_logits`` reads the outputs: each image's own row
    decides, so that no image's score depends on the others of the batch.
    Returns a bool or a ``(B,)`` bool array.
    """
    looks_like_probabilities = resolve_from_logits(model, from_logits, np.array([[0.5, 0.5]]))
    looks_like_logits = resolve_from_logits(model, from_logits, np.array([[2.0, -1.0]]))
    if looks_like_probabilities == looks_like_logits:  # decided without the outputs
        return looks_like_logits
    return np.array([not outputs_look_like_probabilities(row[None]) for row in outputs])


def area(curves):
    """Trapezoid area over points evenly spread on [0, 1] (one point: itself)."""
    if curves.shape[1] == 1:
        return curves[:, 0].copy()
    return ((curves[:, :-1] + curves[:, 1:]) / 2).mean(axis=1)


def predict_function(model):
    """A compiled ``(n, H, W, C) -> (n, K)`` NumPy function."""
    if isinstance(model, keras.Model):
        predict = model.predict_on_batch
    else:
        predict = model

    def run(batch):
        return as_scores(predict(batch), len(batch))

    return run


def score_points(
    model, images, points, perturb, batch_size, from_logits, class_index, intact=None
):
    """The class score on ``points`` perturbed versions of each image, batched.

    Args:
        model: the checked model.
        images: checked ``(B, H, W, C)`` images.
        points: int >= 1, perturbed versions per image.
        perturb: ``perturb(owner, point) -> (n, H, W, C)``: the perturbed
            images of the jobs ``(owner[i], point[i])`` (two int arrays);
            an image's version may depend only on that image.
        batch_size: the most images per forward pass (and held at once).
        from_logits: ``None``, ``True`` or ``False`` (checked).
        class_index: ``None`` or the checked ``(B,)`` classes.
        intact: the point that is the intact image (its prediction gives
            the class and, for ``from_logits=None``, the output's kind), or
            ``None``: the intact images are scored as one more job each.

    Returns:
        float64 ``(B, points)`` scores.
    """
    batch = images.shape[0]
    per_image = points + (intact is None)
    reference = points if intact is None else intact
    total = batch * per_image
    # As few calls as batch_size allows, all of the same size (one trace of
    # the predict function), with as little padding as possible.
    calls = -(-total // batch_size)
    size = -(-total // calls)
    predict = predict_function(model)

    def build(start):
        jobs = np.arange(start, min(start + size, total))
        owner, point = np.divmod(jobs, per_image)
        chunk = np.zeros((size,) + images.shape[1:], images.dtype)
        extra = point == points  # the intact images added as jobs
        chunk[: len(jobs)][~extra] = perturb(owner[~extra], point[~extra])
        chunk[: len(jobs)][extra] = images[owner[extra]]
        return chunk, len(jobs)

    outputs = []
    for start in range(0, total, size):
        chunk, n = build(start)
        outputs.append(predict(chunk)[:n])
    outputs = np.concatenate(outputs).reshape(batch, per_image, -1)
    classes = resolve_classes(class_index, outputs[:, reference])
    from_logits = resolve_per_image(model, from_logits, outputs[:, reference])
    scores = class_scores(outputs, np.repeat(classes[:, None], per_image, axis=1), from_logits)
    return scores[:, :points]


def block_curves(
    model, images, saliency, counts, batch_size, from_logits, other, mode, class_index
):
    """Deletion or insertion curves: the score after removing ``counts`` cells.

    Args:
        model, images, batch_size, from_logits, class_index: as for
            ``score_points``.
        saliency: ``(B, h, w)`` maps on a grid that tiles the images.
        counts: ``(n,)`` ints, the number of cells removed (deletion) or
            restored (insertion) at each point of the curve, in the order
            of ``perturbation.saliency_ranks``.
        other: ``(B, H, W, C)``: the fill of removed blocks (deletion) or
            the start image (insertion).
        mode: ``"deletion"`` or ``"insertion"``.

    Returns:
        float64 ``(B, n)`` curves.
    """
    from keras_brnpa.metrics.perturbation import saliency_ranks

    if mode not in MODES:
        raise invalid("mode", mode, f"one of {MODES}")
    insertion = mode == "insertion"
    batch, height, width, channels = images.shape
    h, w = saliency.shape[1:]
    bh, bw = height // h, width // w
    # Points that perturb the same number of cells give the same image:
    # each distinct count is evaluated once per image, and the intact image
    # (its prediction is the explained class) even when it is no point.
    intact_count = h * w if insertion else 0
    unique = np.union1d(counts, [intact_count])
    inverse = np.searchsorted(unique, counts)
    ranks = saliency_ranks(saliency)
    blocks = images.reshape(batch, h, bh, w, bw, channels)
    other = other.reshape(batch, h, bh, w, bw, channels)

    def perturb(owner, point):
        n = len(owner)
        # (n, h*w) -> (n, h, 1, w, 1, 1): True where the block is perturbed.
        mask = (ranks[owner] < unique[point][:, None]).reshape(n, h, 1, w, 1, 1)
        if insertion:
            chunk = np.where(mask, blocks[owner], other[owner])
        else:
            chunk = np.where(mask, other[owner], blocks[owner])
        return chunk.reshape(n, height, width, channels)

    intact = int(np.searchsorted(unique, intact_count))
    scores = score_points(
        model, images, len(unique), perturb, batch_size, from_logits, class_index, intact
    )
    return scores[:, inverse]
