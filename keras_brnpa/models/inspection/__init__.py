"""Looking inside any Keras classifier: nested layers, the output and the input scale.

The explainers and the metrics take users' own models: a
``keras.applications`` backbone nested in a functional classifier, a
``Sequential`` stack, a model ending with a softmax or with logits. These
helpers find a layer by a nested path (``"outer/inner"``) or by object, and
tell whether the model's output is a probability (a final softmax or
sigmoid) or a logit, and which pixel range its input takes.

Modules, one job each: ``layer_paths`` (finding layers), ``outputs`` (the
output activation, ``from_logits``, ``logits_view``) and ``inputs`` (the
input scale); every name is importable from here.
"""

from keras_brnpa.models.inspection.inputs import IMAGENET_MEAN
from keras_brnpa.models.inspection.inputs import IMAGENET_STD
from keras_brnpa.models.inspection.inputs import INPUT_SCALES
from keras_brnpa.models.inspection.inputs import check_input_scale
from keras_brnpa.models.inspection.inputs import input_scale
from keras_brnpa.models.inspection.inputs import scale_images
from keras_brnpa.models.inspection.layer_paths import default_feature_layer
from keras_brnpa.models.inspection.layer_paths import find_layer
from keras_brnpa.models.inspection.layer_paths import is_graph_model
from keras_brnpa.models.inspection.outputs import logits_view
from keras_brnpa.models.inspection.outputs import output_activation
from keras_brnpa.models.inspection.outputs import outputs_look_like_probabilities
from keras_brnpa.models.inspection.outputs import resolve_from_logits
