#!/usr/bin/env python
"""keras_brnpa beside the peer libraries: times, ratios and value agreement.

Two parts, each on one model, one set of images, one set of saliency maps
and the same steps for both sides, in the same process (a busy machine
slows both alike). Every call runs once to warm up (and give the values
compared), then ``--repeats`` times, alternating with the peer (ours,
peer, ours, ...: a drift of the machine falls on both); each side's median
is reported. The Score-CAM rows run before the Grad-CAM rows:
pytorch-grad-cam's GradCAM leaves the model slower for later forward
passes in the same process.

**metrics** (the peers need ``KERAS_BACKEND=tensorflow``): deletion and
insertion AUC of ``keras_brnpa.metrics.deletion_auc`` / ``insertion_auc``
against xplique's ``Deletion`` / ``Insertion`` and Quantus's
``PixelFlipping``. The classifier is wrapped with a final ``Softmax`` layer,
so that every library scores the same class probability (the class each
image is predicted on its intact version). The maps are random
``cells x cells`` maps; ours take them as they are, the peers (which rank
pixels) get them repeated to the image size, each cell a block of equal
pixels. ``steps`` must divide ``cells**2``: every step then removes whole
cells on both sides. The baseline is 0 on both sides (xplique's default).
The defaults (12x12 maps on 96 px images, 48 steps of 3 cells) also suit
Quantus, which ranks every channel of every pixel and so needs ``steps``
to be a multiple of the number of channels (3); it is skipped otherwise.

- xplique's curve has ``steps + 1`` points, from the intact (deletion) or
  baseline (insertion) image, and its AUC is the trapezoid mean over the
  curve averaged over the images; ours runs with ``start_point=True``
  (the same curve) and the compared value is the mean of our per-image
  AUCs.
- Quantus's curve has ``steps`` points (no start point, as our default)
  and its AUC is ``np.trapz(curve, dx=1)``; ours is that over ``steps -
  1`` (points spread over [0, 1]). The comparison is per image, on
  Quantus's returned curves turned into our AUC.

**cam** (the peer needs ``KERAS_BACKEND=torch``): ``keras_brnpa.explain``
``grad_cam``, ``score_cam``, ``hires_cam``, ``xgrad_cam`` and ``layer_cam``
against pytorch-grad-cam's ``GradCAM``, ``ScoreCAM``, ``HiResCAM``,
``XGradCAM`` and ``LayerCAM``. With the torch backend a Keras model is a ``torch.nn.Module``
and its layers fire torch forward hooks, so pytorch-grad-cam runs on the
very same Keras model: its target layer is the model's ``"backbone"``
layer (the layer ours look at), a ``reshape_transform`` turns the
channels-last activations to channels-first, and a thin module turns its
channels-first input to channels-last before calling the model. No weight
is copied and no second model is built: both sides run the same layers.
Both explain each image's predicted class on the logits, use the same
batch size (pytorch-grad-cam's ScoreCAM reads ``batch_size``) and return
maps at the image size (ours with ``upsample=True``); the maps are
compared after min-max normalisation per image (pytorch-grad-cam's
output scale). Score-CAM weights differ by definition: pytorch-grad-cam
takes a softmax over the channels of the class logits of the masked
images, ours (the authors' code) the class probability of each masked
image; so its maps are compared by correlation only, and the time is the
same number of forward passes (one per image and channel; ours skips
constant channels, the note says how many it ran).

The peers are the optional extra ``keras-brnpa[peers]``, not a test
dependency: a peer that is not installed (or that needs another backend)
is reported and skipped, and our side is still timed. On JAX no peer
runs.

Usage::

    pip install 'keras-brnpa[peers]'      # xplique, quantus, grad-cam
    KERAS_BACKEND=tensorflow python benchmarks/bench_peers.py   # metrics peers
    KERAS_BACKEND=torch python benchmarks/bench_peers.py        # CAM peers
    KERAS_BACKEND=tensorflow python benchmarks/bench_peers.py --quick --parts metrics
"""

import argparse
import importlib
import os

# Progress bars of the peers (pytorch-grad-cam's ScoreCAM) off: tqdm reads
# this when it is first imported.
os.environ.setdefault("TQDM_DISABLE", "1")

from _common import BACKEND  # noqa: E402
from _common import classifier  # noqa: E402
from _common import fill_defaults  # noqa: E402
from _common import header  # noqa: E402
from _common import print_table  # noqa: E402
from _common import sig  # noqa: E402
from _common import timed  # noqa: E402
from _common import timed_pair  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_brnpa  # noqa: E402

