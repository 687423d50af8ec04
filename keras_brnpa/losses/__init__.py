"""Metric-learning losses: re-identification triplets, few-shot prototypes.

- ``BatchHardTripletLoss``: the hardest positive against the hardest
  negative of each anchor in a P x K batch (re-identification);
- ``PrototypicalLoss``: cross-entropy of an episode's queries over the
  cosine prototypes of its support set (few-shot).

Both take integer labels as ``y_true`` and embeddings as ``y_pred`` and are
registered Keras losses (``model.save`` / ``load_model`` keep them).

Example:

>>> import numpy as np, keras_brnpa
>>> loss = keras_brnpa.losses.BatchHardTripletLoss(margin=None)
>>> value = loss(np.array([0, 0, 1, 1]), np.eye(4, 3, dtype="float32"))
>>> bool(float(value) > 0)
True
"""

from keras_brnpa.losses.prototypical import PrototypicalLoss
from keras_brnpa.losses.triplet import BatchHardTripletLoss

__all__ = ["BatchHardTripletLoss", "PrototypicalLoss"]
