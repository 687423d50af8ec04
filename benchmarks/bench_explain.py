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
  functions, which call the attention model eagerly;
- ``grad_cam``, ``grad_cam_plus_plus``, ``score_cam``, ``rise`` from
  ``keras_brnpa.explain`` on the same model (split at ``"backbone"``);
  methods that ``keras_brnpa.explain`` does not provide are listed as
  missing instead.

Each method runs once to warm up (compilation, caches), then ``--repeats``
times; the median is reported. Prints one Markdown table with the time per
image and the ratio to plain inference.

Usage::

    KERAS_BACKEND=tensorflow python benchmarks/bench_explain.py
    KERAS_BACKEND=jax python benchmarks/bench_explain.py --quick
"""

import argparse
import datetime
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_brnpa  # noqa: E402

BACKEND = keras.config.backend()
POST_HOC = ("grad_cam", "grad_cam_plus_plus", "score_cam", "rise")
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
    args = parser.parse_args(argv)
    quick = dict(backbone="conv", size=32, images=2, repeats=2, rise_masks=8,
                 score_cam_channels=4)
    full = dict(backbone="resnet18", size=224, images=4, repeats=3, rise_masks=500,
                score_cam_channels=None)
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def conv_backbone(size):
    """Three convolutions, stride 4, no keras-cv (for --quick)."""
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        ],
        name="backbone",
    )


def device_name():
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    if BACKEND == "jax":
        import jax

        return jax.default_backend().upper()
    import torch

    return "GPU" if torch.cuda.is_available() else "CPU"


def timed(fn, repeats):
    """Median seconds of ``fn()`` after one warm-up call (results to NumPy)."""
    keras.tree.map_structure(keras.ops.convert_to_numpy, fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        keras.tree.map_structure(keras.ops.convert_to_numpy, fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


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
    backbone = conv_backbone(args.size) if args.backbone == "conv" else args.backbone
    model = keras_brnpa.models.build_classifier(
        10,
        backbone=backbone,
        head="brnpa",
        n_parts=3,
        resolution=args.resolution,
        input_shape=(args.size, args.size, 3),
    )
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
        rows.append(("brnpa maps (explain.attention_maps)", t / n, "eager call"))
    if "explanation_map" in found:
        t = timed(lambda: found["explanation_map"](model, images, batch_size=n), args.repeats)
        rows.append(("brnpa map (explain.explanation_map)", t / n, "part 1 x norm"))
    options = {
        "grad_cam": {},
        "grad_cam_plus_plus": {},
        "score_cam": {"max_channels": args.score_cam_channels},
        "rise": {"n_masks": args.rise_masks},
    }
    notes = {
        "score_cam": f"max_channels={args.score_cam_channels or 'all'}",
        "rise": f"n_masks={args.rise_masks}",
    }
    for name in POST_HOC:
        if name not in found:
            continue
        fn = found[name]
        t = timed(lambda: fn(model, images, batch_size=max(n, 32), **options[name]), args.repeats)
        rows.append((name, t / n, notes.get(name, "")))
    features = keras_brnpa.models.feature_shape(model)
    return rows, base, maps, missing, features


def sig(value):
    """A positive number with about 3 significant digits, no exponent."""
    for bound, digits in ((100, 0), (10, 1), (1, 2), (0.1, 3), (0.01, 4)):
        if value >= bound:
            return f"{value:.{digits}f}"
    return f"{value:.6f}"


def print_table(args, rows, base, maps, missing, features):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"# bench_explain: backend={BACKEND} device={device_name()} cpus={os.cpu_count()} "
        f"python={platform.python_version()} keras={keras.__version__} date={stamp} "
        f"backbone={args.backbone} resolution={args.resolution} size={args.size} "
        f"features={'x'.join(map(str, features))} images={args.images} quick={args.quick}"
    )
    if missing:
        print(f"# missing from keras_brnpa.explain (not timed): {', '.join(missing)}")
    print()
    print("| method | ms per image | vs inference | note |")
    print("|---|---|---|---|")
    for name, seconds, note in rows:
        print(f"| {name} | {sig(1e3 * seconds)} | {seconds / base:.2f}x | {note} |")
    print()
    ratio = maps / base
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"BR-NPA maps vs plain inference: {ratio:.2f}x (target <= {TARGET}x: {verdict})")


def main(argv=None):
    args = parse_args(argv)
    print_table(args, *run(args))


if __name__ == "__main__":
    main()
