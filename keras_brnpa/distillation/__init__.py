"""Knowledge distillation of a low-resolution teacher into a high-resolution student.

BR-NPA's attention maps are as fine as the backbone's feature map. The
paper makes it 4x finer per side by setting the strides of the last two
ResNet stages to 1, and trains that slower, harder network as the student
of the ordinary (low-resolution) model:

- ``Distiller``: a ``keras.Model`` whose loss is
  ``alpha * T**2 * KL(teacher || student) + (1 - alpha) * L(y, student)``;
- ``build_high_resolution_student``: the teacher's stride-1 twin, starting
  from the teacher's weights (``init="teacher"``), the backbone's original
  ImageNet weights (``"backbone"``, the authors' choice) or random ones;
- ``distill``: the whole recipe, with the measured defaults
  (``RECIPE_DEFAULTS``: T = 1, alpha = 0.1, ``recipe_optimizer``: Adam with
  a cosine decay from 3e-3), which ``brnpa distill`` uses too;
- ``PAPER_DEFAULTS``: the authors' setup and searched ranges
  (``paper_optimizer``: their SGD).
"""

from keras_brnpa.distillation.distiller import DEFAULT_ALPHA
from keras_brnpa.distillation.distiller import DEFAULT_TEMPERATURE
from keras_brnpa.distillation.distiller import Distiller
from keras_brnpa.distillation.recipe import IMAGENET_PRESETS
from keras_brnpa.distillation.recipe import PAPER_DEFAULTS
from keras_brnpa.distillation.recipe import RECIPE_DEFAULTS
from keras_brnpa.distillation.recipe import STUDENT_INITS
from keras_brnpa.distillation.recipe import build_high_resolution_student
from keras_brnpa.distillation.recipe import distill
from keras_brnpa.distillation.recipe import paper_optimizer
from keras_brnpa.distillation.recipe import recipe_optimizer

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_TEMPERATURE",
    "Distiller",
    "IMAGENET_PRESETS",
    "PAPER_DEFAULTS",
    "RECIPE_DEFAULTS",
    "STUDENT_INITS",
    "build_high_resolution_student",
    "distill",
    "paper_optimizer",
    "recipe_optimizer",
]
