#!/usr/bin/env python
"""keras_brnpa beside the peer libraries: times, ratios and value agreement.

Three parts, each on one model, one set of images, one set of saliency maps
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

**road** (the peer needs ``KERAS_BACKEND=torch``): ``keras_brnpa.metrics``
``noisy_linear_impute`` and ``road`` against pytorch-grad-cam's
``NoisyLinearImputer`` and ``ROADMostRelevantFirstAverage`` /
``ROADLeastRelevantFirstAverage`` (its transcription of
tleemann/road_evaluation) on the same Keras model, images and maps
(random, one value per pixel at the image size: no resizing, no ties).
Both score the probability of each image's predicted class (the peer with
``ClassifierOutputSoftmaxTarget``; its averages return the change from the
intact image, to which the intact probability is added back) over the
fractions 10 % to 90 %. Rows: the imputation alone (noise 0, the masks of
MoRF at 50 %: ours on all images at once, the peer image by image); ROAD
with each side's defaults (noise 0.01: the noise draws differ, so the
values agree only to about the noise's effect); and, not timed, ROAD with
noise 0 and the same pixels removed: the peer removes the pixels at or
above ``np.percentile`` of the map (one more than ``round(p * H * W)`` at
some fractions), so ours is called image by image with the peer's pixel
counts as its fractions, and the values must agree to float32 precision.

pytorch-grad-cam imports torchvision when it is imported, but the CAMs and
ROAD compared here never call it (it uses torchvision only in
``preprocess_image``, SESS and its Faster R-CNN target). Where torchvision
is not installed or does not import (PyPI's torchvision is built against
CUDA torch: beside the CPU build ``torch==2.13.0`` it fails with
``operator torchvision::nms does not exist``), ``torchvision_stand_in``
puts in ``sys.modules`` a stand-in ``torchvision`` holding only the names
pytorch-grad-cam imports (``TORCHVISION_NAMES``), each raising
``RuntimeError`` if called, and the output says so on a ``#`` line: a
number that comes out was computed without torchvision. With a
torchvision that imports, the real one is used.

The peers are the optional extra ``keras-brnpa[peers]``, not a test
dependency: a peer that is not installed (or that needs another backend)
is reported and skipped, and our side is still timed. On JAX no peer
runs.

Usage::

    pip install 'keras-brnpa[peers]'      # xplique, quantus, grad-cam
    KERAS_BACKEND=tensorflow python benchmarks/bench_peers.py   # metrics peers
    KERAS_BACKEND=torch python benchmarks/bench_peers.py        # CAM and ROAD peers
    KERAS_BACKEND=tensorflow python benchmarks/bench_peers.py --quick --parts metrics
"""

import argparse
import importlib
import importlib.util
import os
import sys
import types

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
    parser.add_argument("--parts", nargs="+", default=["metrics", "cam", "road"],
                        choices=["metrics", "cam", "road"])
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
    parser.add_argument("--road-images", type=int, default=None, help="images of the ROAD part")
    parser.add_argument("--road-batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    quick = dict(backbone="conv", resolution="low", size=48, images=2, cells=6, steps=12,
                 batch_size=16, cam_images=2, cam_batch_size=16, road_images=2,
                 road_batch_size=18, repeats=1)
    full = dict(backbone="resnet18", resolution="low", size=96, images=16, cells=12, steps=48,
                batch_size=64, cam_images=4, cam_batch_size=32, road_images=4,
                road_batch_size=36, repeats=2)
    fill_defaults(args, quick, full)
    if args.size % args.cells or (args.cells * args.cells) % args.steps:
        parser.error("--cells must divide --size and --steps must divide cells**2")
    return args


#: What pytorch-grad-cam imports from torchvision (1.5.7): ``import
#: torchvision`` (utils/model_targets.py, ``torchvision.ops.box_iou`` only
#: inside its Faster R-CNN target), ``from torchvision.transforms import
#: Compose, Normalize, ToTensor`` (utils/image.py, only in
#: ``preprocess_image``) and ``from torchvision.transforms.functional import
#: resize`` (sess.py, only in its SESS method). None of them runs in the
#: CAMs or the ROAD metric compared here.
TORCHVISION_NAMES = {
    "torchvision.ops": ("box_iou",),
    "torchvision.transforms": ("Compose", "Normalize", "ToTensor"),
    "torchvision.transforms.functional": ("resize",),
}


