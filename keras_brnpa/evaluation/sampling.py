"""Which images to score: a seeded sample stratified by class."""

import numpy as np

from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid


def stratified_sample(labels, num_images, seed=0):
    """Indices of a seeded sample of ``num_images`` images, stratified by class.

    Each class gets a share of the sample proportional to its share of
    ``labels`` (largest remainders first), and at least one image when
    ``num_images`` is at least the number of classes, so that every class
    is scored (and shown in the gallery); within a class the images are
    drawn at random with ``np.random.default_rng(seed)``. With
    ``num_images >= len(labels)`` every index is returned.

    Args:
        labels: ``(N,)`` int class labels.
        num_images: int >= 1, the sample size.
        seed: int >= 0.

    Returns:
        Sorted ``(min(num_images, N),)`` int64 array of indices into ``labels``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> labels = np.array([0] * 8 + [1] * 2 + [2] * 2)
    >>> sample = keras_brnpa.evaluation.stratified_sample(labels, 6, seed=0)
    >>> np.bincount(labels[sample]).tolist()
    [4, 1, 1]
    """
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError) as error:
        raise invalid("labels", type(labels).__name__, "an array of int labels (N,)") from error
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise invalid("labels", f"<array of shape {labels.shape}, dtype {labels.dtype}>",
                      "an array of int labels (N,)")
    num_images = check_positive_int("num_images", num_images)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise invalid("seed", seed, "an int >= 0")
    n = len(labels)
    if num_images >= n:
        return np.arange(n, dtype="int64")
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * num_images / n
    take = np.floor(quota).astype("int64")
    if num_images >= len(classes):
        take = np.maximum(take, 1)
    # Largest remainders first (ties: the larger class, then the class order).
    while take.sum() > num_images:  # the minimum of 1 overshot: trim the most over quota
        over = np.where(take > 1, take - quota, -np.inf)
        take[int(np.argmax(over))] -= 1
    while take.sum() < num_images:
        room = np.where(take < counts, quota - take, -np.inf)
        take[int(np.argmax(room))] += 1
    rng = np.random.default_rng(int(seed))
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen)).astype("int64")
