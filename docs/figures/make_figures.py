"""Draw the figures of the documentation with keras_brnpa itself.

Run from the repository root (any backend; the figures do not depend on it)::

    python docs/figures/make_figures.py            # writes docs/figures/*.png
    python docs/figures/make_figures.py --output /tmp/figs

Every map in the figures is computed by ``keras_brnpa.BRNPAAttention`` on a
generated image: three coloured objects of decreasing brightness on a dim
textured background, passed through a tiny fixed "backbone" (a 1x1
convolution with hand-set weights whose channels respond to red, green,
blue and brightness, then average pooling). No training, no download.

The score damping shown in ``how_it_works_steps.png`` is derived from the
layer's own attention maps: the attention map of part ``k`` is
``a = s / sum(s)`` and the cosine similarity ``s`` equals 1 at the selected
location ``j`` (the maximum of ``s``), so ``s = a / a[j]`` and the score
becomes ``(1 - s) * score``, starting from the feature norm that
``BRNPAAttention.group`` returns.

Figures (each PNG kept under 150 KB):

- ``overview.png``: image, feature norm, part maps 1..3, explanation map.
- ``how_it_works_steps.png``: per part, the score with its maximum, the
  similarity to the representative vector, the attention map.
- ``resolution.png``: the part maps on a 4x4 and a 16x16 feature map.
"""

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import keras_brnpa  # noqa: E402

IMAGE_SIZE = 64
N_PARTS = 3
DPI = 80
MAX_BYTES = 150_000


def make_image(size=IMAGE_SIZE, seed=0):
    """A dim textured background with a red disc, a green square, a blue disc.

    Brightness decreases from red (1.0) to green (0.8) to blue (0.7), so the
    parts come out in that order.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 0.12 + 0.04 * rng.random((size, size, 1)) * np.ones((1, 1, 3))
    red = (yy - 0.32) ** 2 + (xx - 0.34) ** 2 < 0.2**2
    green = (np.abs(yy - 0.7) < 0.13) & (np.abs(xx - 0.68) < 0.13)
    blue = (yy - 0.76) ** 2 + (xx - 0.2) ** 2 < 0.1**2
    for mask, colour in ((red, (1.0, 0.0, 0.0)), (green, (0.0, 0.8, 0.0)), (blue, (0.0, 0.0, 0.7))):
        image[mask] = colour
    return image.astype("float32"), (red, green, blue)


def feature_extractor(pool, size=IMAGE_SIZE):
    """A fixed 1x1 convolution (red, green, blue, brightness) and pooling."""
    model = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(4, 1, activation="relu", name="colours"),
            keras.layers.AveragePooling2D(pool, name="pool"),
        ]
    )
    kernel = np.array(
        [
            [1.0, -0.5, -0.5, 0.06],  # from R
            [-0.5, 1.0, -0.5, 0.12],  # from G
            [-0.5, -0.5, 1.0, 0.02],  # from B
        ],
        dtype="float32",
    ).reshape(1, 1, 3, 4)
    model.get_layer("colours").set_weights([kernel, np.zeros(4, "float32")])
    return model


def group(pixels, pool):
    """Maps (h, w, P), norm (h, w) and the derived scores of one image."""
    features = feature_extractor(pool)(pixels[None])
    layer = keras_brnpa.BRNPAAttention(n_parts=N_PARTS)
    _, maps, norm = layer.group(features)
    maps = keras.ops.convert_to_numpy(maps)[0]
    norm = keras.ops.convert_to_numpy(norm)[0]
    scores, sims, picks = [], [], []
    score = norm.copy()
    for k in range(N_PARTS):
        j = np.unravel_index(np.argmax(score), score.shape)
        att = maps[..., k]
        sim = att / att[j]
        scores.append(score)
        sims.append(sim)
        picks.append(j)
        score = (1.0 - sim) * score
    return {"maps": maps, "norm": norm, "scores": scores, "sims": sims, "picks": picks}


def _show(ax, image, heat=None, title="", cmap="inferno", pick=None, vmin=None, vmax=None):
    """The image, or a map drawn opaque with the objects' outlines on top."""
    image, masks = image
    if heat is None:
        ax.imshow(image, extent=(0, 1, 1, 0))
    else:
        ax.imshow(heat, extent=(0, 1, 1, 0), cmap=cmap, interpolation="nearest", vmin=vmin, vmax=vmax)
        size = image.shape[0]
        grid = (np.arange(size) + 0.5) / size
        for mask in masks:
            ax.contour(grid, grid, mask.astype(float), levels=[0.5], colors="white", linewidths=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(1, 0)
    if pick is not None:
        h, w = heat.shape
        ax.plot((pick[1] + 0.5) / w, (pick[0] + 0.5) / h, "x", color="cyan", ms=9, mew=2.5)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path):
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        raise RuntimeError(f"{path} is {size} bytes, more than {MAX_BYTES}")
    return path


def overview(image, result, path):
    fig, axes = plt.subplots(1, 6, figsize=(12, 2.3))
    _show(axes[0], image, title="image")
    _show(axes[1], image, result["norm"], "feature norm $n_i$", cmap="viridis")
    for k in range(N_PARTS):
        _show(axes[2 + k], image, result["maps"][..., k], f"part {k + 1} map $a^{{({k + 1})}}$")
    explanation = result["maps"][..., 0] * result["norm"]
    _show(axes[5], image, explanation, "explanation $a^{(1)} \\cdot n$")
    return _save(fig, path)


def steps(image, result, path):
    fig, axes = plt.subplots(N_PARTS, 3, figsize=(6.6, 2.2 * N_PARTS))
    top = float(result["norm"].max())
    for k in range(N_PARTS):
        score, sim, pick = result["scores"][k], result["sims"][k], result["picks"][k]
        label = "feature norm" if k == 0 else "damped score"
        _show(axes[k, 0], image, score, f"part {k + 1}: {label}", "viridis", pick, 0, top)
        _show(axes[k, 1], image, sim, f"similarity $s$ to the x", "magma", pick, 0, 1)
        _show(axes[k, 2], image, result["maps"][..., k], f"attention map {k + 1}")
    fig.tight_layout()
    return _save(fig, path)


def resolution(image, low, high, path):
    fig, axes = plt.subplots(2, N_PARTS + 1, figsize=(8.4, 4.4))
    for row, (name, result) in enumerate((("low: 4x4", low), ("high: 16x16", high))):
        _show(axes[row, 0], image, result["norm"], f"{name} feature norm", "viridis")
        for k in range(N_PARTS):
            _show(axes[row, 1 + k], image, result["maps"][..., k], f"{name} part {k + 1}")
    fig.tight_layout()
    return _save(fig, path)


def main(output=HERE):
    """Write the PNGs into ``output`` and return their paths."""
    os.makedirs(output, exist_ok=True)
    image = make_image()  # (pixels, object masks)
    high = group(image[0], pool=4)  # 16x16 feature map
    low = group(image[0], pool=16)  # 4x4 feature map
    return [
        overview(image, high, os.path.join(output, "overview.png")),
        steps(image, high, os.path.join(output, "how_it_works_steps.png")),
        resolution(image, low, high, os.path.join(output, "resolution.png")),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=HERE, help="folder of the PNGs (default: docs/figures)")
    for written in main(parser.parse_args().output):
        print(written, os.path.getsize(written), "bytes")
