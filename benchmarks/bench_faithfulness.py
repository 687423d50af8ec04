#!/usr/bin/env python
"""Batched deletion/insertion AUC vs the one-forward-per-step loop.

On the same model, images and saliency maps, and at equal ``steps``, times
``keras_brnpa.metrics.deletion_auc`` / ``insertion_auc`` (perturbed images
built with NumPy broadcasting, evaluated ``--batch-size`` at a time by the
model's compiled predict function) against
``keras_brnpa.metrics.faithfulness.deletion_auc_loop`` /
``insertion_auc_loop`` (one eager ``model(x)`` call per step and per image,
as in the authors' code), and prints a Markdown table: method, time of the
loop, time batched, the limit (the same compiled ``predict_on_batch`` calls,
batch sizes recorded from the batched metric, on ready-made images: the
forward passes alone, without building the perturbed images), batched /
limit (target <= 1.25x), loop / batched, largest absolute difference
between the AUCs.
A ``road`` row (ROAD, MoRF, 9 fractions) times ``keras_brnpa.metrics.road``
against a plain loop (per image and fraction: ``noisy_linear_impute``, then
one eager forward pass), both with ``noise=0`` so that they give the same
numbers (the noise costs one addition); its limit is the forward passes
alone, so batched / limit (target <= 1.25x) also counts the imputation's
sparse solves; a line after the table splits the batched calls into the
time spent in the imputation (``road_metric._impute_linear``, timed inside
the same calls) and the rest, the model calls included, over the limit.
Batched and limit times are medians of ``--repeats`` calls (default 5);
the loop is timed once.
Both sides are warmed up first (one call each), and run side by side in the
same process, so that a shared machine's load affects both alike.

``--compiled-loop`` adds rows for a stronger baseline: the same loop with
the model's compiled ``predict_on_batch`` on one image per call.

Usage::

    KERAS_BACKEND=tensorflow python benchmarks/bench_faithfulness.py
    KERAS_BACKEND=jax python benchmarks/bench_faithfulness.py --quick
"""

import argparse
import os
import platform
import sys

from _common import classifier
from _common import timed as timed_median
from _common import timed_call as timed

import keras
import numpy as np

import keras_brnpa
from keras_brnpa.metrics import faithfulness

QUICK = dict(backbone="conv", size=32, images=2, cells=4, steps=4, batch_size=16, repeats=1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model and inputs (seconds)")
    parser.add_argument(
        "--backbone",
        default="resnet18",
        help="build_classifier backbone name, or 'conv' (a three-layer conv net)",
    )
    parser.add_argument("--size", type=int, default=64, help="image size in pixels")
    parser.add_argument("--images", type=int, default=4, help="number of images")
    parser.add_argument("--cells", type=int, default=8, help="saliency map is cells x cells")
    parser.add_argument("--steps", type=int, default=32, help="steps of both metrics")
    parser.add_argument("--batch-size", type=int, default=64, help="batched metrics' batch size")
    parser.add_argument(
        "--compiled-loop",
        action="store_true",
        help="also time the loop with a compiled batch-1 predict function",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="batched and limit timings: the median of this many calls",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def _batch_sizes(model, batched, images, saliency, batch_size, common):
    """The batch sizes of the predict calls one batched metric makes."""
    sizes = []
    predict = model.predict_on_batch

    def counting(x):
        sizes.append(len(x))
        return predict(x)

    model.predict_on_batch = counting
    try:
        batched(model, images, saliency, batch_size=batch_size, **common)
    finally:
        del model.predict_on_batch
    return sizes


def road_loop(model, images, saliency, fractions, noise, order="morf"):
    """ROAD, one image and one fraction at a time, one eager forward pass each."""
    from keras_brnpa.metrics.localization import upsample

    height, width = images.shape[1:3]
    maps = upsample(saliency, (height, width))
    logits = keras_brnpa.models.resolve_from_logits(model, None)
    scores = np.zeros((len(images), len(fractions)))
    for b in range(len(images)):
        intact = np.asarray(keras.ops.convert_to_numpy(model(images[b : b + 1], training=False)))
        label = int(np.argmax(intact[0]))
        flat = maps[b].reshape(-1)
        order_ = np.argsort(-flat if order == "morf" else flat, kind="stable")
        for k, p in enumerate(fractions):
            removed = np.zeros(height * width, bool)
            removed[order_[: round(p * height * width)]] = True
            x = keras_brnpa.metrics.noisy_linear_impute(
                images[b : b + 1], removed.reshape(height, width), noise=noise
            )
            out = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), "float64")[0]
            if logits:
                out = np.exp(out - out.max()) / np.exp(out - out.max()).sum()
            scores[b, k] = out[label]
    return scores.mean(axis=1)


