"""How good an explanation is: faithfulness (DAUC, IAUC), sparsity, localisation.

- ``deletion_auc`` / ``insertion_auc``: the paper's deletion and insertion
  areas under the curve, batched (``faithfulness.deletion_auc_loop`` and
  ``insertion_auc_loop`` are the one-forward-per-step references);
- ``deletion_correlation`` / ``insertion_correlation``: DC and IC, the
  correlation along those curves between the score's change and the
  saliency removed or restored (Gomez et al. 2022);
- ``sparsity_density``: the paper's sparsity as the authors compute it
  (all parts, times the normalised feature norm), lower = sparser;
- ``sparsity``: its per-map inverse, higher = sparser;
- ``pointing_game`` / ``energy_in_mask``: agreement with ground-truth masks
  or boxes;
- ``model_randomization``: the model-randomisation sanity check (does
  the map change when the model's weights are random?);
- ``road``: ROAD (removal with noisy linear imputation);
- ``cmc_map``: re-identification rank-k and mAP (Market-1501 protocol).

Every function takes NumPy arrays (or backend tensors) and returns NumPy
arrays, one value per image.

Example:

>>> import numpy as np, keras_brnpa
>>> keras_brnpa.metrics.energy_in_mask(
...     np.array([[[1.0, 1.0], [0.0, 2.0]]]), np.array([[0.0, 0.0, 1.0, 0.5]]),
...     size=(2, 2))
array([0.25])
"""

from keras_brnpa.metrics import correlation
from keras_brnpa.metrics import faithfulness
from keras_brnpa.metrics import localization
from keras_brnpa.metrics import map_sparsity
from keras_brnpa.metrics import perturbation
from keras_brnpa.metrics import randomization
from keras_brnpa.metrics import reid
from keras_brnpa.metrics import road_metric
from keras_brnpa.metrics.correlation import curve_area
from keras_brnpa.metrics.correlation import deletion_correlation
from keras_brnpa.metrics.correlation import insertion_correlation
from keras_brnpa.metrics.faithfulness import deletion_auc
from keras_brnpa.metrics.faithfulness import insertion_auc
from keras_brnpa.metrics.localization import boxes_to_masks
from keras_brnpa.metrics.localization import energy_in_mask
from keras_brnpa.metrics.localization import pointing_game
from keras_brnpa.metrics.map_sparsity import sparsity
from keras_brnpa.metrics.map_sparsity import sparsity_density
from keras_brnpa.metrics.perturbation import MAX_CELLS
from keras_brnpa.metrics.perturbation import box_blur
from keras_brnpa.metrics.perturbation import default_blur_kernel_size
from keras_brnpa.metrics.perturbation import fit_saliency
from keras_brnpa.metrics.perturbation import saliency_grid
from keras_brnpa.metrics.perturbation import step_counts
from keras_brnpa.metrics.randomization import model_randomization
from keras_brnpa.metrics.reid import cmc_map
from keras_brnpa.metrics.road_metric import noisy_linear_impute
from keras_brnpa.metrics.road_metric import road

__all__ = [
    "MAX_CELLS",
    "box_blur",
    "boxes_to_masks",
    "cmc_map",
    "correlation",
    "curve_area",
    "default_blur_kernel_size",
    "deletion_correlation",
    "deletion_auc",
    "energy_in_mask",
    "faithfulness",
    "fit_saliency",
    "insertion_auc",
    "insertion_correlation",
    "localization",
    "noisy_linear_impute",
    "map_sparsity",
    "model_randomization",
    "perturbation",
    "pointing_game",
    "randomization",
    "saliency_grid",
    "reid",
    "road",
    "road_metric",
    "sparsity",
    "sparsity_density",
    "step_counts",
]