def torchvision_stand_in():
    """Import torchvision, or put a stand-in in ``sys.modules``; ``None`` or a note.

    pytorch-grad-cam imports torchvision when it is imported, but its CAMs
    and ROAD never call it (``TORCHVISION_NAMES``). Where the real
    torchvision does not import (PyPI's torchvision is built against
    CUDA torch: beside the CPU build torch==2.13.0 it fails with
    ``operator torchvision::nms does not exist``), this installs modules
    that only hold those names, each raising ``RuntimeError`` when called:
    a number that comes out was computed without torchvision.
    """
    try:
        importlib.import_module("torchvision")
        return None
    except Exception as error:  # ImportError, or RuntimeError from a torch mismatch
        reason = f"{type(error).__name__}: {error}".splitlines()[0]
    for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
        del sys.modules[name]

    def unavailable(qualified):
        def call(*args, **kwargs):
            raise RuntimeError(
                f"{qualified} was called, but torchvision is bench_peers.py's stand-in "
                "(the real one does not import here): install a torchvision that imports"
            )
        return call

    root = types.ModuleType("torchvision")
    root.__stand_in__ = True
    sys.modules["torchvision"] = root
    for module_name, names in TORCHVISION_NAMES.items():
        module = types.ModuleType(module_name)
        for name in names:
            setattr(module, name, unavailable(f"{module_name}.{name}"))
        sys.modules[module_name] = module
        parent, _, child = module_name.rpartition(".")
        setattr(sys.modules[parent], child, module)
    return f"torchvision stand-in: the real one does not import ({reason})"


#: Lines printed under the header: how a peer was run (the stand-in).
RUN_NOTES = []


def load_peer(name):
    """``(module, None)``, or ``(None, why it is skipped)``.

    pytorch-grad-cam gets ``torchvision_stand_in`` where torchvision does
    not import; ``RUN_NOTES`` says so.
    """
    module, pypi, backend = PEERS[name]
    if BACKEND != backend:
        return None, f"needs KERAS_BACKEND={backend}"
    if name == "pytorch-grad-cam" and importlib.util.find_spec(module) is not None:
        note = torchvision_stand_in()
        if note and not any(n.startswith("pytorch-grad-cam") for n in RUN_NOTES):
            RUN_NOTES.append(f"pytorch-grad-cam runs with a {note}")
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
def channels_first_module(model):
    """A ``torch.nn.Module`` turning pytorch-grad-cam's (B, C, H, W) input to (B, H, W, C)."""
    import torch

    class _ChannelsFirst(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.permute(0, 2, 3, 1))

    return _ChannelsFirst(model)


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

        wrapped = channels_first_module(model)
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


# --------------------------------------------------------------------- ROAD
def peer_counts(maps, percentiles, order):
    """Pixels pytorch-grad-cam's ROAD removes per image and percentile.

    ``RemoveMostRelevantFirst(q)`` keeps the pixels whose map is below
    ``np.percentile(map, q)`` (so it removes ``100 - q`` %, ties at the
    threshold included); the least-relevant order does the same on
    ``1 - map`` (float32, as it computes it).
    """
    maps = np.asarray(maps, dtype="float32")
    if order == "lerf":
        maps = np.float32(1) - maps
    flat = maps.reshape(len(maps), -1)
    return np.array([[int(np.sum(~(m < np.percentile(m, q)))) for q in percentiles]
                     for m in flat])


