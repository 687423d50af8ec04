#!/usr/bin/env python
"""BR-NPA head (forward + backward) vs a GAP head and a gather-per-part version.

For each feature-map shape, times one forward + backward pass (gradient of
``sum(outputs * w)`` with respect to the features, ``w`` fixed) of:

- ``gap``: global average pooling, the cheapest possible head;
- ``brnpa``: ``keras_brnpa.BRNPAAttention(n_parts=3)`` (one-hot selection
  and einsum contractions);
- ``gather``: a straightforward implementation written here: per part,
  ``take_along_axis`` picks the representative vector and the similarities
  and the pooled vector are broadcast products reduced over an axis (the
  style of the authors' PyTorch code). It is checked against the layer
  before timing.

each eager and compiled (``tf.function(jit_compile=True)`` on TensorFlow,
``jax.jit`` on JAX, ``torch.compile`` on torch when ``--torch-compile`` is
given: it needs a C++ toolchain and minutes on CPU). Then, as the share of a
real training step, times ``train_on_batch`` of a high-resolution ResNet
(ResNet-50 by default, stages 3-4 at stride 1) with the BR-NPA head and
with the GAP head, and the head alone on that step's feature map.

Prints one Markdown table: shape, mode, milliseconds per step for each head
and the ratios ``brnpa/gap`` and ``brnpa/gather``; then the step rows with
the head's share (target: <= 5 % of the step).

Usage::

    KERAS_BACKEND=jax python benchmarks/bench_layer.py
    KERAS_BACKEND=tensorflow python benchmarks/bench_layer.py --quick
"""

import argparse

from _common import BACKEND
from _common import classifier
from _common import device_name
from _common import header
from _common import print_table as markdown_table
from _common import sig
from _common import timed

import keras
import numpy as np
from keras import ops

import keras_brnpa
N_PARTS = 3
EPS = 1e-5

FULL_SHAPES = ["16x28x28x2048", "16x56x56x2048", "32x14x14x2048", "32x28x28x512"]
QUICK_SHAPES = ["4x12x12x64"]


def parse_shape(text):
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected BxHxWxC, got {text!r}")
    return shape


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (seconds)")
    parser.add_argument("--shapes", nargs="+", type=parse_shape, help="BxHxWxC feature maps")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument(
        "--modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"]
    )
    parser.add_argument(
        "--torch-compile", action="store_true", help="on torch, time torch.compile as 'compiled'"
    )
    parser.add_argument(
        "--step-backbone",
        default=None,
        help="ResNet name for the step share (default resnet50), or 'conv' "
        "(three convolutions, the --quick default)",
    )
    parser.add_argument("--step-batch", type=int, default=None)
    parser.add_argument("--step-size", type=int, default=None, help="image size of the step")
    parser.add_argument("--step-jit", choices=["auto", "on", "off"], default="auto",
                        help="jit_compile of the step; auto: XLA on GPU/TPU, not on CPU")
    parser.add_argument("--no-step", action="store_true", help="skip the training-step rows")
    args = parser.parse_args(argv)
    if args.quick:
        args.shapes = args.shapes or [parse_shape(s) for s in QUICK_SHAPES]
        args.repeats = args.repeats or 2
        args.step_backbone = args.step_backbone or "conv"
        args.step_batch = args.step_batch or 2
        args.step_size = args.step_size or 32
    else:
        args.shapes = args.shapes or [parse_shape(s) for s in FULL_SHAPES]
        args.repeats = args.repeats or 5
        args.step_backbone = args.step_backbone or "resnet50"
        args.step_batch = args.step_batch or 2
        args.step_size = args.step_size or 224
    return args


# ----------------------------------------------------------------- the heads
def gap_head(x):
    return ops.mean(x, axis=(1, 2))


