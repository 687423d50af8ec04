"""Image classifiers with a BR-NPA, B-CNN or global-average-pooling head."""

import keras
from keras import ops

from keras_brnpa._checks import check_choice
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid
from keras_brnpa.layers.bilinear_attention_pooling import BilinearAttentionPooling
from keras_brnpa.layers.brnpa_attention import BRNPAAttention
from keras_brnpa.models._heads import HEADS
from keras_brnpa.models._heads import head_outputs
from keras_brnpa.models._heads import images_to_head


def build_classifier(
    num_classes,
    backbone="resnet50",
    head="brnpa",
    n_parts=3,
    dropout=0.0,
    resolution="low",
    weights=None,
    input_shape=(None, None, 3),
    refine=True,
    selection="norm",
    seed=None,
    name=None,
    head_options=None,
):
    """Build an image classifier that outputs logits.

    ``images -> backbone -> head -> dropout -> Dense(num_classes)``. The
    layers are named ``"backbone"``, ``"head"``, ``"dropout"`` and
    ``"logits"``, which ``attention_model`` and the explanation tools rely
    on.

    Args:
        num_classes: int >= 1.
        backbone: a ResNet name for ``build_backbone`` (``"resnet50"``,
            ``"tiny"``, ...) or any ``keras.Model`` that outputs a 4-D
            channels-last feature map.
        head: ``"brnpa"`` (``BRNPAAttention``), ``"bcnn"``
            (``BilinearAttentionPooling``) or ``"gap"`` (global average
            pooling, the plain CNN).
        n_parts: number of parts of the attention heads.
        dropout: float in ``[0, 1)``, dropout before the last layer.
        resolution: ``"low"`` or ``"high"`` (see ``build_backbone``).
        weights: backbone weights (see ``build_backbone``).
        input_shape: image shape, channels last.
        refine, selection, seed: ``BRNPAAttention`` options.
        name: model name (default ``"<head>_classifier"``).
        head_options: ``None`` or a dict of further keyword arguments of
            the head layer (``BRNPAAttention`` or
            ``BilinearAttentionPooling``), e.g. ``{"scale": "auto"}`` for
            the B-CNN recipe of docs/how_it_works.md; not the ones this
            function sets (``n_parts``, ``refine``, ``selection``,
            ``seed``, ``data_format``, ``name``).

    Returns:
        A functional ``keras.Model`` from images to logits.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     5, backbone="tiny", head="brnpa", input_shape=(64, 64, 3))
    >>> model(np.zeros((2, 64, 64, 3), "float32")).shape[-1]
    5
    >>> bcnn = keras_brnpa.models.build_classifier(
    ...     5, backbone="tiny", head="bcnn", input_shape=(64, 64, 3),
    ...     head_options={"scale": "auto"})
    >>> bcnn.get_layer("head").scale
    'auto'
    """
    num_classes = check_positive_int("num_classes", num_classes)
    check_choice("head", head, HEADS)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise invalid("dropout", dropout, "a float in [0, 1)")
    inputs, x = images_to_head(
        backbone, head, n_parts, resolution, weights, input_shape, refine, selection, seed,
        head_options,
    )
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name=name or f"{head}_classifier")


def _parts(model):
    """``(backbone, head, [layers after the head], output key)`` of a model."""
    names = [layer.name for layer in getattr(model, "layers", [])]
    try:
        backbone, head = model.get_layer("backbone"), model.get_layer("head")
        if "logits" not in names and "embedding" in names:
            # An embedding model (build_embedding_model): optional linear
            # projection, then the L2 normalisation.
            tail = [model.get_layer(n) for n in ("projection", "embedding") if n in names]
            return backbone, head, tail, "embedding"
        return backbone, head, [model.get_layer("logits")], "logits"
    except ValueError as error:
        raise invalid(
            "model",
            f"<{type(model).__name__} {model.name!r}>",
            "a classifier from keras_brnpa.models.build_classifier (layers "
            "named 'backbone', 'head', 'logits') or an embedding model from "
            "build_embedding_model ('backbone', 'head', 'embedding')",
        ) from error