def _road_split(model, images, saliency, batch_size, common, repeats):
    """Median seconds of ``repeats`` batched ``road`` calls, of the imputation
    (``road_metric._impute_linear``) inside them, and of the rest (each
    call's total less its imputation); plus the scores."""
    import time

    from keras_brnpa.metrics import road_metric

    original, spent = road_metric._impute_linear, [0.0]

    def timed_impute(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    totals, imputations = [], []
    road_metric._impute_linear = timed_impute
    try:
        for _ in range(repeats):
            spent[0] = 0.0
            seconds, scores = timed(
                keras_brnpa.metrics.road, model, images, saliency, batch_size=batch_size, **common
            )
            totals.append(seconds)
            imputations.append(spent[0])
    finally:
        road_metric._impute_linear = original
    totals, imputations = np.array(totals), np.array(imputations)
    return (
        float(np.median(totals)),
        float(np.median(imputations)),
        float(np.median(totals - imputations)),
        scores,
    )


def _median_time(repeats, fn, *args, **kwargs):
    """``(median seconds, result)`` of ``repeats`` calls (``_common.timed``;
    no warm-up here: ``main`` warms every metric up first)."""
    last = {}

    def call():
        last["result"] = fn(*args, **kwargs)
        return last["result"]

    return timed_median(call, repeats, warmup=0), last["result"]


def _limit(model, sizes, shape, repeats=1):
    """Median time of the compiled forward passes alone, batch sizes ``sizes``."""
    rng = np.random.default_rng(1)
    inputs = [rng.normal(size=(n,) + tuple(shape)).astype("float32") for n in sizes]
    for x in inputs:  # every shape compiled before timing
        model.predict_on_batch(x)
    return timed_median(lambda: [model.predict_on_batch(x) for x in inputs], repeats, warmup=0)


def main(argv=None):
    args = parse_args(argv)
    model = classifier(args.backbone, args.size, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    images = rng.normal(size=(args.images, args.size, args.size, 3)).astype("float32")
    saliency = rng.random((args.images, args.cells, args.cells))
    steps = dict(steps=args.steps)
    road = dict(fractions=keras_brnpa.metrics.road_metric.FRACTIONS, noise=0.0)
    methods = [
        ("deletion_auc", keras_brnpa.metrics.deletion_auc, faithfulness.deletion_auc_loop, steps),
        ("insertion_auc", keras_brnpa.metrics.insertion_auc, faithfulness.insertion_auc_loop,
         steps),
        ("road", keras_brnpa.metrics.road, road_loop, road),
    ]
    print(
        f"backend: {keras.config.backend()} | keras {keras.__version__} | "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(
        f"model: {args.backbone} + BR-NPA head ({model.count_params():,} parameters), "
        f"{args.images} images of {args.size}x{args.size}, saliency {args.cells}x{args.cells}, "
        f"steps={args.steps}, batch_size={args.batch_size}"
    )
    total = args.images * len(np.unique(keras_brnpa.metrics.step_counts(args.cells**2, args.steps)))
    calls = -(-total // args.batch_size)
    print(
        f"forward passes per metric: loop {args.images * (args.steps + 2)} calls of 1 image; "
        f"batched {total} images in {calls} calls of {-(-total // calls)}"
    )
    # Warm-up: compile the predict function, trace the eager path.
    model(images[:1], training=False)
    for _, batched, _, common in methods:
        batched(model, images, saliency, batch_size=args.batch_size, **common)
    if args.compiled_loop:
        model.predict_on_batch(images[:1])
    print()
    print(
        "| method | time loop (s) | time batched (s) | limit (s) | batched / limit "
        "| loop / batched | max abs difference |"
    )
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for name, batched, loop, common in methods:
        sizes = _batch_sizes(model, batched, images, saliency, args.batch_size, common)
        t_limit = _limit(model, sizes, images.shape[1:], args.repeats)
        if name == "road":
            t_batched, t_impute, rest, auc_batched = _road_split(
                model, images, saliency, args.batch_size, common, args.repeats
            )
            road_split = (t_impute, rest, t_limit)
        else:
            t_batched, auc_batched = _median_time(
                args.repeats, batched, model, images, saliency, batch_size=args.batch_size,
                **common
            )
        t_loop, auc_loop = timed(loop, model, images, saliency, **common)
        diff = float(np.max(np.abs(auc_batched - auc_loop)))
        worst = max(worst, diff)
        print(
            f"| {name} | {t_loop:.4g} | {t_batched:.4g} | {t_limit:.4g} | "
            f"{t_batched / t_limit:.2f}x | {t_loop / t_batched:.1f}x | {diff:.2e} |"
        )
        if args.compiled_loop and name != "road":
            t_compiled, auc_compiled = timed(loop, model.predict_on_batch, images, saliency, **common)
            diff = float(np.max(np.abs(auc_batched - auc_compiled)))
            worst = max(worst, diff)
            print(
                f"| {name} (loop: compiled batch-1) | {t_compiled:.4g} | {t_batched:.4g} | "
                f"{t_limit:.4g} | {t_batched / t_limit:.2f}x | {t_compiled / t_batched:.1f}x "
                f"| {diff:.2e} |"
            )
        sys.stdout.flush()
    print()
    t_impute, rest, t_limit = road_split
    print(
        f"road, batched, split (medians over the same {args.repeats} calls): imputation "
        f"(the sparse solves, `_impute_linear`) {t_impute:.4g} s; everything else, model "
        f"calls included, {rest:.4g} s = {rest / t_limit:.2f}x the limit"
    )
    print()
    print(f"largest difference: {worst:.2e} ({'OK' if worst < 1e-5 else 'MISMATCH'}, tolerance 1e-5)")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