def bench_road(args, model, notes):
    """Rows of the ROAD table: ours vs pytorch-grad-cam's ROAD on the same Keras model."""
    rng = np.random.default_rng(args.seed + 2)
    size, n = args.size, args.road_images
    images = rng.random((n, size, size, 3)).astype("float32")
    # One value per pixel, at the image size: no resizing on either side
    # and (continuous values) no ties, so both rank the pixels alike.
    maps = rng.random((n, size, size)).astype("float32")
    classes = np.argmax(keras.ops.convert_to_numpy(model.predict_on_batch(images)), axis=-1)
    metrics = keras_brnpa.metrics
    percentiles = [10, 20, 30, 40, 50, 60, 70, 80, 90]
    batch = args.road_batch_size
    options = dict(class_index=classes, batch_size=batch)
    # The imputation alone: ours on all images at once, the peer image by
    # image, on the masks of MoRF at 50 %.
    ranks = np.argsort(np.argsort(-maps.reshape(n, -1), axis=1, kind="stable"), axis=1)
    removed = (ranks < round(0.5 * size * size)).reshape(n, size, size)
    ours = {
        "imputation": lambda: metrics.noisy_linear_impute(images, removed, noise=0.0),
        "morf": lambda: metrics.road(model, images, maps, order="morf", **options),
        "lerf": lambda: metrics.road(model, images, maps, order="lerf", **options),
    }
    labels = {
        "imputation": "noisy_linear_impute, noise 0, 50 % removed",
        "morf": "road MoRF (noise 0.01, 10..90 %)",
        "lerf": "road LeRF (noise 0.01, 10..90 %)",
        "morf0": "road MoRF, noise 0, the peer's pixel counts",
        "lerf0": "road LeRF, noise 0, the peer's pixel counts",
    }
    peer_names = {
        "imputation": "pytorch-grad-cam NoisyLinearImputer",
        "morf": "pytorch-grad-cam ROADMostRelevantFirstAverage",
        "lerf": "pytorch-grad-cam ROADLeastRelevantFirstAverage",
        "morf0": "pytorch-grad-cam ROADMostRelevantFirst, noise 0",
        "lerf0": "pytorch-grad-cam ROADLeastRelevantFirst, noise 0",
    }
    compared = {
        "imputation": "imputed images (all pixels)",
        "morf": "per-image mean probability (the noise draws differ)",
        "lerf": "per-image mean probability (the noise draws differ)",
        "morf0": "per-image mean probability, the same pixels removed",
        "lerf0": "per-image mean probability, the same pixels removed",
    }
    cam, why = load_peer("pytorch-grad-cam")
    if why:
        notes.append(f"pytorch-grad-cam (ROAD): {why}")
        rows = []
        for name in ("imputation", "morf", "lerf"):
            ours[name]()
            t_ours = timed(ours[name], args.repeats, warmup=0)
            rows.append([labels[name], sig(t_ours), peer_names[name], "skipped", "n/a", "n/a",
                         why])
        return rows

    import torch
    from pytorch_grad_cam.metrics import road as peer_road
    from pytorch_grad_cam.metrics.perturbation_confidence import PerturbationConfidenceMetric
    from pytorch_grad_cam.metrics.perturbation_confidence import RemoveLeastRelevantFirst
    from pytorch_grad_cam.metrics.perturbation_confidence import RemoveMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    wrapped = channels_first_module(model)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in classes]

    def peer_impute():
        imputer = peer_road.NoisyLinearImputer(noise=0.0)
        return np.stack([
            imputer(x[i], torch.from_numpy((~removed[i]).astype("float32"))).numpy()
            for i in range(n)
        ]).transpose(0, 2, 3, 1)

    with torch.no_grad():
        intact = np.float32([t(o).numpy() for t, o in zip(targets, wrapped(x))])

    def peer_average(kind):
        # The peer's averages return the change from the intact image's
        # probability: added back, they are the mean probability, as ours.
        def run():
            torch.manual_seed(args.seed)  # the peer's noise: torch.randn_like
            metric = kind(percentiles)
            with torch.no_grad():
                return metric(x, maps, targets, wrapped) + intact

        return run

    def peer_noise_free(order):
        remove = {"morf": RemoveMostRelevantFirst, "lerf": RemoveLeastRelevantFirst}[order]
        scores = []
        for q in percentiles:
            metric = PerturbationConfidenceMetric(remove(q, peer_road.NoisyLinearImputer(0.0)))
            with torch.no_grad():
                scores.append(metric(x, maps, targets, wrapped, return_diff=False))
        return np.mean(np.float32(scores), axis=0)

    def ours_noise_free(order):
        """Per-image scores, and how far the probability moves over the fractions."""
        counts = peer_counts(maps, percentiles, order)
        results = [
            metrics.road(model, images[i:i + 1], maps[i:i + 1], order=order,
                         fractions=counts[i] / (size * size), noise=0.0,
                         class_index=classes[i:i + 1], batch_size=batch, return_curves=True)
            for i in range(n)
        ]
        scores = np.concatenate([score for score, _ in results])
        spread = max(float(np.ptp(np.append(curve, intact[i]))) for i, (_, curve) in
                     enumerate(results))
        return scores, spread

    peers = {
        "imputation": peer_impute,
        "morf": peer_average(peer_road.ROADMostRelevantFirstAverage),
        "lerf": peer_average(peer_road.ROADLeastRelevantFirstAverage),
    }
    rows = []
    for name in ("imputation", "morf", "lerf"):
        values = ours[name](), peers[name]()
        t_ours, t_peer = timed_pair(ours[name], peers[name], args.repeats)
        diff = float(np.max(np.abs(np.asarray(values[0], "float64") - values[1])))
        rows.append([labels[name], sig(t_ours), peer_names[name], sig(t_peer),
                     ratio(t_peer, t_ours), f"{diff:.2e}", compared[name]])
    # Agreement only (not timed): the same pixels removed on both sides and
    # no noise, so the values must agree to float32 precision.
    for order in ("morf", "lerf"):
        scores, spread = ours_noise_free(order)
        diff = float(np.max(np.abs(scores - peer_noise_free(order))))
        rows.append([labels[order + "0"], "n/a", peer_names[order + "0"], "n/a", "n/a",
                     f"{diff:.2e}", compared[order + "0"] + f" (the probability moves by up "
                     f"to {spread:.2g} over the fractions)"])
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
    if "road" in args.parts:
        rows = bench_road(args, model, notes)
        tables.append((
            f"road: {args.road_images} images, random per-pixel maps, "
            f"batch_size={args.road_batch_size}",
            ["check", "ours s", "peer", "peer s", "peer/ours", "max abs difference",
             "compared"],
            rows,
        ))
    for line in RUN_NOTES:
        print(f"# {line}")
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
