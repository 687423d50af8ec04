"""Backbones and classifiers: ResNets at low/high resolution, BR-NPA/B-CNN/GAP heads."""

from keras_brnpa.models.backbones import RESNET_CONFIGS
from keras_brnpa.models.backbones import RESOLUTION_STRIDES
from keras_brnpa.models.backbones import build_backbone
from keras_brnpa.models.backbones import to_high_resolution
from keras_brnpa.models.classifier import attention_model
from keras_brnpa.models.classifier import build_classifier
from keras_brnpa.models.classifier import feature_shape
from keras_brnpa.models.embedding import build_embedding_model
from keras_brnpa.models.embedding import with_id_logits

__all__ = [
    "RESNET_CONFIGS",
    "RESOLUTION_STRIDES",
    "attention_model",
    "build_backbone",
    "build_classifier",
    "build_embedding_model",
    "feature_shape",
    "to_high_resolution",
    "with_id_logits",
]
