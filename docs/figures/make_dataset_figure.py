"""Draw the picture of the embedded synthetic data for docs/datasets.md.

    python docs/figures/make_dataset_figure.py [OUTPUT.png]

One column per class (one example each in two rows) and, below, the
ground-truth part masks of the first row. Deterministic: the same PNG
every time (default: docs/figures/synthetic_parts.png).
"""

import io
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import keras_brnpa  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def make_figure(path=os.path.join(HERE, "synthetic_parts.png"), num_classes=5, image_size=64):
    images, labels, masks = keras_brnpa.datasets.synthetic_parts(
        num_images=60, image_size=image_size, num_classes=num_classes, seed=7
    )
    names = keras_brnpa.datasets.class_names(num_classes)
    fig, axes = plt.subplots(3, num_classes, figsize=(1.8 * num_classes, 6.0), dpi=64)
    for k in range(num_classes):
        first, second = np.flatnonzero(labels == k)[:2]
        for row, index in enumerate((first, second)):
            axes[row, k].imshow(images[index], interpolation="nearest")
        axes[2, k].imshow(images[first] * 0.35 + masks[first][..., None] * 0.65)
        axes[0, k].set_title(f"class {k}\n" + names[k].replace(", ", "\n"), fontsize=8)
    axes[2, 0].set_ylabel("part masks", fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    # A 256-colour palette keeps the PNG small (the noise compresses badly).
    picture = Image.open(buffer).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    picture.save(path, optimize=True)
    return path


if __name__ == "__main__":
    print(make_figure(*sys.argv[1:2]))
