"""Disjoint meta-train / meta-test classes of the synthetic parts data."""

import numpy as np

from keras_brnpa.datasets.synthetic import _CHUNK
from keras_brnpa.datasets.synthetic import _check_args
from keras_brnpa.datasets.synthetic import _check_part_regions
from keras_brnpa.datasets.synthetic import _render
from keras_brnpa.datasets.synthetic import class_table
from keras_brnpa.datasets.synthetic import part_styles
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import invalid


def _render_classes(table, classes, per_class, size, num_distractors, noise, seed, tag):
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, tag])
    labels = rng.permutation(np.repeat(classes, per_class)).astype("int64")
    n = len(labels)
    images = np.empty((n, size, size, 3), "float32")
    masks = np.empty((n, size, size), bool)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        chunk_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, tag, start // _CHUNK, 11])
        images[start:stop], masks[start:stop] = _render(
            chunk_rng, table[labels[start:stop]], size, num_distractors, noise
        )
    return {"images": images, "labels": labels, "masks": masks}


def synthetic_fewshot(
    num_train_classes=40,
    num_test_classes=20,
    images_per_class=20,
    image_size=64,
    seed=0,
    num_part_regions=3,
    num_distractors=4,
    noise=0.03,
):
    """A few-shot split of the synthetic parts data: disjoint class sets.

    The classes are rows of ``class_table(num_train_classes +
    num_test_classes)`` (each a combination of part colours and shapes):
    the first ``num_train_classes`` for meta-training, the next
    ``num_test_classes`` for meta-testing, so no test class (no test
    combination of parts) is seen in training, while the parts themselves
    are. Images are drawn as by ``synthetic_parts``.

    Args:
        num_train_classes: int >= 2, meta-training classes.
        num_test_classes: int >= 2, meta-test classes.
        images_per_class: int >= 1.
        image_size, seed, num_part_regions, num_distractors, noise: as for
            ``synthetic_parts``.

    Returns:
        ``{"train": {...}, "test": {...}}``, each a dict with ``"images"``
        float32 ``(N, S, S, 3)``, ``"labels"`` int64 ``(N,)`` (train classes
        ``0..num_train_classes-1``, test classes after them) and ``"masks"``
        bool ``(N, S, S)``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> data = keras_brnpa.datasets.synthetic_fewshot(
    ...     num_train_classes=4, num_test_classes=3, images_per_class=2, image_size=32)
    >>> np.unique(data["train"]["labels"]).tolist(), np.unique(data["test"]["labels"]).tolist()
    ([0, 1, 2, 3], [4, 5, 6])
    >>> data["test"]["images"].shape
    (6, 32, 32, 3)
    """
    num_train = check_positive_int("num_train_classes", num_train_classes)
    num_test = check_positive_int("num_test_classes", num_test_classes)
    if num_train < 2:
        raise invalid("num_train_classes", num_train_classes, "an integer >= 2")
    if num_test < 2:
        raise invalid("num_test_classes", num_test_classes, "an integer >= 2")
    per_class = check_positive_int("images_per_class", images_per_class)
    _, size, num_distractors, noise = _check_args(1, image_size, num_distractors, noise)
    seed = check_seed(seed)
    total = len(part_styles()) ** _check_part_regions(num_part_regions)
    if num_train + num_test > total:
        raise invalid(
            "num_test_classes",
            num_test_classes,
            f"at most {total - num_train} with num_train_classes={num_train} "
            f"({total} classes in all with num_part_regions={num_part_regions})",
        )
    table = class_table(num_train + num_test, num_part_regions)
    return {
        "train": _render_classes(table, np.arange(num_train), per_class, size, num_distractors,
                                 noise, seed, 0),
        "test": _render_classes(table, np.arange(num_train, num_train + num_test), per_class, size,
                                num_distractors, noise, seed, 1),
    }