def head_kind(model):
    """The head of a ``build_classifier`` (or ``build_embedding_model``) model.

    Args:
        model: any ``keras.Model``.

    Returns:
        ``"brnpa"`` (a ``BRNPAAttention`` head), ``"bcnn"``
        (``BilinearAttentionPooling``), ``"gap"`` (another head, the plain
        CNN), or ``None`` when the model does not have the package's layout
        (layers ``"backbone"``, ``"head"`` and ``"logits"`` or
        ``"embedding"``): then only the post-hoc explainers apply.

    Example:

    >>> import keras, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="bcnn", input_shape=(64, 64, 3))
    >>> keras_brnpa.models.head_kind(model)
    'bcnn'
    >>> other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> keras_brnpa.models.head_kind(other) is None
    True
    """
    if not isinstance(model, keras.Model):
        return None
    try:
        _, head, _, _ = _parts(model)
    except ValueError:
        return None
    if isinstance(head, BRNPAAttention):
        return "brnpa"
    if isinstance(head, BilinearAttentionPooling):
        return "bcnn"
    return "gap"


def feature_shape(model):
    """Feature-map shape ``(h, w, C)`` of a classifier or backbone.

    Example:

    >>> import keras_brnpa
    >>> keras_brnpa.models.feature_shape(keras_brnpa.models.build_backbone(
    ...     "tiny", resolution="high", input_shape=(64, 64, 3)))
    (8, 8, 128)
    """
    if not isinstance(model, keras.Model):
        raise invalid("model", model, "a keras.Model (a classifier or a backbone)")
    if "backbone" in [layer.name for layer in model.layers]:
        model = model.get_layer("backbone")
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError) as error:
        raise invalid(
            "model", f"<{type(model).__name__} {model.name!r}>", "a built model with one output"
        ) from error
    if not isinstance(shape, tuple) or len(shape) != 4:
        raise invalid(
            "model",
            f"<{type(model).__name__} {model.name!r} with output shape {shape}>",
            "a classifier or backbone whose features are a 4-D map (B, h, w, C)",
        )
    return tuple(shape[1:])


def attention_model(model):
    """A model giving logits, attention maps and feature norm in one pass.

    Shares the layers (and so the weights) of ``model``, a classifier from
    ``build_classifier`` or an embedding model from
    ``build_embedding_model``. Its output is a dict:

    - ``"logits"``: ``(B, num_classes)`` (an embedding model gives
      ``"embedding"``, ``(B, D)``, instead);
    - ``"attention_maps"``: ``(B, h, w, n_parts)``, the BR-NPA maps (each
      sums to 1), the B-CNN maps (non-negative), or for the ``"gap"`` head
      the feature-norm map as a single part;
    - ``"feature_norm"``: ``(B, h, w)``, ``||f_i||``, the map the paper
      multiplies part 1 by for its explanation map;
    - ``"features"``: ``(B, h, w, C)``.

    Args:
        model: a classifier from ``build_classifier`` (or an embedding
            model from ``build_embedding_model``).

    Returns:
        A functional ``keras.Model`` with a dict output.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     5, backbone="tiny", input_shape=(64, 64, 3))
    >>> out = keras_brnpa.models.attention_model(model)(
    ...     np.zeros((1, 64, 64, 3), "float32"))
    >>> tuple(out["attention_maps"].shape), tuple(out["feature_norm"].shape)
    ((1, 2, 2, 3), (1, 2, 2))
    """
    backbone, head, tail, output_key = _parts(model)
    inputs = keras.Input(tuple(model.input_shape[1:]), name="images")
    features = backbone(inputs)
    norm = keras.layers.Lambda(
        lambda f: ops.sqrt(ops.sum(ops.square(ops.cast(f, "float32")), axis=-1)),
        name="feature_norm",
    )(features)
    vectors, maps = head_outputs(head, features)
    if maps is None:
        maps = keras.layers.Reshape(tuple(features.shape[1:3]) + (1,))(norm)
    output = vectors
    for layer in tail:
        output = layer(output)
    return keras.Model(
        inputs,
        {output_key: output, "attention_maps": maps, "feature_norm": norm, "features": features},
        name=f"{model.name}_attention",
    )
