"""keras_brnpa.losses: batch-hard triplet and prototypical losses vs plain NumPy."""

import os

import keras
import numpy as np
import pytest

import keras_brnpa
from keras_brnpa.losses import BatchHardTripletLoss
from keras_brnpa.losses import PrototypicalLoss


def triplet_reference(ids, e, margin, distance):
    """Every anchor, every positive, every negative, in plain loops."""
    n = len(ids)

    def d(i, j):
        if distance == "cosine":
            return 1.0 - e[i] @ e[j] / (np.linalg.norm(e[i]) * np.linalg.norm(e[j]))
        squared = float(np.sum((e[i] - e[j]) ** 2))
        return squared if distance == "squared_euclidean" else np.sqrt(max(squared, 1e-12))

    losses = []
    for a in range(n):
        positives = [d(a, p) for p in range(n) if p != a and ids[p] == ids[a]]
        negatives = [d(a, q) for q in range(n) if ids[q] != ids[a]]
        if not positives or not negatives:
            losses.append(0.0)
            continue
        gap = max(positives) - min(negatives)
        losses.append(np.log1p(np.exp(gap)) if margin is None else max(0.0, gap + margin))
    return float(np.mean(losses))


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
@pytest.mark.parametrize("margin", [0.3, None])
def test_triplet_loss_equals_plain_numpy(distance, margin):
    rng = np.random.default_rng(0)
    ids = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])  # id 3 has no positive: loss 0
    e = rng.normal(size=(len(ids), 5)).astype("float32")
    loss = BatchHardTripletLoss(margin=margin, distance=distance)
    got = float(keras.ops.convert_to_numpy(loss(ids, e)))
    assert got == pytest.approx(triplet_reference(ids, e.astype("float64"), margin, distance),
                                rel=1e-4, abs=1e-5)
    # (B, 1) labels, as Keras may pass them, give the same value.
    assert float(keras.ops.convert_to_numpy(loss(ids[:, None], e))) == pytest.approx(got, rel=1e-6)


def test_triplet_loss_zero_without_triplets_and_config_round_trip():
    loss = BatchHardTripletLoss(margin=0.5, distance="cosine")
    e = np.eye(3, dtype="float32")
    assert float(keras.ops.convert_to_numpy(loss(np.array([0, 1, 2]), e))) == 0.0  # no positive
    assert float(keras.ops.convert_to_numpy(loss(np.array([0, 0, 0]), e))) == 0.0  # no negative
    config = keras.saving.serialize_keras_object(loss)
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, BatchHardTripletLoss)
    assert (clone.margin, clone.distance) == (0.5, "cosine")


def prototypical_reference(labels, e, n_way, k_shot, scale):
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    s = n_way * k_shot
    prototypes = np.stack([e[:s][labels[:s] == c].mean(axis=0) for c in range(n_way)])
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    losses = []
    for q, y in zip(e[s:], labels[s:]):
        logits = scale * prototypes @ q
        losses.append(-(logits[y] - np.log(np.sum(np.exp(logits)))))
    return float(np.mean(losses))


def test_prototypical_loss_equals_plain_numpy():
    rng = np.random.default_rng(1)
    n_way, k_shot, n_query = 3, 2, 4
    labels = np.concatenate([np.repeat(np.arange(n_way), k_shot), np.repeat(np.arange(n_way), n_query)])
    e = rng.normal(size=(len(labels), 6)).astype("float32")
    loss = PrototypicalLoss(n_way, k_shot, scale=7.0)
    got = float(keras.ops.convert_to_numpy(loss(labels, e)))
    assert got == pytest.approx(prototypical_reference(labels, e.astype("float64"), n_way, k_shot, 7.0),
                                rel=1e-4)
    clone = PrototypicalLoss.from_config(loss.get_config())
    assert (clone.n_way, clone.k_shot, clone.scale) == (3, 2, 7.0)


@pytest.mark.parametrize(
    "cls, kwargs, argument",
    [
        (BatchHardTripletLoss, dict(margin=-1.0), "margin"),
        (BatchHardTripletLoss, dict(distance="manhattan"), "distance"),
        (PrototypicalLoss, dict(n_way=1, k_shot=1), "n_way"),
        (PrototypicalLoss, dict(n_way=3, k_shot=0), "k_shot"),
        (PrototypicalLoss, dict(n_way=3, k_shot=1, scale=0.0), "scale"),
    ],
)
def test_loss_errors_name_the_argument(cls, kwargs, argument):
    with pytest.raises(ValueError, match=f"Invalid value for argument {argument}"):
        cls(**kwargs)


def test_triplet_loss_trains_a_model_and_saves(tmp_path):
    """Fit reduces the loss; a model compiled with it round-trips through .keras."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(4), 4)
    x = (rng.normal(size=(4, 6))[ids] + 0.5 * rng.normal(size=(16, 6))).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4), keras.layers.UnitNormalization()])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=BatchHardTripletLoss(margin=0.5))
    history = model.fit(x, ids, batch_size=16, epochs=15, verbose=0).history["loss"]
    assert history[-1] < 0.7 * history[0]
    path = os.path.join(str(tmp_path), "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.loss, BatchHardTripletLoss)
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0), atol=1e-6)
    assert keras_brnpa.losses.BatchHardTripletLoss is BatchHardTripletLoss
