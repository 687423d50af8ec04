"""keras_brnpa.models.build_embedding_model / with_id_logits."""

import os

import keras
import numpy as np
import pytest

import keras_brnpa
from keras_brnpa.models import build_embedding_model
from keras_brnpa.models import with_id_logits

SHAPE = (32, 32, 3)


def images(n=3, seed=0):
    return np.random.default_rng(seed).random((n,) + SHAPE).astype("float32")


@pytest.mark.parametrize(
    "head, embedding_dim, size",
    [("brnpa", None, 3 * 128), ("bcnn", None, 3 * 128), ("gap", None, 128), ("brnpa", 24, 24)],
)
def test_unit_embeddings_from_part_vectors(head, embedding_dim, size):
    keras.utils.set_random_seed(0)
    model = build_embedding_model(backbone="tiny", head=head, n_parts=3, embedding_dim=embedding_dim,
                                  resolution="high", input_shape=SHAPE)
    x = images()
    out = keras.ops.convert_to_numpy(model(x))
    assert out.shape == (3, size)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # The embedding is the normalised head output (no projection): compare
    # with the head layer called on the backbone's features.
    if embedding_dim is None:
        features = model.get_layer("backbone")(x)
        head_layer = model.get_layer("head")
        vectors = head_layer(features) if head == "gap" else head_layer(features, return_attention_maps=True)[0]
        vectors = keras.ops.convert_to_numpy(vectors)
        np.testing.assert_allclose(out, vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
                                   rtol=1e-4, atol=1e-5)


def test_attention_model_and_explain_work_on_embedding_models():
    keras.utils.set_random_seed(0)
    model = build_embedding_model(backbone="tiny", head="brnpa", n_parts=3, resolution="high",
                                  input_shape=SHAPE, embedding_dim=16)
    x = images()
    out = keras_brnpa.models.attention_model(model)(x)
    assert set(out) == {"embedding", "attention_maps", "feature_norm", "features"}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out["embedding"]),
                               keras.ops.convert_to_numpy(model(x)), rtol=1e-4, atol=1e-5)
    maps = keras_brnpa.explain.attention_maps(model, x)
    assert maps.shape == (3, 4, 4, 3)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-4)
    assert keras_brnpa.explain.explanation_map(model, x, upsample=True).shape == (3, 32, 32)
    gap = build_embedding_model(backbone="tiny", head="gap", resolution="high", input_shape=SHAPE)
    assert keras_brnpa.explain.attention_maps(gap, x).shape == (3, 4, 4, 1)


