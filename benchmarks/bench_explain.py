#!/usr/bin/env python
"""Time per image of an explanation: BR-NPA maps vs plain inference vs post-hoc.

On one BR-NPA classifier (``build_classifier``; ResNet-18 at 224 px by
default) and the same images, times per image:

- ``inference``: the classifier's logits, compiled (``predict_on_batch``);
- ``brnpa maps (attention_model without features)``: logits + attention
  maps + feature norm from ``keras_brnpa.models.attention_model`` in the
  same single forward pass, compiled (``predict_on_batch``): target <= 1.1x
  ``inference``; and the same with all its outputs (the feature map too);
- ``brnpa maps (explain.attention_maps)`` and
  ``brnpa map (explain.explanation_map)``: the public explanation
  functions;
- ``grad_cam``, ``grad_cam_plus_plus``, ``hires_cam``, ``xgrad_cam``,
  ``layer_cam``, ``score_cam``, ``rise`` from ``keras_brnpa.explain`` on
  the same model (at ``"backbone"``), and the pixel attributions
  ``saliency``, ``smooth_grad`` (``--smooth-samples`` noisy copies) and
  ``integrated_gradients`` (``--ig-steps`` path points);
  methods that ``keras_brnpa.explain`` does not provide are listed as
  missing instead.

Each method runs once to warm up (compilation, caches), then ``--repeats``
times; the median is reported. Prints one Markdown table with the time per
image and the ratio to plain inference, then the ``explain/forward`` table:
``explain.attention_maps``, ``explain.explanation_map`` and the gradient
CAMs (``grad_cam``, ``hires_cam``, ``xgrad_cam``, ``layer_cam``) on the
whole batch divided by one compiled forward
pass of the same model on the same batch (``predict_on_batch``, warmed
up; target <= 1.1x).

Usage::

    KERAS_BACKEND=tensorflow python benchmarks/bench_explain.py
    KERAS_BACKEND=jax python benchmarks/bench_explain.py --quick
"""

import argparse

from _common import BACKEND
from _common import classifier
from _common import fill_defaults
from _common import header
from _common import print_table as markdown_table
from _common import sig
from _common import timed

import keras
import numpy as np

import keras_brnpa

POST_HOC = ("grad_cam", "grad_cam_plus_plus", "hires_cam", "xgrad_cam", "layer_cam",
            "score_cam", "rise", "saliency", "smooth_grad", "integrated_gradients")
TARGET = 1.1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and inputs (seconds)")
    parser.add_argument("--backbone", default=None,
                        help="build_classifier backbone name (default resnet18), or "
                        "'conv' (three convolutions, the --quick default)")
    parser.add_argument("--resolution", default="low", choices=["low", "high"])
    parser.add_argument("--size", type=int, default=None, help="image size")
    parser.add_argument("--images", type=int, default=None, help="number of images")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--rise-masks", type=int, default=None)
    parser.add_argument("--score-cam-channels", type=int, default=None,
                        help="max_channels of score_cam (default: all)")
    parser.add_argument("--smooth-samples", type=int, default=None,
                        help="samples of smooth_grad")
    parser.add_argument("--ig-steps", type=int, default=None,
                        help="steps of integrated_gradients")
    args = parser.parse_args(argv)
    quick = dict(backbone="conv", size=32, images=2, repeats=2, rise_masks=8,
                 score_cam_channels=4, smooth_samples=2, ig_steps=2)
    full = dict(backbone="resnet18", size=224, images=4, repeats=3, rise_masks=500,
                score_cam_channels=None, smooth_samples=16, ig_steps=32)
    return fill_defaults(args, quick, full)


def available_methods():
    explain = getattr(keras_brnpa, "explain", None)
    found, missing = {}, []
    for name in POST_HOC + ("attention_maps", "explanation_map"):
        fn = getattr(explain, name, None) if explain is not None else None
        if callable(fn):
            found[name] = fn
        else:
            missing.append(name)
    return found, missing


