"""The feature model and the head that ``build_classifier`` and
``build_embedding_model`` share: ``images -> "backbone" -> "head"``.

The layer names are the package's layout: ``attention_model``, the
explainers and ``to_high_resolution`` find the backbone and the head by
them.
"""

import keras

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


def head_layer(head, n_parts, refine, selection, seed):
    """The head layer named ``"head"``: ``head`` is one of ``HEADS``."""
    if head == "brnpa":
        return BRNPAAttention(
            n_parts=n_parts,
            refine=refine,
            selection=selection,
            seed=seed,
            data_format="channels_last",
            name="head",
        )
    if head == "bcnn":
        return BilinearAttentionPooling(n_parts=n_parts, data_format="channels_last", name="head")
    return keras.layers.GlobalAveragePooling2D(name="head")


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
                   seed):
    """``(inputs, vectors)``: the ``"images"`` input and the head's output on it."""
    model = features_model(backbone, resolution, weights, input_shape)
    inputs = keras.Input(tuple(model.input_shape[1:]), name="images")
    features = model(inputs)
    vectors, _ = head_outputs(head_layer(head, n_parts, refine, selection, seed), features)
    return inputs, vectors
