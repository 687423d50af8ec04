"""Few-shot training episodes as batches (the prototypical recipe)."""

import keras
import numpy as np

from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid


class EpisodeDataset(keras.utils.PyDataset):
    """Random N-way K-shot episodes, one per batch, for ``model.fit``.

    Batch ``i`` of an epoch is an episode: ``n_way`` classes drawn among
    those with ``k_shot + n_query`` images or more, then ``k_shot`` support
    images of each class (class 0's first, then class 1's, ...), then
    ``n_query`` query images of each (same order). The targets are the
    episode labels in ``[0, n_way)``. This is the layout
    ``keras_brnpa.losses.PrototypicalLoss(n_way, k_shot)`` expects: compile
    an embedding model with it and ``fit`` on this dataset to train it
    prototypically (Snell et al., 2017). Deterministic given ``seed`` and
    the epoch number.

    Args:
        images: array ``(N, ...)``.
        labels: integer array ``(N,)`` of (meta-training) classes.
        n_way: int >= 2.
        k_shot: int >= 1.
        n_query: int >= 1.
        episodes_per_epoch: int >= 1, batches per epoch.
        seed: int.
        **kwargs: ``keras.utils.PyDataset`` arguments.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> labels = np.repeat(np.arange(8), 6)
    >>> data = keras_brnpa.fewshot.EpisodeDataset(
    ...     np.zeros((48, 8, 8, 3), "float32"), labels, n_way=3, k_shot=2, n_query=1)
    >>> x, y = data[0]
    >>> x.shape, y.tolist()
    ((9, 8, 8, 3), [0, 0, 1, 1, 2, 2, 0, 1, 2])
    """

    def __init__(
        self, images, labels, n_way=5, k_shot=1, n_query=15, episodes_per_epoch=100, seed=0, **kwargs
    ):
        super().__init__(**kwargs)
        self.images = np.asarray(images)
        labels = np.asarray(labels)
        if labels.shape != (len(self.images),) or not np.issubdtype(labels.dtype, np.integer):
            raise invalid("labels", f"<array of shape {labels.shape}>",
                          f"an integer array of shape ({len(self.images)},)")
        self.labels = labels
        self.n_way = check_positive_int("n_way", n_way)
        if self.n_way < 2:
            raise invalid("n_way", n_way, "an integer >= 2")
        self.k_shot = check_positive_int("k_shot", k_shot)
        self.n_query = check_positive_int("n_query", n_query)
        self.episodes_per_epoch = check_positive_int("episodes_per_epoch", episodes_per_epoch)
        classes, counts = np.unique(labels, return_counts=True)
        self.classes = classes[counts >= self.k_shot + self.n_query]
        if len(self.classes) < self.n_way:
            raise invalid("n_way", n_way,
                          f"at most the number of classes with k_shot + n_query images or more "
                          f"({len(self.classes)})")
        self._members = {c: np.flatnonzero(labels == c) for c in self.classes}
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self):
        return self.episodes_per_epoch

    def __getitem__(self, index):
        if index < 0 or index >= len(self):
            raise IndexError(f"batch index {index} out of range [0, {len(self)})")
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch, index])
        chosen = rng.choice(self.classes, self.n_way, replace=False)
        picks = np.stack(
            [rng.choice(self._members[c], self.k_shot + self.n_query, replace=False) for c in chosen]
        )
        rows = np.concatenate([picks[:, : self.k_shot].reshape(-1), picks[:, self.k_shot :].reshape(-1)])
        targets = np.concatenate(
            [np.repeat(np.arange(self.n_way), self.k_shot), np.repeat(np.arange(self.n_way), self.n_query)]
        )
        return self.images[rows], targets.astype("int64")

    def on_epoch_end(self):
        self.epoch += 1
