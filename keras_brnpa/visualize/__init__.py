"""Pictures of explanations: overlays, galleries and deletion/insertion curves.

Everything is drawn with matplotlib's Agg canvas (no display, no global
pyplot state) and written as PNG. Maps are the NumPy arrays returned by
``keras_brnpa.explain``; curves are those returned by
``keras_brnpa.metrics`` with ``return_curves=True``.

The pictures are grouped by job: ``maps`` (overlays, galleries, one
explanation), ``curves`` and ``retrieval``; every name is importable from
``keras_brnpa.visualize``.
"""

from keras_brnpa.visualize._common import PART_COLORS
from keras_brnpa.visualize.curves import plot_curves
from keras_brnpa.visualize.maps import overlay
from keras_brnpa.visualize.maps import save_explanation
from keras_brnpa.visualize.maps import save_gallery
from keras_brnpa.visualize.retrieval import save_retrieval
from keras_brnpa.visualize.retrieval import save_retrieval_gallery

__all__ = [
    "PART_COLORS",
    "overlay",
    "plot_curves",
    "save_explanation",
    "save_gallery",
    "save_retrieval",
    "save_retrieval_gallery",
]