def test_with_id_logits_shares_weights_save_and_high_resolution(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_embedding_model(backbone="tiny", head="brnpa", input_shape=(64, 64, 3))
    trainer = with_id_logits(model, num_ids=4)
    x, ids = np.random.default_rng(0).random((8, 64, 64, 3)).astype("float32"), np.repeat(np.arange(4), 2)
    before = keras.ops.convert_to_numpy(model(x))
    trainer.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss={"embedding": keras_brnpa.losses.BatchHardTripletLoss(),
              "logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
    )
    trainer.fit(x, {"embedding": ids, "logits": ids}, batch_size=8, epochs=1, verbose=0)
    after = keras.ops.convert_to_numpy(model(x))
    assert not np.allclose(before, after)  # training the trainer trained the model
    np.testing.assert_allclose(keras.ops.convert_to_numpy(trainer(x)["embedding"]), after, atol=1e-5)
    path = os.path.join(str(tmp_path), "embedding.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), after, atol=1e-5)
    # The high-resolution twin (the distillation student) keeps the weights.
    high = keras_brnpa.models.to_high_resolution(model)
    assert keras_brnpa.models.feature_shape(model)[:2] == (2, 2)
    assert keras_brnpa.models.feature_shape(high)[:2] == (8, 8)
    assert keras.ops.convert_to_numpy(high(x)).shape == after.shape


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="Invalid value for argument head"):
        build_embedding_model(backbone="tiny", head="mlp", input_shape=SHAPE)
    with pytest.raises(ValueError, match="Invalid value for argument embedding_dim"):
        build_embedding_model(backbone="tiny", embedding_dim=0, input_shape=SHAPE)
    classifier = keras_brnpa.models.build_classifier(3, backbone="tiny", head="gap", input_shape=SHAPE)
    with pytest.raises(ValueError, match="Invalid value for argument model"):
        with_id_logits(classifier, 3)
    model = build_embedding_model(backbone="tiny", resolution="high", input_shape=SHAPE)
    with pytest.raises(ValueError, match="Invalid value for argument num_ids"):
        with_id_logits(model, 0)


def test_brief_reid_training_raises_rank1():
    """ID + batch-hard triplet on P x K batches: rank-1 well above untrained."""
    data = keras_brnpa.datasets.synthetic_reid(num_train_identities=32, num_test_identities=16,
                                               images_per_identity=8, num_cameras=4, image_size=32)

    def evaluate(model):
        query = keras_brnpa.fewshot.embed(model, data["query"]["images"])
        gallery = keras_brnpa.fewshot.embed(model, data["gallery"]["images"])
        return keras_brnpa.metrics.cmc_map(
            query, data["query"]["ids"], gallery, data["gallery"]["ids"],
            data["query"]["cameras"], data["gallery"]["cameras"])

    keras.utils.set_random_seed(0)
    # A two-convolution backbone (8x8x64 maps): fast on every backend.
    convs = keras.Sequential([
        keras.Input(SHAPE),
        keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
    ], name="convs")
    model = build_embedding_model(backbone=convs, head="brnpa", n_parts=3)
    assert model.get_layer("backbone").output_shape == (None, 8, 8, 64)
    before = evaluate(model)
    trainer = with_id_logits(model, num_ids=32)
    trainer.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss={"embedding": keras_brnpa.losses.BatchHardTripletLoss(margin=0.3),
              "logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
    )
    batches = keras_brnpa.datasets.IdentityBalancedDataset(
        data["train"]["images"], data["train"]["labels"], identities_per_batch=8,
        images_per_identity=4, steps_per_epoch=20, targets=("embedding", "logits"))
    trainer.fit(batches, epochs=4, verbose=0)
    after = evaluate(model)
    # Measured: rank-1 0.06-0.08 -> 0.59-0.64, mAP 0.07 -> 0.59-0.65
    # (TensorFlow, torch).
    assert before["rank-1"] < 0.25, before
    assert after["rank-1"] > before["rank-1"] + 0.3, (before, after)
    assert after["mAP"] > before["mAP"] + 0.25, (before, after)


def test_neck_part_dropout_and_part_logits():
    keras.utils.set_random_seed(0)
    model = build_embedding_model(backbone="tiny", head="brnpa", n_parts=3, input_shape=SHAPE,
                                  resolution="high", neck=True, part_dropout=0.5,
                                  normalize_parts=True)
    assert isinstance(model.get_layer("neck"), keras.layers.BatchNormalization)
    assert model.get_layer("neck").center is False
    x = np.random.default_rng(0).random((6, 32, 32, 3)).astype("float32")
    # Training: whole parts dropped, one draw per (image, part), the others
    # scaled by 1 / (1 - rate); inference: the head's vectors unchanged.
    dropped = keras.Model(model.inputs, model.get_layer("part_dropout").output)
    blocks = keras.ops.convert_to_numpy(dropped(x, training=True))  # (6, 3, C)
    parts = keras.Model(model.inputs, model.get_layer("part_dropout").input)
    kept = keras.ops.convert_to_numpy(parts(x, training=True))  # same batch statistics
    zero = np.all(blocks == 0, axis=-1)
    assert zero.any() and not zero.all()
    np.testing.assert_allclose(blocks[~zero], 2.0 * kept[~zero], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(dropped(x)),
                                  keras.ops.convert_to_numpy(parts(x)))
    emb = keras.ops.convert_to_numpy(model(x))
    # Every part weighs the same: each block has norm 1 / sqrt(3).
    np.testing.assert_allclose(np.linalg.norm(emb.reshape(6, 3, -1), axis=-1), 3 ** -0.5,
                               rtol=1e-5)
    trainer = with_id_logits(model, num_ids=5, part_logits=True)
    assert set(trainer.output) == {"embedding", "logits_1", "logits_2", "logits_3"}
    out = trainer(x)
    # Each part's classifier reads only its part of the neck's output,
    # divided by its norm (no bias).
    neck = keras.Model(model.inputs, model.get_layer("neck").output)(x)
    neck = keras.ops.convert_to_numpy(neck).reshape(6, 3, -1)
    neck = neck / np.linalg.norm(neck, axis=-1, keepdims=True)
    for k in range(3):
        dense = trainer.get_layer(f"id_logits_{k + 1}")
        assert dense.bias is None
        np.testing.assert_allclose(keras.ops.convert_to_numpy(out[f"logits_{k + 1}"]),
                                   neck[:, k] @ keras.ops.convert_to_numpy(dense.kernel),
                                   rtol=1e-4, atol=1e-5)
    gap = build_embedding_model(backbone="tiny", head="gap", input_shape=SHAPE)
    for call, name in [
        (lambda: build_embedding_model(backbone="tiny", head="gap", part_dropout=0.2,
                                       input_shape=SHAPE), "part_dropout"),
        (lambda: build_embedding_model(backbone="tiny", part_dropout=1.0, input_shape=SHAPE),
         "part_dropout"),
        (lambda: build_embedding_model(backbone="tiny", neck="yes", input_shape=SHAPE), "neck"),
        (lambda: build_embedding_model(backbone="tiny", head="gap", normalize_parts=True,
                                       input_shape=SHAPE), "normalize_parts"),
        (lambda: with_id_logits(gap, 3, part_logits=True), "part_logits"),
    ]:
        with pytest.raises(ValueError, match=f"argument {name}.*Received: {name}="):
            call()
