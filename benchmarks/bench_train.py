#!/usr/bin/env python
"""Training throughput (images/s) of a ResNet + BR-NPA classifier.

For the current ``KERAS_BACKEND``, times ``train_on_batch`` (SGD with
momentum, cross-entropy) of a ResNet + BR-NPA classifier at low and high
resolution (stages 3-4 at stride 1), in float32 and in mixed precision
(``mixed_float16`` on GPUs, ``mixed_bfloat16`` on CPUs, where float16
arithmetic is emulated). ``jit_compile``: JAX always runs with XLA
(``on``), torch eagerly (``off``; ``--torch-compile`` adds torch.compile),
TensorFlow both. When PyTorch is installed, also times a reference
implementation of the same model written in plain PyTorch below
(torchvision-style ResNet v1, the BR-NPA grouping, a linear layer),
trained eagerly, the authors' framework, on the GPU when torch sees one
(model and data moved to ``cuda``), in float32 and in the mixed precision
a PyTorch user would run: ``torch.autocast`` float16 with a
``torch.amp.GradScaler`` and ``channels_last`` tensors on a GPU (bfloat16
autocast, no scaler needed, on a CPU), each Keras policy beside its
PyTorch counterpart.

The ResNets come from keras-cv (``build_backbone``) when it imports; where
it does not (keras-cv needs TensorFlow: a GPU machine with JAX and torch
only), from ``keras.applications`` (``ResNet50/101/152``, made high
resolution by ``keras_brnpa.models.to_high_resolution``), the same
architecture with biases in its convolutions; the header says which.

Prints one Markdown table: implementation, resolution, jit_compile,
precision, seconds per step, images/s, and the ratio to the same
implementation's low-resolution float32 row with the same ``jit_compile``;
then the Keras / PyTorch reference table: per resolution and precision,
the fastest Keras step over the reference's step (below 1: Keras faster).

Usage::

    KERAS_BACKEND=torch python benchmarks/bench_train.py
    KERAS_BACKEND=jax python benchmarks/bench_train.py --quick
    KERAS_BACKEND=jax python benchmarks/bench_train.py --batch 32 --steps 5   # on a GPU
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

from _common import BACKEND
from _common import backbone_source
from _common import classifier
from _common import keras_cv_available
from _common import device_name
from _common import header
from _common import print_table as markdown_table
from _common import sig
from _common import timed

import keras
import numpy as np

from keras_brnpa.models import RESNET_CONFIGS
from keras_brnpa.models import RESOLUTION_STRIDES

N_PARTS = 3
NUM_CLASSES = 10
REFERENCE = "PyTorch eager reference"
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny ResNet, 64 px (seconds)")
    parser.add_argument("--backbone", default=None,
                        help="ResNet name (default resnet50; --quick: tiny, or 'conv', three "
                        "convolutions, where keras-cv is missing)")
    parser.add_argument("--source", default="auto", choices=["auto", "keras_cv", "applications"],
                        help="where the Keras ResNet comes from (auto: keras-cv if it imports, "
                        "else keras.applications)")
    parser.add_argument("--size", type=int, default=None, help="image size (default 224)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 8)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (median)")
    parser.add_argument("--resolutions", nargs="+", default=["low", "high"], choices=["low", "high"])
    parser.add_argument(
        "--jit", nargs="+", default=None, choices=["off", "on"],
        help="jit_compile values (default: on for JAX (XLA), off for torch, both for "
        "TensorFlow; --quick on TensorFlow: off on CPU, on on GPU)",
    )
    parser.add_argument(
        "--precisions", nargs="+", default=None,
        choices=["float32", "mixed_float16", "mixed_bfloat16"],
        help="Keras policies, each beside its PyTorch counterpart (default: float32 and "
        "mixed_bfloat16 on CPU, mixed_float16 on GPU; --quick: float32)",
    )
    parser.add_argument("--torch-compile", action="store_true",
                        help="on torch, time jit_compile=True (torch.compile)")
    parser.add_argument("--no-reference", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--reference-only", action="store_true",
                        help="(internal) time the PyTorch reference, print JSON")
    args = parser.parse_args(argv)
    if args.reference_only:
        # The reference process imports Keras on torch: no device or backend
        # question to ask here, everything comes from the command line.
        return args
    mixed = "mixed_float16" if device_name() == "GPU" else "mixed_bfloat16"
    defaults = dict(backbone="resnet50", size=224, batch=8, steps=3)
    if args.quick:
        tiny = "tiny" if args.source == "keras_cv" or keras_cv_available() else "conv"
        defaults = dict(backbone=tiny, size=64, batch=2, steps=1)
        if args.precisions is None:
            args.precisions = ["float32"]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.jit is None:
        if BACKEND == "jax":
            args.jit = ["on"]  # JAX with XLA: jit_compile=False runs op by op
        elif BACKEND == "torch":
            args.jit = ["off"] + (["on"] if args.torch_compile else [])
        elif args.quick:
            args.jit = ["on" if device_name() != "CPU" else "off"]
        else:
            args.jit = ["off", "on"]
    args.precisions = args.precisions or ["float32", mixed]
    args.source = backbone_source(args.source)
    return args


# ------------------------------------------------------------------- Keras
def keras_step_time(args, resolution, jit, policy, images, labels):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = classifier(args.backbone, args.size, NUM_CLASSES, n_parts=N_PARTS,
                           resolution=resolution, source=args.source)
        # Under mixed_float16, compile() wraps the optimizer in a
        # LossScaleOptimizer (Keras's counterpart of torch's GradScaler).
        model.compile(
            optimizer=keras.optimizers.SGD(1e-3, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )

        def step():
            loss = model.train_on_batch(images, labels)
            if not np.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {loss}")

        return timed(step, args.steps)
    finally:
        keras.mixed_precision.set_global_policy("float32")


# --------------------------------------------------- PyTorch reference model
def reference_settings(precision):
    """How the PyTorch reference runs beside the Keras policy ``precision``.

    The device is ``cuda`` when ``torch.cuda.is_available()``, else
    ``cpu``. ``float32``: plain float32, NCHW. ``mixed_float16``: what a
    PyTorch user runs on a GPU, ``torch.autocast`` float16, a
    ``torch.amp.GradScaler`` and ``channels_last`` model and data.
    ``mixed_bfloat16``: ``torch.autocast`` bfloat16 and ``channels_last``
    (bfloat16 has float32's range: no scaler).

    Returns:
        dict with ``device`` (``torch.device``), ``autocast`` (a torch
        dtype or ``None``), ``scaler`` (bool), ``channels_last`` (bool) and
        ``label`` (the precision column of the table).
    """
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if precision == "float32":
        return dict(device=device, autocast=None, scaler=False, channels_last=False,
                    label="float32")
    if precision == "mixed_float16":
        return dict(device=device, autocast=torch.float16, scaler=True, channels_last=True,
                    label="amp float16 + GradScaler, channels_last")
    if precision == "mixed_bfloat16":
        return dict(device=device, autocast=torch.bfloat16, scaler=False, channels_last=True,
                    label="amp bfloat16, channels_last")
    raise ValueError(
        "Invalid value for argument precision. Expected 'float32', 'mixed_float16' or "
        f"'mixed_bfloat16'. Received: precision={precision!r}"
    )


def reference_model(backbone, resolution):
    """The classifier in plain PyTorch (float32, on the CPU, training mode)."""
    import torch
    from torch import nn

    class BRNPA(nn.Module):
        def forward(self, x):  # x: (B, C, H, W), the grouping of DESIGN.md 1.1
            flat = x.float().flatten(2).transpose(1, 2)  # (B, N, C); float32 as Keras's head
            norm = flat.norm(dim=-1) + 1e-5
            score, parts = norm, []
            for _ in range(N_PARTS):
                index = score.argmax(dim=1)
                rep = flat[torch.arange(flat.shape[0], device=flat.device), index]  # (B, C)
                rep_norm = norm.gather(1, index[:, None])
                sim = torch.einsum("bnc,bc->bn", flat, rep) / (norm * rep_norm)
                att = sim / sim.sum(dim=1, keepdim=True)
                parts.append(torch.einsum("bn,bnc->bc", att, flat))
                score = (1 - sim) * score
            return torch.cat(parts, dim=1)

    if backbone == "conv":  # _common.conv_backbone; high: the last stride-2 layer at 1
        strides = (2, 1, 1) if resolution == "high" else (2, 2, 1)
        layers, cin = [], 3
        for f, s in zip((16, 32, 64), strides):
            layers += [nn.Conv2d(cin, f, 3, s, padding=1), nn.ReLU()]
            cin = f
        return nn.Sequential(*layers, BRNPA(), nn.Linear(cin * N_PARTS, NUM_CLASSES))

    filters, blocks, block_type = RESNET_CONFIGS[backbone]
    strides = RESOLUTION_STRIDES[resolution]
    expansion = 4 if block_type == "block" else 1

    def conv_bn(cin, cout, k, s):
        return [nn.Conv2d(cin, cout, k, s, padding=k // 2, bias=False), nn.BatchNorm2d(cout, eps=1.001e-5)]

    class Block(nn.Module):
        def __init__(self, cin, f, stride, shortcut):
            super().__init__()
            if block_type == "block":
                layers = conv_bn(cin, f, 1, stride) + [nn.ReLU()] + conv_bn(f, f, 3, 1)
                layers += [nn.ReLU()] + conv_bn(f, 4 * f, 1, 1)
            else:
                layers = conv_bn(cin, f, 3, stride) + [nn.ReLU()] + conv_bn(f, f, 3, 1)
            self.body = nn.Sequential(*layers)
            self.shortcut = nn.Sequential(*conv_bn(cin, f * expansion, 1, stride)) if shortcut else nn.Identity()

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    layers = conv_bn(3, 64, 7, 2) + [nn.ReLU(), nn.MaxPool2d(3, 2, padding=1)]
    cin = 64
    for f, n, s in zip(filters, blocks, strides):
        for i in range(n):
            layers.append(Block(cin, f, s if i == 0 else 1, shortcut=(i == 0)))
            cin = f * expansion
    return nn.Sequential(*layers, BRNPA(), nn.Linear(cin * N_PARTS, NUM_CLASSES))


def torch_reference_step_time(args, resolution, precision, images, labels):
    """Seconds per eager training step of the reference, as ``reference_settings`` says."""
    import torch
    from torch import nn

    settings = reference_settings(precision)
    device = settings["device"]
    memory_format = torch.channels_last if settings["channels_last"] else torch.contiguous_format
    model = reference_model(args.backbone, resolution).to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type) if settings["scaler"] else None
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    x = x.to(device).contiguous(memory_format=memory_format)
    y = torch.from_numpy(labels.astype("int64")).to(device)
    dtype = settings["autocast"]

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss")

    model.train()
    return timed(step, args.steps)


def reference_in_subprocess(args):
    """Run the PyTorch reference in a fresh process.

    TensorFlow, JAX and PyTorch each bring their own thread pools (and GPU
    memory pools); in one process they slow each other down, so the
    reference runs alone.
    """
    command = [
        sys.executable, os.path.abspath(__file__), "--reference-only",
        "--backbone", args.backbone, "--size", str(args.size), "--batch", str(args.batch),
        "--steps", str(args.steps), "--resolutions", *args.resolutions,
        "--precisions", *args.precisions,
    ]
    env = dict(os.environ, KERAS_BACKEND="torch")
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("REFERENCE ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError("the PyTorch reference failed:\n" + proc.stderr[-3000:])
    return json.loads(lines[-1][len("REFERENCE "):])


def reference_main(args):
    rng = np.random.default_rng(0)
    images = rng.random((args.batch, args.size, args.size, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, args.batch)
    rows = []
    for resolution in args.resolutions:
        for precision in args.precisions or ["float32"]:
            settings = reference_settings(precision)
            seconds = torch_reference_step_time(args, resolution, precision, images, labels)
            rows.append(dict(resolution=resolution, precision=precision, label=settings["label"],
                             device=settings["device"].type, seconds=seconds))
    print("REFERENCE " + json.dumps(rows))


# -------------------------------------------------------------------- main
def run(args):
    rng = np.random.default_rng(0)
    images = rng.random((args.batch, args.size, args.size, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, args.batch)
    rows = []  # dict per row
    for resolution in args.resolutions:
        for jit_name in args.jit:
            jit = jit_name == "on"
            for policy in args.precisions:
                row = dict(impl=f"Keras ({BACKEND})", resolution=resolution, jit=jit,
                           precision=policy, policy=policy)
                if BACKEND == "torch" and jit and not args.torch_compile:
                    row["skipped"] = "torch.compile: pass --torch-compile"
                else:
                    row["seconds"] = keras_step_time(args, resolution, jit, policy, images, labels)
                rows.append(row)
    has_torch = importlib.util.find_spec("torch") is not None
    if has_torch and not args.no_reference:
        for ref in reference_in_subprocess(args):
            rows.append(dict(impl=f"{REFERENCE} ({ref['device']})", resolution=ref["resolution"],
                             jit=False, precision=ref["label"], policy=ref["precision"],
                             seconds=ref["seconds"]))
    elif not has_torch:
        rows.append(dict(impl=REFERENCE, resolution="-", jit=False, precision="-", policy="-",
                         skipped="torch is not installed"))
    return rows


def ratios(rows):
    """Per resolution and Keras policy: (resolution, policy, keras row, reference row)."""
    measured = [r for r in rows if "seconds" in r]
    out = []
    for keras_row in measured:
        if not keras_row["impl"].startswith("Keras"):
            continue
        key = (keras_row["resolution"], keras_row["policy"])
        if any((o[0], o[1]) == key for o in out):
            continue
        candidates = [r for r in measured if r["impl"].startswith("Keras")
                      and (r["resolution"], r["policy"]) == key]
        best = min(candidates, key=lambda r: r["seconds"])
        ref = [r for r in measured if r["impl"].startswith(REFERENCE)
               and (r["resolution"], r["policy"]) == key]
        if ref:
            out.append((*key, best, ref[0]))
    return out


def print_table(args, rows):
    print(header(
        "bench_train", backbone=args.backbone, source=args.source, size=args.size,
        batch=args.batch, timed_steps=args.steps, quick=args.quick,
    ))
    print()

    def base_of(row):
        for other in rows:
            if (other["impl"] == row["impl"] and other["jit"] == row["jit"]
                    and other["resolution"] == "low" and other["precision"] == "float32"
                    and "seconds" in other):
                return other["seconds"]
        return None

    table = []
    for row in rows:
        first = (row["impl"], row["resolution"], row["jit"], row["precision"])
        if "seconds" not in row:
            table.append(first + ("skipped", row["skipped"], ""))
            continue
        base = base_of(row)
        rel = f"{row['seconds'] / base:.2f}x" if base else ""
        table.append(first + (sig(row["seconds"]), sig(args.batch / row["seconds"]), rel))
    markdown_table(
        ["implementation", "resolution", "jit_compile", "precision", "s/step", "images/s",
         "vs low float32"],
        table,
    )
    pairs = ratios(rows)
    if pairs:
        print()
        markdown_table(
            ["resolution", "Keras precision", "Keras s/step (jit_compile)", "reference",
             "reference s/step", "Keras / reference"],
            [(res, policy, f"{sig(k['seconds'])} ({k['jit']})", f"{r['impl']}, {r['precision']}",
              sig(r["seconds"]), f"{k['seconds'] / r['seconds']:.2f}x")
             for res, policy, k, r in pairs],
        )


def main(argv=None):
    args = parse_args(argv)
    if args.reference_only:
        reference_main(args)
        return
    print_table(args, run(args))


if __name__ == "__main__":
    main()
