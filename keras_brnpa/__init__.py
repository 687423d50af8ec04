"""keras_brnpa: BR-NPA attention for Keras 3 image classifiers.

Parameter-free, high-resolution attention maps that explain a classifier's
decision (Gomez et al., Pattern Recognition 2022), on TensorFlow, JAX and
PyTorch.

Example:

>>> import keras, keras_brnpa
>>> model = keras.Sequential([
...     keras.Input((32, 32, 3)),
...     keras.layers.Conv2D(8, 3, activation="relu"),
...     keras_brnpa.BRNPAAttention(n_parts=3),
...     keras.layers.Dense(10),
... ])
>>> model.output_shape
(None, 10)
"""

from keras_brnpa import datasets
from keras_brnpa import distillation
from keras_brnpa import distribute
from keras_brnpa import evaluation
from keras_brnpa import explain
from keras_brnpa import fewshot
from keras_brnpa import losses
from keras_brnpa import metrics
from keras_brnpa import models
from keras_brnpa import training
from keras_brnpa import visualize
from keras_brnpa.distillation import Distiller
from keras_brnpa.layers import BilinearAttentionPooling
from keras_brnpa.layers import BRNPAAttention
from keras_brnpa.version import __version__

__all__ = [
    "BRNPAAttention",
    "BilinearAttentionPooling",
    "Distiller",
    "__version__",
    "datasets",
    "distillation",
    "distribute",
    "evaluation",
    "explain",
    "fewshot",
    "losses",
    "metrics",
    "models",
    "training",
    "visualize",
]
