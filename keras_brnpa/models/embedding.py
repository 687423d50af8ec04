"""Image embeddings made of part vectors (re-identification, few-shot)."""

import keras

from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_choice
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid
from keras_brnpa.models._heads import HEADS
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
    neck=False,
    part_dropout=0.0,
    normalize_parts=False,
    head_options=None,
):
    """Build a model from images to L2-normalised embeddings of their parts.

    ``images -> backbone -> head -> [part_dropout] -> [projection] -> [neck]
    -> [part_normalization] -> embedding``: the head's
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

    Two options of the re-ID recipe measured in docs/reid.md:
    ``neck=True`` puts a batch normalisation without offset
    (``"neck"``, the BNNeck of Luo et al. 2019) before the L2
    normalisation: every dimension of every part on one scale, and the
    identity classifier of ``with_id_logits`` reads its output;
    ``part_dropout`` drops whole part vectors at random during training
    (``"part_dropout"``, a ``Dropout`` shared over each part's channels),
    so that no part alone carries the identity; ``normalize_parts=True``
    divides each part vector by its own L2 norm (``"part_normalization"``)
    before the whole vector's, so that every part weighs the same in the
    cosine similarity: the similarity of two images is then the mean of
    their parts' cosines. The recipe of docs/reid.md, under which BR-NPA
    beat GAP on the synthetic data, is ``neck=True,
    normalize_parts=True`` with ``with_id_logits(part_logits=True)``.

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
        neck: bool, a batch normalisation before the L2 normalisation.
        part_dropout: float in ``[0, 1)``, the rate at which whole part
            vectors are dropped in training (attention heads only).
        normalize_parts: bool, each part vector divided by its L2 norm
            (attention heads without ``embedding_dim`` only).
        head_options: ``None`` or a dict of further keyword arguments of
            the head layer, as for ``build_classifier``.

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
    neck = check_bool("neck", neck)
    if (
        isinstance(part_dropout, bool)
        or not isinstance(part_dropout, (int, float))
        or not 0 <= part_dropout < 1
    ):
        raise invalid("part_dropout", part_dropout, "a float in [0, 1)")
    if part_dropout and head == "gap":
        raise invalid("part_dropout", part_dropout, "0 with head='gap' (one vector, no parts)")
    normalize_parts = check_bool("normalize_parts", normalize_parts)
    if normalize_parts and (head == "gap" or embedding_dim is not None):
        raise invalid("normalize_parts", normalize_parts,
                      "False with head='gap' or an embedding_dim (no parts)")
    inputs, x = images_to_head(
        backbone, head, n_parts, resolution, weights, input_shape, refine, selection, seed,
        head_options,
    )
    if part_dropout:
        channels = x.shape[-1] // n_parts
        x = keras.layers.Reshape((n_parts, channels))(x)
        # One draw per (image, part): a dropped part is 0 on all its channels.
        x = keras.layers.Dropout(part_dropout, noise_shape=(None, n_parts, 1),
                                 name="part_dropout")(x)
        x = keras.layers.Reshape((n_parts * channels,))(x)
    if embedding_dim is not None:
        x = keras.layers.Dense(embedding_dim, name="projection")(x)
    if neck:
        x = keras.layers.BatchNormalization(center=False, name="neck")(x)
    if normalize_parts:
        channels = x.shape[-1] // n_parts
        x = keras.layers.Reshape((n_parts, channels))(x)
        x = keras.layers.UnitNormalization(axis=-1, name="part_normalization")(x)
        x = keras.layers.Reshape((n_parts * channels,))(x)
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


def with_id_logits(model, num_ids, name=None, part_logits=False):
    """A training model: the embedding plus identity logits, sharing weights.

    The re-identification recipe (and DG-Net's, the BR-NPA authors' re-ID
    code): an identity classifier on the training identities plus a metric
    loss on the embedding. The logits are a linear layer on the vector
    *before* the L2 normalisation (the head's output, or the projection,
    or the batch-norm neck; with a neck the layer has no bias, as in
    BNNeck); the embedding is the model's own output. Compile with a dict of
    losses, e.g. ``{"embedding": keras_brnpa.losses.BatchHardTripletLoss(),
    "logits": SparseCategoricalCrossentropy(from_logits=True)}``, and feed
    batches whose targets are ``{"embedding": ids, "logits": ids}``
    (``keras_brnpa.datasets.IdentityBalancedDataset(...,
    targets=("embedding", "logits"))``). Training it trains ``model``.

    ``part_logits=True`` (part-wise losses, as PCB's) gives each part its
    own identity classifier instead: outputs ``"logits_1"`` ...
    ``"logits_P"``, each reading only its part's vector, so that every
    part has to identify the person alone (targets
    ``("embedding", "logits_1", ..., "logits_P")``: ``tuple(trainer.output)``).

    Args:
        model: an embedding model from ``build_embedding_model``.
        num_ids: int >= 1, number of training identities (labels in
            ``[0, num_ids)``).
        name: model name (default ``"<model name>_with_id_logits"``).
        part_logits: bool, one identity classifier per part (a BR-NPA or
            B-CNN head without ``embedding_dim``).

    Returns:
        A functional ``keras.Model`` whose output is the dict
        ``{"embedding": (B, D), "logits": (B, num_ids)}`` (with
        ``part_logits``: ``"logits_1"`` ... ``"logits_P"`` instead of
        ``"logits"``).

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
    part_logits = check_bool("part_logits", part_logits)
    names = [layer.name for layer in model.layers]
    head = model.get_layer("head")
    parts = getattr(head, "n_parts", None)
    if part_logits and (parts is None or "projection" in names):
        raise invalid("part_logits", part_logits,
                      "False for a model without parts (head='gap') or with a projection")
    # The vector the embedding layer normalises, in the model's own graph
    # (after the part dropout, projection and neck when there are).
    vectors = model.get_layer("embedding").input
    use_bias = "neck" not in names
    if part_logits:
        channels = vectors.shape[-1] // parts
        outputs = {"embedding": model.output}
        for k in range(parts):
            piece = vectors[:, k * channels:(k + 1) * channels]
            outputs[f"logits_{k + 1}"] = keras.layers.Dense(
                num_ids, use_bias=use_bias, name=f"id_logits_{k + 1}", dtype="float32")(piece)
    else:
        logits = keras.layers.Dense(num_ids, use_bias=use_bias, name="id_logits",
                                    dtype="float32")(vectors)
        outputs = {"embedding": model.output, "logits": logits}
    return keras.Model(
        model.inputs, outputs, name=name or f"{model.name}_with_id_logits"
    )
