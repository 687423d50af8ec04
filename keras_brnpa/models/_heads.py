"""The feature model and the head that ``build_classifier`` and
``build_embedding_model`` share: ``images -> "backbone" -> "head"``.

The layer names are the package's layout: ``attention_model``, the
explainers and ``to_high_resolution`` find the backbone and the head by
them.
"""

import keras

from keras_brnpa._checks import invalid
from keras_brnpa.layers.bilinear_attention_pooling import BilinearAttentionPooling
from keras_brnpa.layers.brnpa_attention import BRNPAAttention
from keras_brnpa.models.backbones import build_backbone

#: The heads of ``build_classifier`` and ``build_embedding_model``.
HEADS = ("brnpa", "bcnn", "gap")


def features_model(backbone, resolution, weights, input_shape):
    """The backbone as a model named ``"backbone"`` (a ResNet name or a model)."""
    if isinstance(backbone, keras.Model):
        model = build_backbone(backbone)
        if model.name != "backbone" and len(getattr(model, "inputs", None) or []) == 1:
            # attention_model() and the explainers find the backbone by its
            # name: rename by wrapping (the layers and weights are shared).
            model = keras.Model(model.inputs[0], model.outputs[0], name="backbone")
        return model
    return build_backbone(backbone, resolution=resolution, weights=weights, input_shape=input_shape)


#: Keywords of the head layer that the builders set themselves.
_SET_BY_BUILDER = ("n_parts", "refine", "selection", "seed", "data_format", "name",
                   "return_attention_maps")


def check_head_options(head, head_options):
    """``head_options`` as a dict of the head layer's other keywords (``{}`` for ``None``)."""
    if head_options is None:
        return {}
    expected = (
        "None or a dict of keyword arguments of the head layer "
        "(BRNPAAttention for head='brnpa', BilinearAttentionPooling for head='bcnn')"
    )
    if not isinstance(head_options, dict) or not all(isinstance(k, str) for k in head_options):
        raise invalid("head_options", head_options, expected)
    if head_options and head == "gap":
        raise invalid("head_options", head_options, "None or {} with head='gap' (no options)")
    taken = sorted(set(head_options) & set(_SET_BY_BUILDER))
    if taken:
        raise invalid(
            "head_options", head_options,
            f"{expected}, without {taken}: the builder sets those (pass them as its own "
            "arguments where it has them)",
        )
    return dict(head_options)


def head_layer(head, n_parts, refine, selection, seed, options=None):
    """The head layer named ``"head"``: ``head`` is one of ``HEADS``.

    ``options``: further keyword arguments of the layer (checked by
    ``check_head_options``); an unknown one raises the layer's own error.
    """
    options = options or {}
    layer = {"brnpa": BRNPAAttention, "bcnn": BilinearAttentionPooling}.get(head)
    if layer is None:
        return keras.layers.GlobalAveragePooling2D(name="head")
    given = dict(n_parts=n_parts, data_format="channels_last", name="head")
    if head == "brnpa":
        given.update(refine=refine, selection=selection, seed=seed)
    try:
        return layer(**given, **options)
    except (TypeError, ValueError) as error:
        # Keras' unknown-keyword error, or the layer's check of a value.
        raise invalid("head_options", options,
                      f"valid keyword arguments of {layer.__name__} ({error})") from error


def head_outputs(head, features):
    """``(vectors, maps)`` of a head layer on features; ``maps`` is ``None`` for GAP.

    The attention heads are always asked for their maps, so that every call
    of the layer has the same outputs (``attention_model`` calls it again
    for the maps).
    """
    if isinstance(head, (BRNPAAttention, BilinearAttentionPooling)):
        return head(features, return_attention_maps=True)
    return head(features), None


def images_to_head(backbone, head, n_parts, resolution, weights, input_shape, refine, selection,
                   seed, head_options=None):
    """``(inputs, vectors)``: the ``"images"`` input and the head's output on it."""
    options = check_head_options(head, head_options)
    model = features_model(backbone, resolution, weights, input_shape)
    inputs = keras.Input(tuple(model.input_shape[1:]), name="images")
    features = model(inputs)
    vectors, _ = head_outputs(head_layer(head, n_parts, refine, selection, seed, options),
                              features)
    return inputs, vectors
