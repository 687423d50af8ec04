"""Keras layers of keras_brnpa."""

from keras_brnpa.layers.bilinear_attention_pooling import BilinearAttentionPooling
from keras_brnpa.layers.brnpa_attention import BRNPAAttention

__all__ = ["BRNPAAttention", "BilinearAttentionPooling"]
