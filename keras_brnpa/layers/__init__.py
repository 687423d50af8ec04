"""Keras layers of keras_brnpa."""

from keras_brnpa.layers.bilinear_attention_pooling import BilinearAttentionPooling
from keras_brnpa.layers.brnpa_attention import BRNPAAttention
from keras_brnpa.layers.random_brightness_scale import RandomBrightnessScale

__all__ = ["BRNPAAttention", "BilinearAttentionPooling", "RandomBrightnessScale"]
