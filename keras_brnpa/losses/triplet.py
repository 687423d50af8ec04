"""Batch-hard triplet loss (Hermans et al., 2017) for re-identification."""

import numbers

import keras
from keras import ops

from keras_brnpa._checks import check_choice
from keras_brnpa._checks import invalid

DISTANCES = ("euclidean", "squared_euclidean", "cosine")


def pairwise_distances(embeddings, distance="euclidean"):
    """``(B, B)`` distances between the rows of ``embeddings`` (``keras.ops``)."""
    e = ops.cast(embeddings, "float32")
    if distance == "cosine":
        e = e / ops.sqrt(ops.maximum(ops.sum(ops.square(e), axis=-1, keepdims=True), 1e-12))
        return 1.0 - ops.matmul(e, ops.transpose(e))
    squared = ops.sum(ops.square(e), axis=-1)
    d2 = squared[:, None] - 2.0 * ops.matmul(e, ops.transpose(e)) + squared[None, :]
    d2 = ops.maximum(d2, 0.0)
    if distance == "squared_euclidean":
        return d2
    # sqrt has an infinite gradient at 0 (an anchor against itself): clamp.
    return ops.sqrt(ops.maximum(d2, 1e-12))


@keras.saving.register_keras_serializable(package="keras_brnpa")
class BatchHardTripletLoss(keras.losses.Loss):
    """Batch-hard triplet loss: hardest positive vs hardest negative per anchor.

    For every anchor ``a`` of the batch (Hermans, Beyer and Leibe, "In
    defense of the triplet loss for person re-identification", 2017):

    ```
    loss_a = max(0, margin + max_{p: y_p = y_a, p != a} d(a, p)
                           - min_{n: y_n != y_a} d(a, n))
    ```

    or ``softplus(max d(a, p) - min d(a, n))`` with ``margin=None`` (the
    "soft margin"). Anchors without a positive or without a negative in the
    batch get loss 0, so batches should hold several images of each
    identity: ``keras_brnpa.datasets.IdentityBalancedDataset`` draws P
    identities x K images. Core Keras 3 has no triplet loss.

    ``y_true`` are the integer identities ``(B,)`` (or ``(B, 1)``),
    ``y_pred`` the embeddings ``(B, D)``. The per-anchor losses are reduced
    by ``reduction`` (default: the mean over the batch).

    Args:
        margin: float >= 0, or ``None`` for the soft margin.
        distance: ``"euclidean"`` (the paper's choice), ``"squared_euclidean"``
            or ``"cosine"`` (``1 - cos``).
        reduction, name, dtype: as for ``keras.losses.Loss``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> loss = keras_brnpa.losses.BatchHardTripletLoss(margin=0.3)
    >>> ids = np.array([0, 0, 1, 1])
    >>> apart = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], "float32")
    >>> float(loss(ids, apart))       # positives at 0, negatives at sqrt(2)
    0.0
    >>> round(float(loss(ids, apart[[0, 2, 1, 3]])), 4)   # mixed up: sqrt(2) + 0.3
    1.7142
    """

    def __init__(
        self,
        margin=0.3,
        distance="euclidean",
        reduction="sum_over_batch_size",
        name="batch_hard_triplet_loss",
        dtype=None,
    ):
        if margin is not None and (
            isinstance(margin, bool) or not isinstance(margin, numbers.Real) or margin < 0
        ):
            raise invalid("margin", margin, "None (soft margin) or a float >= 0")
        check_choice("distance", distance, DISTANCES)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = None if margin is None else float(margin)
        self.distance = distance

    def call(self, y_true, y_pred):
        ids = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        d = pairwise_distances(y_pred, self.distance)
        same = ops.equal(ids[:, None], ids[None, :])
        # Positions 1..B without a static batch size (works under jit).
        index = ops.cumsum(ops.ones_like(ids))
        not_self = ops.not_equal(index[:, None], index[None, :])
        positive = ops.logical_and(same, not_self)
        negative = ops.logical_not(same)
        hardest_positive = ops.max(ops.where(positive, d, 0.0), axis=1)
        big = ops.max(d) + 1.0
        hardest_negative = ops.min(ops.where(negative, d, big), axis=1)
        gap = hardest_positive - hardest_negative
        if self.margin is None:
            per_anchor = ops.softplus(gap)
        else:
            per_anchor = ops.relu(gap + self.margin)
        valid = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
        return per_anchor * ops.cast(valid, per_anchor.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"margin": self.margin, "distance": self.distance})
        return config