def gather_head(x):
    """BR-NPA written plainly: take_along_axis + broadcast products per part."""
    b, h, w, c = x.shape
    flat = ops.reshape(x, (b, h * w, c))
    norm = ops.sqrt(ops.sum(flat * flat, axis=-1)) + EPS  # (B, N)
    score = norm
    parts = []
    for _ in range(N_PARTS):
        index = ops.expand_dims(ops.argmax(score, axis=1), 1)  # (B, 1)
        rep = ops.take_along_axis(flat, ops.expand_dims(index, -1), axis=1)  # (B, 1, C)
        rep_norm = ops.take_along_axis(norm, index, axis=1)  # (B, 1)
        sim = ops.sum(flat * rep, axis=-1) / (norm * rep_norm)  # (B, N)
        att = sim / ops.sum(sim, axis=1, keepdims=True)
        parts.append(ops.sum(ops.expand_dims(att, -1) * flat, axis=1))  # (B, C)
        score = (1.0 - sim) * score
    return ops.concatenate(parts, axis=-1)


def brnpa_head():
    layer = keras_brnpa.BRNPAAttention(n_parts=N_PARTS, data_format="channels_last")
    return lambda x: layer(x)


# ------------------------------------------------- backend-specific plumbing
def to_device(array):
    return ops.convert_to_tensor(array)


