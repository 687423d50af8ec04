"""Compare explanation methods on your models: one table with intervals,
paired tests, JSON and pictures.

- ``compare_explanations(models, images, ...)``: methods x metrics
  (accuracy, DAUC, IAUC, sparsity, pointing game, energy in mask; on
  request DC/IC and ROAD, ``METRICS``) for one model or a dict of models,
  each mean with ``n`` and a 95 % bootstrap interval, the per-image values
  kept;
- ``ExplanationReport``: its result, with ``rows``, ``per_image``,
  ``compare(a, b, metric)`` (paired Wilcoxon test), ``to_markdown()``,
  ``to_json(path)`` and ``save(folder)`` (``report.md``, ``metrics.json``,
  ``gallery.png``, ``curves.png``);
- ``bootstrap_ci``, ``paired_test``, ``welch_test``: the statistics on any
  per-image values; ``degenerate_maps``: constant maps;
  ``stratified_sample``: a seeded sample of the images stratified by class;
- ``write_study``: a full report of several models (the demo's), with
  ``verdict`` (paired tests) and ``common_resolution``.

Example:

>>> import numpy as np, keras_brnpa
>>> model = keras_brnpa.models.build_classifier(
...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
>>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
>>> report = keras_brnpa.evaluation.compare_explanations(model, images, steps=2)
>>> report.rows[0]["explainer"]
'gradcam'
"""

from keras_brnpa.evaluation.compare import compare_explanations
from keras_brnpa.evaluation.degenerate import degenerate_maps
from keras_brnpa.evaluation.report import COLUMNS
from keras_brnpa.evaluation.report import DEFAULT_METRICS
from keras_brnpa.evaluation.report import METRICS
from keras_brnpa.evaluation.report import REPORT_FILES
from keras_brnpa.evaluation.report import ExplanationReport
from keras_brnpa.evaluation.sampling import stratified_sample
from keras_brnpa.evaluation.study import STUDY_FILES
from keras_brnpa.evaluation.study import common_resolution
from keras_brnpa.evaluation.study import verdict
from keras_brnpa.evaluation.study import write_study
from keras_brnpa.evaluation.stats import bootstrap_ci
from keras_brnpa.evaluation.stats import bootstrap_means
from keras_brnpa.evaluation.stats import paired_test
from keras_brnpa.evaluation.stats import welch_test

__all__ = [
    "COLUMNS",
    "DEFAULT_METRICS",
    "METRICS",
    "REPORT_FILES",
    "STUDY_FILES",
    "ExplanationReport",
    "bootstrap_ci",
    "bootstrap_means",
    "common_resolution",
    "compare_explanations",
    "degenerate_maps",
    "paired_test",
    "stratified_sample",
    "verdict",
    "welch_test",
    "write_study",
]
