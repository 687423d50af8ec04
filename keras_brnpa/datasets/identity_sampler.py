"""Identity-balanced P x K batches for metric learning (re-identification)."""

import keras
import numpy as np

from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid


class IdentityBalancedDataset(keras.utils.PyDataset):
    """Batches of P identities x K images each, as the triplet loss needs.

    Every batch draws ``identities_per_batch`` (P) distinct identities and
    ``images_per_identity`` (K) images of each (without replacement when
    the identity has K images or more, with replacement otherwise), in the
    order identity 1's K images, identity 2's, ... An epoch visits the
    identities in a random order, each once (so an epoch has
    ``num_identities // P`` batches unless ``steps_per_epoch`` says
    otherwise). The draw is deterministic given ``seed`` and the epoch
    number (so a resumed run sees the same batches). A ``keras.utils
    .PyDataset``: works with ``model.fit`` on every backend.

    Args:
        images: array ``(N, ...)``.
        ids: integer array ``(N,)``, the identity of each image.
        identities_per_batch: P, int >= 2 (a negative needs another identity).
        images_per_identity: K, int >= 2 (a positive needs another image).
        steps_per_epoch: ``None`` (one pass over the identities) or int >= 1.
        targets: ``None`` (batches are ``(images, ids)``) or a sequence of
            output names, e.g. ``("embedding", "logits")`` for a model from
            ``keras_brnpa.models.with_id_logits``: batches are
            ``(images, {name: ids for each name})``.
        seed: int, seed of the draws.
        **kwargs: ``keras.utils.PyDataset`` arguments (``workers``, ...).

    Example:

    >>> import numpy as np, keras_brnpa
    >>> ids = np.repeat(np.arange(6), 3)
    >>> data = keras_brnpa.datasets.IdentityBalancedDataset(
    ...     np.zeros((18, 8, 8, 3), "float32"), ids,
    ...     identities_per_batch=3, images_per_identity=2)
    >>> x, y = data[0]
    >>> len(data), x.shape, np.unique(y, return_counts=True)[1].tolist()
    (2, (6, 8, 8, 3), [2, 2, 2])
    """

    def __init__(
        self,
        images,
        ids,
        identities_per_batch=16,
        images_per_identity=4,
        steps_per_epoch=None,
        targets=None,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.images = np.asarray(images)
        ids = np.asarray(ids)
        if ids.shape != (len(self.images),) or not np.issubdtype(ids.dtype, np.integer):
            raise invalid(
                "ids", f"<array of shape {ids.shape}>", f"an integer array of shape ({len(self.images)},)"
            )
        self.ids = ids.astype("int64")
        self.identities_per_batch = check_positive_int("identities_per_batch", identities_per_batch)
        self.images_per_identity = check_positive_int("images_per_identity", images_per_identity)
        if self.identities_per_batch < 2:
            raise invalid("identities_per_batch", identities_per_batch, "an integer >= 2")
        if self.images_per_identity < 2:
            raise invalid("images_per_identity", images_per_identity, "an integer >= 2")
        self.identities = np.unique(self.ids)
        if len(self.identities) < self.identities_per_batch:
            raise invalid(
                "identities_per_batch",
                identities_per_batch,
                f"at most the number of identities ({len(self.identities)})",
            )
        self.steps_per_epoch = (
            None if steps_per_epoch is None else check_positive_int("steps_per_epoch", steps_per_epoch)
        )
        if targets is not None:
            if isinstance(targets, str) or not all(isinstance(t, str) for t in targets) or not targets:
                raise invalid("targets", targets, "None or a non-empty sequence of output names")
            targets = tuple(targets)
        self.targets = targets
        self.seed = int(seed)
        self._members = {i: np.flatnonzero(self.ids == i) for i in self.identities}
        self.epoch = 0
        self._plan = self._make_plan()

    def _make_plan(self):
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch])
        p, k = self.identities_per_batch, self.images_per_identity
        steps = len(self) if self.steps_per_epoch is None else self.steps_per_epoch
        order = []
        while len(order) < steps * p:
            order.extend(rng.permutation(self.identities).tolist())
        batches = []
        for step in range(steps):
            chosen = order[step * p : (step + 1) * p]
            # A wrap-around may repeat an identity within a batch: replace it.
            seen, unique = set(), []
            for identity in chosen:
                while identity in seen:
                    identity = int(rng.choice(self.identities))
                seen.add(identity)
                unique.append(identity)
            rows = []
            for identity in unique:
                members = self._members[identity]
                rows.append(rng.choice(members, k, replace=len(members) < k))
            batches.append(np.concatenate(rows))
        return batches

    def set_epoch(self, epoch):
        """Use the draw of epoch ``epoch`` (0-based) from now on."""
        self.epoch = int(epoch)
        self._plan = self._make_plan()

    def __len__(self):
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        return max(1, len(self.identities) // self.identities_per_batch)

    def __getitem__(self, index):
        if index < 0 or index >= len(self):
            raise IndexError(f"batch index {index} out of range [0, {len(self)})")
        rows = self._plan[index]
        ids = self.ids[rows]
        if self.targets is None:
            return self.images[rows], ids
        return self.images[rows], {name: ids for name in self.targets}

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)
