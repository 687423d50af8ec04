#!/usr/bin/env python
"""Training throughput (images/s) of a ResNet + BR-NPA classifier.

For the current ``KERAS_BACKEND``, times ``train_on_batch`` (SGD with
momentum, cross-entropy) of ``keras_brnpa.models.build_classifier`` at low
and high resolution (stages 3-4 at stride 1), with ``jit_compile`` off and
on, and in float32 and mixed precision (``mixed_float16`` on GPUs,
``mixed_bfloat16`` on CPUs, where float16 arithmetic is emulated). When
PyTorch is installed, also times a reference implementation of the same
model written in plain PyTorch below (torchvision-style ResNet v1, the
BR-NPA grouping, a linear layer), trained eagerly: the authors' framework.

On torch, ``jit_compile=True`` means ``torch.compile`` and is only timed
with ``--torch-compile`` (it needs a C++ toolchain and minutes on CPU).

Prints one Markdown table: implementation, resolution, jit_compile,
precision, seconds per step, images/s, and the ratio to the Keras
low-resolution float32 row with the same ``jit_compile``; then the
high/low and Keras/PyTorch ratios.

Usage::

    KERAS_BACKEND=torch python benchmarks/bench_train.py
    KERAS_BACKEND=jax python benchmarks/bench_train.py --quick
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

from _common import BACKEND
from _common import classifier
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny ResNet, 64 px (seconds)")
    parser.add_argument("--backbone", default=None, help="ResNet name (default resnet50)")
    parser.add_argument("--size", type=int, default=None, help="image size (default 224)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 8)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (median)")
    parser.add_argument("--resolutions", nargs="+", default=["low", "high"], choices=["low", "high"])
    parser.add_argument(
        "--jit", nargs="+", default=None, choices=["off", "on"],
        help="jit_compile values (default both; --quick: the device default, "
        "on for JAX, off elsewhere on CPU)",
    )
    parser.add_argument(
        "--precisions", nargs="+", default=None,
        help="float32 and/or a mixed policy (default: float32 and mixed_bfloat16 "
        "on CPU, mixed_float16 on GPU)",
    )
    parser.add_argument("--torch-compile", action="store_true",
                        help="on torch, time jit_compile=True (torch.compile)")
    parser.add_argument("--no-reference", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--reference-only", action="store_true",
                        help="(internal) time the PyTorch reference, print JSON")
    args = parser.parse_args(argv)
    mixed = "mixed_float16" if device_name() == "GPU" else "mixed_bfloat16"
    defaults = dict(backbone="resnet50", size=224, batch=8, steps=3)
    if args.quick:
        defaults = dict(backbone="tiny", size=64, batch=2, steps=1)
        if args.jit is None:
            args.jit = ["on" if BACKEND == "jax" or device_name() != "CPU" else "off"]
        if args.precisions is None:
            args.precisions = ["float32"]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.jit = args.jit or ["off", "on"]
    args.precisions = args.precisions or ["float32", mixed]
    return args


# ------------------------------------------------------------------- Keras
def keras_step_time(args, resolution, jit, policy, images, labels):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = classifier(
            args.backbone, args.size, NUM_CLASSES, n_parts=N_PARTS, resolution=resolution
        )
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
def torch_reference_step_time(args, resolution, images, labels):
    """Same architecture in plain PyTorch, trained eagerly in float32."""
    import torch
    from torch import nn

    filters, blocks, block_type = RESNET_CONFIGS[args.backbone]
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

    class BRNPA(nn.Module):
        def forward(self, x):  # x: (B, C, H, W), the grouping of DESIGN.md 1.1
            flat = x.flatten(2).transpose(1, 2)  # (B, N, C)
            norm = flat.norm(dim=-1) + 1e-5
            score, parts = norm, []
            for _ in range(N_PARTS):
                index = score.argmax(dim=1)
                rep = flat[torch.arange(flat.shape[0]), index]  # (B, C)
                rep_norm = norm.gather(1, index[:, None])
                sim = torch.einsum("bnc,bc->bn", flat, rep) / (norm * rep_norm)
                att = sim / sim.sum(dim=1, keepdim=True)
                parts.append(torch.einsum("bn,bnc->bc", att, flat))
                score = (1 - sim) * score
            return torch.cat(parts, dim=1)

    layers = conv_bn(3, 64, 7, 2) + [nn.ReLU(), nn.MaxPool2d(3, 2, padding=1)]
    cin = 64
    for f, n, s in zip(filters, blocks, strides):
        for i in range(n):
            layers.append(Block(cin, f, s if i == 0 else 1, shortcut=(i == 0)))
            cin = f * expansion
    model = nn.Sequential(*layers, BRNPA(), nn.Linear(cin * N_PARTS, NUM_CLASSES))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(labels.astype("int64"))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss")

    model.train()
    return timed(step, args.steps)


def reference_in_subprocess(args):
    """Run the PyTorch reference in a fresh process.

    TensorFlow, JAX and PyTorch each bring their own thread pools; in one
    process they slow each other down, so the reference runs alone.
    """
    command = [
        sys.executable, os.path.abspath(__file__), "--reference-only",
        "--backbone", args.backbone, "--size", str(args.size), "--batch", str(args.batch),
        "--steps", str(args.steps), "--resolutions", *args.resolutions,
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
    result = {r: torch_reference_step_time(args, r, images, labels) for r in args.resolutions}
    print("REFERENCE " + json.dumps(result))


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
                row = dict(impl=f"Keras ({BACKEND})", resolution=resolution, jit=jit, precision=policy)
                if BACKEND == "torch" and jit and not args.torch_compile:
                    row["skipped"] = "torch.compile: pass --torch-compile"
                else:
                    row["seconds"] = keras_step_time(args, resolution, jit, policy, images, labels)
                rows.append(row)
    has_torch = importlib.util.find_spec("torch") is not None
    if has_torch and not args.no_reference:
        for resolution, seconds in reference_in_subprocess(args).items():
            rows.append(dict(impl="PyTorch eager reference", resolution=resolution, jit=False,
                             precision="float32", seconds=seconds))
    elif not has_torch:
        rows.append(dict(impl="PyTorch eager reference", resolution="-", jit=False,
                         precision="-", skipped="torch is not installed"))
    return rows


def print_table(args, rows):
    print(header(
        "bench_train", backbone=args.backbone, size=args.size, batch=args.batch,
        timed_steps=args.steps, quick=args.quick,
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
    print()
    measured = [r for r in rows if "seconds" in r]
    for resolution in args.resolutions:
        keras_rows = [r for r in measured if r["impl"].startswith("Keras") and r["resolution"] == resolution
                      and r["precision"] == "float32"]
        ref = [r for r in measured if r["impl"].startswith("PyTorch") and r["resolution"] == resolution]
        if keras_rows and ref:
            best = min(keras_rows, key=lambda r: r["seconds"])
            print(f"{resolution} resolution: fastest Keras float32 step (jit_compile={best['jit']}) / "
                  f"PyTorch eager reference = {best['seconds'] / ref[0]['seconds']:.2f}x")


def main(argv=None):
    args = parse_args(argv)
    if args.reference_only:
        reference_main(args)
        return
    print_table(args, run(args))


if __name__ == "__main__":
    main()
