"""Image embeddings made of part vectors (re-identification, few-shot)."""

import keras

from keras_brnpa._checks import check_choice
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid
from keras_brnpa.models._heads import HEADS
from keras_brnpa.models._heads import head_outputs
from keras_brnpa.models._heads import images_to_head


def build_embedding_model(
    backbone="resnet50",
    head="brnpa",
    n_parts=3,
    embedding_dim=None,
    resolution="low",
    weights=None,
    input_shape=(None, None, 3),
    refine=True,
    selection="norm",
    seed=None,
    name=None,
):
    """Build a model from images to L2-normalised embeddings of their parts.

    ``images -> backbone -> head -> [projection] -> embedding``: the head's
    output (for BR-NPA the ``n_parts`` ranked part vectors concatenated,
    part 1 first; for B-CNN its ``n_parts`` pooled vectors; for GAP the
    average feature vector), optionally projected by a linear layer to
    ``embedding_dim``, divided by its L2 norm. Cosine similarity between
    two images is then the dot product of their embeddings, as
    ``keras_brnpa.metrics.cmc_map`` and
    ``keras_brnpa.fewshot.evaluate_episodes`` use it.

    The layers are named ``"backbone"``, ``"head"``, ``"projection"`` (only
    with ``embedding_dim``) and ``"embedding"`` (a
    ``keras.layers.UnitNormalization``), so ``attention_model``,
    ``keras_brnpa.explain.attention_maps``/``explanation_map`` and
    ``to_high_resolution`` work on it as on a classifier (the attention
    model's output has an ``"embedding"`` entry instead of ``"logits"``).
    For training with identity labels see ``with_id_logits``.

    Args:
        backbone: a ResNet name for ``build_backbone`` (``"resnet50"``,
            ``"tiny"``, ...) or a ``keras.Model`` with a 4-D feature map
            output.
        head: ``"brnpa"``, ``"bcnn"`` or ``"gap"``.
        n_parts: number of parts of the attention heads.
        embedding_dim: ``None`` (the head's output, ``n_parts * C`` for
            BR-NPA) or an int >= 1, the size of a linear projection.
        resolution: ``"low"`` or ``"high"`` (see ``build_backbone``).
        weights: backbone weights (see ``build_backbone``).
        input_shape: image shape, channels last.
        refine, selection, seed: ``BRNPAAttention`` options.
        name: model name (default ``"<head>_embedding"``).

    Returns:
        A functional ``keras.Model`` from images to ``(B, D)`` unit vectors.

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> model = keras_brnpa.models.build_embedding_model(
    ...     backbone="tiny", head="brnpa", n_parts=3, input_shape=(64, 64, 3))
    >>> out = keras.ops.convert_to_numpy(model(np.ones((2, 64, 64, 3), "float32")))
    >>> out.shape, bool(np.allclose((out ** 2).sum(axis=1), 1.0, atol=1e-5))
    ((2, 384), True)
    >>> maps = keras_brnpa.explain.attention_maps(model, np.ones((2, 64, 64, 3), "float32"))
    >>> maps.shape
    (2, 2, 2, 3)
    """
    check_choice("head", head, HEADS)
    if embedding_dim is not None:
        embedding_dim = check_positive_int("embedding_dim", embedding_dim)
    if name is not None and (not isinstance(name, str) or not name):
        raise invalid("name", name, "None or a non-empty string")
    inputs, x = images_to_head(
        backbone, head, n_parts, resolution, weights, input_shape, refine, selection, seed
    )
    if embedding_dim is not None:
        x = keras.layers.Dense(embedding_dim, name="projection")(x)
    embedding = keras.layers.UnitNormalization(axis=-1, name="embedding", dtype="float32")(x)
    return keras.Model(inputs, embedding, name=name or f"{head}_embedding")


def _check_embedding_model(model):
    names = [layer.name for layer in getattr(model, "layers", [])]
    if not isinstance(model, keras.Model) or not {"backbone", "head", "embedding"} <= set(names):
        raise invalid(
            "model",
            f"<{type(model).__name__} {getattr(model, 'name', '')!r}>",
            "an embedding model from keras_brnpa.models.build_embedding_model (layers "
            "named 'backbone', 'head', 'embedding')",
        )
    return model


def with_id_logits(model, num_ids, name=None):
    """A training model: the embedding plus identity logits, sharing weights.

    The re-identification recipe (and DG-Net's, the BR-NPA authors' re-ID
    code): an identity classifier on the training identities plus a metric
    loss on the embedding. The logits are a linear layer on the vector
    *before* the L2 normalisation (the head's output, or the projection);
    the embedding is the model's own output. Compile with a dict of
    losses, e.g. ``{"embedding": keras_brnpa.losses.BatchHardTripletLoss(),
    "logits": SparseCategoricalCrossentropy(from_logits=True)}``, and feed
    batches whose targets are ``{"embedding": ids, "logits": ids}``
    (``keras_brnpa.datasets.IdentityBalancedDataset(...,
    targets=("embedding", "logits"))``). Training it trains ``model``.

    Args:
        model: an embedding model from ``build_embedding_model``.
        num_ids: int >= 1, number of training identities (labels in
            ``[0, num_ids)``).
        name: model name (default ``"<model name>_with_id_logits"``).

    Returns:
        A functional ``keras.Model`` whose output is the dict
        ``{"embedding": (B, D), "logits": (B, num_ids)}``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_embedding_model(
    ...     backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> trainer = keras_brnpa.models.with_id_logits(model, num_ids=10)
    >>> out = trainer(np.ones((2, 64, 64, 3), "float32"))
    >>> tuple(out["embedding"].shape), tuple(out["logits"].shape)
    ((2, 128), (2, 10))
    """
    model = _check_embedding_model(model)
    num_ids = check_positive_int("num_ids", num_ids)
    if name is not None and (not isinstance(name, str) or not name):
        raise invalid("name", name, "None or a non-empty string")
    names = [layer.name for layer in model.layers]
    head = model.get_layer("head")
    inputs = keras.Input(tuple(model.input_shape[1:]), name="images")
    features = model.get_layer("backbone")(inputs)
    vectors, _ = head_outputs(head, features)
    if "projection" in names:
        vectors = model.get_layer("projection")(vectors)
    embedding = model.get_layer("embedding")(vectors)
    logits = keras.layers.Dense(num_ids, name="id_logits", dtype="float32")(vectors)
    return keras.Model(
        inputs,
        {"embedding": embedding, "logits": logits},
        name=name or f"{model.name}_with_id_logits",
    )
