"""Few-shot classification with part embeddings (N-way K-shot episodes).

- ``evaluate_episodes``: accuracy +- 95% interval over random episodes,
  nearest cosine prototype (mean support embedding);
- ``EpisodeDataset``: training episodes as batches, for
  ``keras_brnpa.losses.PrototypicalLoss`` (the prototypical recipe);
- ``embed``: embeddings of images by a model or a function, as NumPy.

Meta-train and meta-test classes must be disjoint:
``keras_brnpa.datasets.synthetic_fewshot`` generates such a split.

Example:

>>> import numpy as np, keras_brnpa
>>> labels = np.repeat(np.arange(5), 4)
>>> result = keras_brnpa.fewshot.evaluate_episodes(
...     lambda x: x, np.eye(5)[labels], labels, n_way=5, k_shot=1, n_query=3, episodes=5)
>>> result["accuracy"]
1.0
"""

from keras_brnpa.fewshot.episode_dataset import EpisodeDataset
from keras_brnpa.fewshot.episodes import embed
from keras_brnpa.fewshot.episodes import evaluate_episodes

__all__ = ["EpisodeDataset", "embed", "evaluate_episodes"]
