"""Prototypical-network loss for few-shot episodes (Snell et al., 2017)."""

import numbers

import keras
from keras import ops

from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid


@keras.saving.register_keras_serializable(package="keras_brnpa")
class PrototypicalLoss(keras.losses.Loss):
    """Cross-entropy of the queries of an episode over cosine prototypes.

    A batch is one N-way K-shot episode laid out as
    ``keras_brnpa.fewshot.EpisodeDataset`` yields it: the first
    ``n_way * k_shot`` items are the support set, the rest the queries;
    ``y_true`` are the episode labels in ``[0, n_way)``. The prototype of a
    class is the mean of its (L2-normalised) support embeddings; the
    logits of a query are ``scale * cos(query, prototype)`` and the loss is
    the softmax cross-entropy of its label, one value per query (so the
    default reduction averages over the queries). Cosine prototypes are
    what ``keras_brnpa.fewshot.evaluate_episodes`` classifies with.

    Args:
        n_way: int >= 2, classes per episode.
        k_shot: int >= 1, support images per class.
        scale: float > 0, the inverse temperature of the cosine logits.
        reduction, name, dtype: as for ``keras.losses.Loss``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> loss = keras_brnpa.losses.PrototypicalLoss(n_way=2, k_shot=1, scale=10.0)
    >>> labels = np.array([0, 1, 0, 1])           # 2 support, then 2 queries
    >>> good = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], "float32")
    >>> bad = good[[0, 1, 3, 2]]                  # queries swapped
    >>> bool(float(loss(labels, good)) < 1e-3), bool(float(loss(labels, bad)) > 5)
    (True, True)
    """

    def __init__(
        self,
        n_way,
        k_shot,
        scale=10.0,
        reduction="sum_over_batch_size",
        name="prototypical_loss",
        dtype=None,
    ):
        n_way = check_positive_int("n_way", n_way)
        if n_way < 2:
            raise invalid("n_way", n_way, "an integer >= 2")
        k_shot = check_positive_int("k_shot", k_shot)
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not scale > 0:
            raise invalid("scale", scale, "a float > 0")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.n_way, self.k_shot, self.scale = n_way, k_shot, float(scale)

    def call(self, y_true, y_pred):
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        e = ops.cast(y_pred, "float32")
        e = e / ops.sqrt(ops.maximum(ops.sum(ops.square(e), axis=-1, keepdims=True), 1e-12))
        n_support = self.n_way * self.k_shot
        support, queries = e[:n_support], e[n_support:]
        one_hot = ops.one_hot(labels[:n_support], self.n_way, dtype="float32")  # (S, N)
        counts = ops.maximum(ops.sum(one_hot, axis=0), 1.0)
        prototypes = ops.matmul(ops.transpose(one_hot), support) / counts[:, None]
        prototypes = prototypes / ops.sqrt(
            ops.maximum(ops.sum(ops.square(prototypes), axis=-1, keepdims=True), 1e-12)
        )
        logits = self.scale * ops.matmul(queries, ops.transpose(prototypes))
        return keras.losses.sparse_categorical_crossentropy(
            labels[n_support:], logits, from_logits=True
        )

    def get_config(self):
        config = super().get_config()
        config.update({"n_way": self.n_way, "k_shot": self.k_shot, "scale": self.scale})
        return config
