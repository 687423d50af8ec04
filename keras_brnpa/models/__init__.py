"""Backbones and classifiers: ResNets at low/high resolution, BR-NPA/B-CNN/GAP heads.

Also helpers that look inside any Keras classifier (``find_layer``,
``default_feature_layer``, ``output_activation``, ``logits_view``).
"""

from keras_brnpa.models.backbones import RESNET_CONFIGS
from keras_brnpa.models.backbones import RESOLUTION_STRIDES
from keras_brnpa.models.backbones import build_backbone
from keras_brnpa.models.backbones import to_high_resolution
from keras_brnpa.models.batch_norm import set_batch_norm_momentum
from keras_brnpa.models.classifier import attention_model
from keras_brnpa.models.classifier import build_classifier
from keras_brnpa.models.classifier import feature_shape
from keras_brnpa.models.classifier import head_kind
from keras_brnpa.models.embedding import build_embedding_model
from keras_brnpa.models.embedding import with_id_logits
from keras_brnpa.models.inspection import default_feature_layer
from keras_brnpa.models.inspection import INPUT_SCALES
from keras_brnpa.models.inspection import find_layer
from keras_brnpa.models.inspection import input_scale
from keras_brnpa.models.inspection import is_graph_model
from keras_brnpa.models.inspection import logits_view
from keras_brnpa.models.inspection import output_activation
from keras_brnpa.models.inspection import outputs_look_like_probabilities
from keras_brnpa.models.inspection import resolve_from_logits
from keras_brnpa.models.inspection import scale_images

__all__ = [
    "INPUT_SCALES",
    "RESNET_CONFIGS",
    "RESOLUTION_STRIDES",
    "attention_model",
    "build_backbone",
    "build_classifier",
    "build_embedding_model",
    "default_feature_layer",
    "feature_shape",
    "head_kind",
    "find_layer",
    "input_scale",
    "is_graph_model",
    "logits_view",
    "output_activation",
    "outputs_look_like_probabilities",
    "resolve_from_logits",
    "scale_images",
    "set_batch_norm_momentum",
    "to_high_resolution",
    "with_id_logits",
]