#: Peers by name: (module imported, PyPI name, the backend it needs).
PEERS = {
    "xplique": ("xplique.metrics", "xplique", "tensorflow"),
    "quantus": ("quantus", "quantus", "tensorflow"),
    "pytorch-grad-cam": ("pytorch_grad_cam", "grad-cam", "torch"),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and inputs (seconds)")
    parser.add_argument("--parts", nargs="+", default=["metrics", "cam"],
                        choices=["metrics", "cam"])
    parser.add_argument("--backbone", default=None,
                        help="build_classifier backbone (default resnet18), or 'conv'")
    parser.add_argument("--resolution", default=None, choices=["low", "high"])
    parser.add_argument("--size", type=int, default=None, help="image size")
    parser.add_argument("--images", type=int, default=None, help="images of the metrics part")
    parser.add_argument("--cells", type=int, default=None, help="maps are cells x cells")
    parser.add_argument("--steps", type=int, default=None, help="deletion/insertion steps")
    parser.add_argument("--batch-size", type=int, default=None, help="metrics' batch size")
    parser.add_argument("--cam-images", type=int, default=None, help="images of the CAM part")
    parser.add_argument("--cam-batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    quick = dict(backbone="conv", resolution="low", size=48, images=2, cells=6, steps=12,
                 batch_size=16, cam_images=2, cam_batch_size=16, repeats=1)
    full = dict(backbone="resnet18", resolution="low", size=96, images=16, cells=12, steps=48,
                batch_size=64, cam_images=4, cam_batch_size=32, repeats=2)
    fill_defaults(args, quick, full)
    if args.size % args.cells or (args.cells * args.cells) % args.steps:
        parser.error("--cells must divide --size and --steps must divide cells**2")
    return args


def load_peer(name):
    """``(module, None)``, or ``(None, why it is skipped)``."""
    module, pypi, backend = PEERS[name]
    if BACKEND != backend:
        return None, f"needs KERAS_BACKEND={backend}"
    try:
        return importlib.import_module(module), None
    except ImportError as error:
        if getattr(error, "name", None) == module.split(".")[0]:
            return None, f"not installed (pip install {pypi})"
        return None, f"fails to import ({type(error).__name__}: {error})"


def ratio(peer, ours):
    return f"{peer / ours:.2f}x"


# ------------------------------------------------------------------ metrics
def bench_metrics(args, model, notes):
    """Rows of the metrics table: ours vs xplique and Quantus."""
    rng = np.random.default_rng(args.seed)
    size, n = args.size, args.images
    images = rng.random((n, size, size, 3)).astype("float32")
    saliency = rng.random((n, args.cells, args.cells))
    block = size // args.cells
    pixel_maps = np.repeat(np.repeat(saliency, block, axis=1), block, axis=2)
    probabilities = keras.Sequential([model, keras.layers.Softmax()], name="probabilities")
    classes = np.argmax(probabilities.predict_on_batch(images), axis=-1)
    common = dict(steps=args.steps, batch_size=args.batch_size, baseline=0.0)
    metrics = keras_brnpa.metrics
    ours = {
        "deletion": lambda **kw: metrics.deletion_auc(probabilities, images, saliency, **common, **kw),
        "insertion": lambda **kw: metrics.insertion_auc(probabilities, images, saliency, **common, **kw),
    }
    rows = []

    def measure(fn):
        value = fn()  # the warm-up call gives the values
        return value, timed(fn, args.repeats, warmup=0)

    def measure_pair(fn, peer):
        """Values (from the warm-up calls) and interleaved median times."""
        values = fn(), peer()
        return values, timed_pair(fn, peer, args.repeats)

    xplique, why = load_peer("xplique")
    if why:
        notes.append(f"xplique: {why}")
    for name in ("deletion", "insertion"):
        label = f"{name} (curve from t=0)"
        if xplique is None:
            _, t_ours = measure(lambda: ours[name](start_point=True))
            rows.append([label, sig(t_ours), f"xplique {name.title()}", "skipped", "n/a", "n/a",
                         why])
            continue
        metric = {"deletion": xplique.Deletion, "insertion": xplique.Insertion}[name]
        targets = np.eye(probabilities.output_shape[-1], dtype="float32")[classes]

        def peer():
            return metric(probabilities, images, targets, batch_size=args.batch_size,
                          baseline_mode=0.0, steps=args.steps).evaluate(pixel_maps)

        (auc, value), (t_ours, t_peer) = measure_pair(
            lambda: ours[name](start_point=True), peer
        )
        diff = abs(float(value) - float(np.mean(auc)))
        rows.append([label, sig(t_ours), f"xplique {name.title()}", sig(t_peer),
                     ratio(t_peer, t_ours), f"{diff:.2e}", "AUC, mean over the images"])

    quantus, why = load_peer("quantus")
    if why:
        notes.append(f"quantus: {why}")
    label = "deletion (authors' curve)"
    if quantus is not None and args.steps % images.shape[-1]:
        quantus, why = None, f"steps must be a multiple of {images.shape[-1]} (channels)"
    if quantus is None:
        _, t_ours = measure(lambda: ours["deletion"]())
        rows.append([label, sig(t_ours), "Quantus PixelFlipping", "skipped", "n/a", "n/a", why])
    else:
        # Quantus ranks, and counts per step, every channel of every pixel
        # (it checks features_in_step against the pixels alone): the map on
        # every channel, channels first as Quantus turns the images.
        channel_maps = np.repeat(pixel_maps[:, None], images.shape[-1], axis=1)
        channel_maps = channel_maps.astype("float32")
        per_step = channel_maps[0].size // args.steps

        def peer():
            metric = quantus.PixelFlipping(
                features_in_step=per_step, perturb_baseline=0.0, normalise=False, abs=False,
                disable_warnings=True, display_progressbar=False,
            )
            return metric(
                model=probabilities, x_batch=images, y_batch=classes,
                a_batch=channel_maps, channel_first=False,
                softmax=True, batch_size=args.batch_size, model_predict_kwargs={"verbose": 0},
            )

        (auc, curves), (t_ours, t_peer) = measure_pair(lambda: ours["deletion"](), peer)
        curves = np.asarray(curves, dtype="float64")
        peer_auc = np.trapezoid(curves, dx=1.0, axis=1) / max(args.steps - 1, 1)
        if args.steps == 1:
            peer_auc = curves[:, 0]
        diff = float(np.max(np.abs(peer_auc - auc)))
        rows.append([label, sig(t_ours), "Quantus PixelFlipping", sig(t_peer),
                     ratio(t_peer, t_ours), f"{diff:.2e}", "AUC per image, from Quantus's curves"])
    return rows


# --------------------------------------------------------------------- CAMs
def normalised(maps):
    maps = np.asarray(maps, dtype="float64")
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / np.where(high > low, high - low, 1.0)


def agreement(ours, peer):
    a, b = normalised(ours), normalised(peer)
    corr = np.corrcoef(a.reshape(-1), b.reshape(-1))[0, 1]
    return f"{float(np.max(np.abs(a - b))):.2e}", f"{corr:.4f}"


def bench_cam(args, model, notes, summary):
    """Rows of the CAM table: ours vs pytorch-grad-cam on the same Keras model."""
    rng = np.random.default_rng(args.seed + 1)
    size, n, batch = args.size, args.cam_images, args.cam_batch_size
    images = rng.random((n, size, size, 3)).astype("float32")
    classes = np.argmax(keras.ops.convert_to_numpy(model.predict_on_batch(images)), axis=-1)
    backbone = model.get_layer("backbone")
    activations = keras.ops.convert_to_numpy(backbone.predict_on_batch(images))
    flat = activations.reshape(n, -1, activations.shape[-1])
    live = int(np.sum(flat.max(axis=1) > flat.min(axis=1)))
    explain = keras_brnpa.explain
    options = dict(layer_name="backbone", class_index=classes, batch_size=batch, upsample=True)
    ours = {
        "grad_cam": lambda: explain.grad_cam(model, images, **options),
        "score_cam": lambda: explain.score_cam(model, images, **options),
        "hires_cam": lambda: explain.hires_cam(model, images, **options),
        "xgrad_cam": lambda: explain.xgrad_cam(model, images, **options),
        "layer_cam": lambda: explain.layer_cam(model, images, **options),
    }
    cam, why = load_peer("pytorch-grad-cam")
    if why:
        notes.append(f"pytorch-grad-cam: {why}")
    peers = {}
    if cam is not None:
        import torch
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        class ChannelsFirst(torch.nn.Module):
            """pytorch-grad-cam's (B, C, H, W) input to the Keras (B, H, W, C)."""

            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner(x.permute(0, 2, 3, 1))

        wrapped = ChannelsFirst(model)
        x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        targets = [ClassifierOutputTarget(int(c)) for c in classes]

        def to_channels_first(tensor):
            return tensor.permute(0, 3, 1, 2)

        def peer(kind):
            def run():
                explainer = kind(model=wrapped, target_layers=[backbone],
                                 reshape_transform=to_channels_first)
                explainer.batch_size = batch
                try:
                    return explainer(input_tensor=x, targets=targets)
                finally:
                    explainer.activations_and_grads.release()

            return run

        peers = {"grad_cam": peer(cam.GradCAM), "score_cam": peer(cam.ScoreCAM)}
        for name, kind in (("hires_cam", "HiResCAM"), ("xgrad_cam", "XGradCAM"),
                           ("layer_cam", "LayerCAM")):
            if hasattr(cam, kind):
                peers[name] = peer(getattr(cam, kind))
            else:
                notes.append(f"pytorch-grad-cam has no {kind} (an older version)")
    names = {"grad_cam": "pytorch-grad-cam GradCAM", "score_cam": "pytorch-grad-cam ScoreCAM",
             "hires_cam": "pytorch-grad-cam HiResCAM", "xgrad_cam": "pytorch-grad-cam XGradCAM",
             "layer_cam": "pytorch-grad-cam LayerCAM"}
    k = activations.shape[-1]
    passes = {
        "grad_cam": "1 forward + 1 backward per batch, maps at image size",
        "hires_cam": "1 forward + 1 backward per batch, maps at image size",
        "xgrad_cam": "1 forward + 1 backward per batch, maps at image size",
        "layer_cam": "1 forward + 1 backward per batch, maps at image size",
        "score_cam": f"{k} channels: peer {n * k} forward passes, ours {live} "
                     "(constant channels skipped)",
    }
    rows = []
    # Score-CAM first: pytorch-grad-cam's GradCAM leaves the model slower for
    # later forward passes in the same process (measured: our Score-CAM took
    # 6.7 s before a GradCAM call and 8.1 s after it, 4 images at 96 px), so
    # timing it after the Grad-CAM rows would charge that to whoever runs next.
    for name in ("score_cam", "grad_cam", "hires_cam", "xgrad_cam", "layer_cam"):
        maps = ours[name]()
        if name not in peers:
            t_ours = timed(ours[name], args.repeats, warmup=0)
            rows.append([name, sig(t_ours), names[name], "skipped", "n/a", "n/a", "n/a",
                         why or "not in this pytorch-grad-cam"])
            continue
        peer_maps = peers[name]()
        # Interleaved runs (ours, peer, ours, ...): drift falls on both.
        t_ours, t_peer = timed_pair(ours[name], peers[name], args.repeats)
        row = [name, sig(t_ours), names[name]]
        diff, corr = agreement(maps, peer_maps)
        rows.append(row + [sig(t_peer), ratio(t_peer, t_ours), diff, corr, passes[name]])
        if name == "score_cam":
            verdict = "met" if t_ours <= t_peer else "MISSED"
            summary.append(f"Score-CAM: ours / pytorch-grad-cam = {t_ours / t_peer:.2f}x "
                           f"(target <= 1x: {verdict})")
    return rows


# --------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    model = classifier(args.backbone, args.size, resolution=args.resolution, seed=args.seed)
    features = keras_brnpa.models.feature_shape(model)
    print(header(
        "bench_peers", backbone=args.backbone, resolution=args.resolution, size=args.size,
        features="x".join(map(str, features)), repeats=args.repeats, quick=args.quick,
    ))
    notes = []
    summary = []
    tables = []
    if "metrics" in args.parts:
        rows = bench_metrics(args, model, notes)
        tables.append((
            f"metrics: {args.images} images, {args.cells}x{args.cells} maps, "
            f"steps={args.steps}, batch_size={args.batch_size}, baseline 0",
            ["metric", "ours s", "peer", "peer s", "peer/ours", "max abs difference", "compared"],
            rows,
        ))
    if "cam" in args.parts:
        rows = bench_cam(args, model, notes, summary)
        tables.append((
            f"cam: {args.cam_images} images, batch_size={args.cam_batch_size}, layer 'backbone'",
            ["method", "ours s", "peer", "peer s", "peer/ours", "max abs difference",
             "correlation", "note"],
            rows,
        ))
    if notes:
        print("# skipped peers: " + "; ".join(notes))
    for title, columns, rows in tables:
        print()
        print(f"## {title}")
        print()
        print_table(columns, rows)
    print()
    print("peer/ours > 1: ours is faster (times in seconds for the whole batch).")
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