def run(args):
    model = classifier(args.backbone, args.size, n_parts=3, resolution=args.resolution)
    maps_model = keras_brnpa.models.attention_model(model)
    images = np.random.default_rng(0).random((args.images, args.size, args.size, 3))
    images = images.astype("float32")
    n = len(images)
    found, missing = available_methods()

    rows = []  # (method, seconds per image, note)
    base = timed(lambda: model.predict_on_batch(images), args.repeats) / n
    rows.append(("inference (predict_on_batch)", base, "logits only"))
    # The same graph without the "features" output: returning the whole
    # feature map to the host is a copy that an explanation does not need.
    outputs = maps_model.output
    maps_only = keras.Model(
        maps_model.input, {k: outputs[k] for k in ("logits", "attention_maps", "feature_norm")}
    )
    maps = timed(lambda: maps_only.predict_on_batch(images), args.repeats) / n
    rows.append(("brnpa maps (attention_model without features)", maps,
                 "logits + maps + norm, one pass"))
    t = timed(lambda: maps_model.predict_on_batch(images), args.repeats) / n
    rows.append(("brnpa maps (attention_model, all outputs)", t,
                 "also returns the (B, h, w, C) features"))
    if "attention_maps" in found:
        t = timed(lambda: found["attention_maps"](model, images, batch_size=n), args.repeats)
        rows.append(("brnpa maps (explain.attention_maps)", t / n, "public call"))
    if "explanation_map" in found:
        t = timed(lambda: found["explanation_map"](model, images, batch_size=n), args.repeats)
        rows.append(("brnpa map (explain.explanation_map)", t / n, "part 1 x norm"))
    options = {
        "grad_cam": {},
        "grad_cam_plus_plus": {},
        "score_cam": {"max_channels": args.score_cam_channels},
        "rise": {"n_masks": args.rise_masks},
        "smooth_grad": {"samples": args.smooth_samples},
        "integrated_gradients": {"steps": args.ig_steps},
    }
    notes = {
        "score_cam": f"max_channels={args.score_cam_channels or 'all'}",
        "rise": f"n_masks={args.rise_masks}",
        "saliency": "(B, H, W, C) input gradient",
        "smooth_grad": f"samples={args.smooth_samples}",
        "integrated_gradients": f"steps={args.ig_steps}",
    }
    for name in POST_HOC:
        if name not in found:
            continue
        fn = found[name]
        kwargs = options.get(name, {})
        t = timed(lambda: fn(model, images, batch_size=max(n, 32), **kwargs), args.repeats)
        rows.append((name, t / n, notes.get(name, "")))
    features = keras_brnpa.models.feature_shape(model)
    return rows, base, maps, missing, features


#: The public explanation calls held to the explain/forward target.
PUBLIC = {
    "brnpa maps (explain.attention_maps)": "explain.attention_maps",
    "brnpa map (explain.explanation_map)": "explain.explanation_map",
    "grad_cam": "explain.grad_cam",
    "hires_cam": "explain.hires_cam",
    "xgrad_cam": "explain.xgrad_cam",
    "layer_cam": "explain.layer_cam",
}


def print_table(args, rows, base, maps, missing, features):
    print(header(
        "bench_explain", backbone=args.backbone, resolution=args.resolution, size=args.size,
        features="x".join(map(str, features)), images=args.images, quick=args.quick,
    ))
    if missing:
        print(f"# missing from keras_brnpa.explain (not timed): {', '.join(missing)}")
    print()
    markdown_table(
        ["method", "ms per image", "vs inference", "note"],
        [(name, sig(1e3 * seconds), f"{seconds / base:.2f}x", note) for name, seconds, note in rows],
    )
    print()
    ratio = maps / base
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"BR-NPA maps vs plain inference: {ratio:.2f}x (target <= {TARGET}x: {verdict})")
    # The public calls against one compiled forward pass (predict_on_batch,
    # warmed up) of the same model on the same batch.
    public = [(PUBLIC[name], seconds / base) for name, seconds, _ in rows if name in PUBLIC]
    if public:
        print()
        markdown_table(
            ["explain/forward", "ratio", f"target <= {TARGET}x"],
            [(name, f"{r:.2f}x", "met" if r <= TARGET else "MISSED") for name, r in public],
        )


def main(argv=None):
    args = parse_args(argv)
    print_table(args, *run(args))


if __name__ == "__main__":
    main()