def grad_step(head, compiled, torch_compile=False, tf_graph=False):
    """Return step(x, w) -> (loss, d loss / d x) for loss = sum(head(x) * w).

    ``compiled``: XLA (``jax.jit``, ``tf.function(jit_compile=True)``) or
    ``torch.compile`` (only with ``torch_compile``, else ``None``).
    ``tf_graph``: on TensorFlow, a ``tf.function`` without XLA when not
    ``compiled`` (what ``model.fit`` runs with ``jit_compile=False``).
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        def step(x, w):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.cast(head(x), "float32") * w)
            return loss, tape.gradient(loss, x)

        if compiled or tf_graph:
            return tf.function(step, jit_compile=bool(compiled))
        return step
    if BACKEND == "jax":
        import jax

        def loss_fn(x, w):
            return (head(x).astype("float32") * w).sum()

        step = jax.value_and_grad(loss_fn)
        return jax.jit(step) if compiled else step
    import torch

    fn = head
    if compiled:
        if not torch_compile:
            return None
        fn = torch.compile(head)

    def step(x, w):
        x = x.detach().requires_grad_(True)
        loss = (fn(x).float() * w).sum()
        loss.backward()
        return loss, x.grad

    return step


# ----------------------------------------------------------------- the runs
def check_gather_matches(shape):
    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=(2,) + shape[1:]), 0).astype("float32")
    ours = ops.convert_to_numpy(brnpa_head()(to_device(x)))
    plain = ops.convert_to_numpy(gather_head(to_device(x)))
    return float(np.max(np.abs(ours - plain)) / max(np.max(np.abs(ours)), 1e-12))


def bench_heads(args):
    rows = []
    for shape in args.shapes:
        rng = np.random.default_rng(0)
        x = to_device(np.maximum(rng.normal(size=shape), 0).astype("float32"))
        heads = {"gap": gap_head, "brnpa": brnpa_head(), "gather": gather_head}
        for mode in args.modes:
            ms = {}
            for name, head in heads.items():
                step = grad_step(head, mode == "compiled", args.torch_compile)
                if step is None:
                    ms[name] = None
                    continue
                out_dim = shape[-1] * (1 if name == "gap" else N_PARTS)
                w = to_device(rng.normal(size=(shape[0], out_dim)).astype("float32"))
                ms[name] = 1e3 * timed(lambda: step(x, w), args.repeats)
            rows.append((shape, mode, ms))
        del x
    return rows


def bench_step(args):
    """train_on_batch of a high-resolution ResNet with BR-NPA / GAP heads."""
    # auto: JAX always compiles (XLA is its only compiler; its eager mode is
    # op by op); TensorFlow uses XLA on accelerators only (on CPU XLA halves
    # convolution training speed, see docs/backends.md); torch runs eagerly.
    auto = {"jax": True, "tensorflow": device_name() != "CPU", "torch": False}[BACKEND]
    jit = {"on": True, "off": False}.get(args.step_jit, auto)
    size, batch = args.step_size, args.step_batch
    rng = np.random.default_rng(0)
    images = rng.random((batch, size, size, 3)).astype("float32")
    labels = rng.integers(0, 10, batch)
    steps = {}
    feature_shape = None
    for head in ("gap", "brnpa"):
        model = classifier(args.step_backbone, size, head=head, resolution="high")
        feature_shape = keras_brnpa.models.feature_shape(model)
        model.compile(
            optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        steps[head] = 1e3 * timed(
            lambda: model.train_on_batch(images, labels), max(2, args.repeats // 2)
        )
        del model
    features = to_device(
        np.maximum(rng.normal(size=(batch,) + tuple(feature_shape)), 0).astype("float32")
    )
    w = to_device(rng.normal(size=(batch, feature_shape[-1] * N_PARTS)).astype("float32"))
    head_step = grad_step(brnpa_head(), jit, args.torch_compile, tf_graph=True)
    if head_step is None:  # torch without --torch-compile
        head_step = grad_step(brnpa_head(), False)
    head_ms = 1e3 * timed(lambda: head_step(features, w), args.repeats)
    return dict(
        backbone=args.step_backbone,
        size=size,
        batch=batch,
        features=feature_shape,
        jit=jit,
        gap_ms=steps["gap"],
        brnpa_ms=steps["brnpa"],
        head_ms=head_ms,
    )


def fmt(value):
    return "n/a" if value is None else sig(value)


def ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def print_table(args, rows, step, max_err):
    print(header("bench_layer", n_parts=N_PARTS, quick=args.quick))
    print(f"# gather implementation vs BRNPAAttention: max relative difference {max_err:.2e}")
    print()
    table = []
    for shape, mode, ms in rows:
        table.append((
            "x".join(map(str, shape)), mode, fmt(ms["gap"]), fmt(ms["brnpa"]), fmt(ms["gather"]),
            ratio(ms["brnpa"], ms["gap"]), ratio(ms["brnpa"], ms["gather"]),
        ))
    if step is not None:
        f = step["features"]
        high_res = "" if step["backbone"] == "conv" else "high-res "
        label = (
            f"{step['backbone']} {high_res}step, {step['batch']}x{step['size']}px "
            f"-> {f[0]}x{f[1]}x{f[2]}, jit_compile={step['jit']}"
        )
        table.append((label, "gap step", fmt(step["gap_ms"]), "", "", "", ""))
        table.append((label, "brnpa step", "", fmt(step["brnpa_ms"]), "",
                      ratio(step["brnpa_ms"], step["gap_ms"]), ""))
        table.append((label, "brnpa head alone", "", fmt(step["head_ms"]), "", "", ""))
    markdown_table(
        ["features (BxHxWxC)", "mode", "gap ms", "brnpa ms", "gather ms", "brnpa/gap",
         "brnpa/gather"],
        table,
    )
    if step is not None:
        share = step["head_ms"] / step["brnpa_ms"]
        extra = (step["brnpa_ms"] - step["gap_ms"]) / step["gap_ms"]
        verdict = "met" if share <= 0.05 else "MISSED"
        print()
        print(
            f"head share of the step: {100 * share:.1f}% (head alone / BR-NPA step; "
            f"target <= 5%: {verdict}); BR-NPA step vs GAP step: {100 * extra:+.1f}%"
        )


def main(argv=None):
    args = parse_args(argv)
    max_err = check_gather_matches(args.shapes[0])
    if max_err > 1e-3:
        raise SystemExit(f"the gather implementation disagrees with the layer: {max_err}")
    rows = bench_heads(args)
    step = None if args.no_step else bench_step(args)
    print_table(args, rows, step, max_err)


if __name__ == "__main__":
    main()
