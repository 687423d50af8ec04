"""Compare explanation methods on your models: one table, JSON and pictures.

- ``compare_explanations(models, images, ...)``: methods x metrics
  (accuracy, DAUC, IAUC, sparsity, pointing game, energy in mask) for one
  model or a dict of models;
- ``ExplanationReport``: its result, with ``rows``, ``to_markdown()``,
  ``to_json(path)`` and ``save(folder)`` (``report.md``, ``metrics.json``,
  ``gallery.png``, ``curves.png``).

Example:

>>> import numpy as np, keras_brnpa
>>> model = keras_brnpa.models.build_classifier(
...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
>>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
>>> report = keras_brnpa.evaluation.compare_explanations(model, images, steps=2)
>>> report.rows[0]["explainer"]
'gradcam'
"""

from keras_brnpa.evaluation.compare import COLUMNS
from keras_brnpa.evaluation.compare import ExplanationReport
from keras_brnpa.evaluation.compare import compare_explanations

__all__ = ["COLUMNS", "ExplanationReport", "compare_explanations"]
