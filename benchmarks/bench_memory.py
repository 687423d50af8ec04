"""Peak memory of ``compare_explanations`` for 200 vs 2,000 images of 64 px.

``compare_explanations`` explains and scores the images in chunks, so its
memory should not grow with their number beyond the per-image values and
the curves (target: the peak RSS for 2,000 images at most 1.2x that for
200). Each size runs in a fresh child process (the peak RSS of a process,
``resource.getrusage(RUSAGE_SELF).ru_maxrss``, only grows), in two input
forms:

- ``batches``: a generator of 32-image batches, so the images are never all
  in memory (what the target is about);
- ``array``: one ``(n, 64, 64, 3)`` float32 array the caller holds (2,000
  images are 98 MB of the caller's own memory, counted in the peak).

The model is the tiny classifier of the package (BR-NPA head), the methods
its own maps and Grad-CAM, 8 deletion/insertion steps; the report keeps the
maps of ``keep_maps=64`` images for the gallery.

    KERAS_BACKEND=jax python benchmarks/bench_memory.py            # 200 vs 2,000
    KERAS_BACKEND=jax python benchmarks/bench_memory.py --quick    # 20 vs 200
"""

import argparse
import json
import os
import resource
import subprocess
import sys

import _common

SIZE = 64
BATCH = 32


def _images(n, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    for start in range(0, n, BATCH):
        k = min(BATCH, n - start)
        yield rng.random((k, SIZE, SIZE, 3), dtype="float32"), rng.integers(0, 3, k)


def child(n, form):
    """Run one comparison and print its peak RSS (MB) as JSON."""
    import time

    import keras
    import numpy as np

    import keras_brnpa

    keras.utils.set_random_seed(0)
    model = keras_brnpa.models.build_classifier(3, backbone="tiny", head="brnpa",
                                                input_shape=(SIZE, SIZE, 3))
    if form == "array":
        parts = list(_images(n))
        images = np.concatenate([x for x, _ in parts])
        labels = np.concatenate([y for _, y in parts])
        del parts
        kwargs = {"labels": labels}
    else:
        images, kwargs = _images(n), {}
    tick = time.perf_counter()
    report = keras_brnpa.evaluation.compare_explanations(
        model, images, methods=["brnpa", "gradcam"], steps=8, batch_size=BATCH,
        keep_maps=64, **kwargs)
    seconds = time.perf_counter() - tick
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    print(json.dumps({"n": report.rows[0]["n"], "form": form, "peak_mb": peak,
                      "seconds": seconds}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 vs 200 images")
    parser.add_argument("--child", nargs=2, metavar=("N", "FORM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1])
        return
    small, large = (20, 200) if args.quick else (200, 2000)
    print(_common.header("bench_memory", small=small, large=large, image_size=SIZE))
    rows = []
    for form in ("batches", "array"):
        peaks = {}
        for n in (small, large):
            result = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", str(n), form],
                capture_output=True, text=True, check=True)
            peaks[n] = json.loads(result.stdout.strip().splitlines()[-1])
        ratio = peaks[large]["peak_mb"] / peaks[small]["peak_mb"]
        rows.append([form, f"{peaks[small]['peak_mb']:.0f}", f"{peaks[large]['peak_mb']:.0f}",
                     f"{ratio:.2f}x", "yes" if ratio <= 1.2 else "no",
                     f"{peaks[small]['seconds']:.1f}", f"{peaks[large]['seconds']:.1f}"])
    _common.print_table(
        ["input", f"peak RSS {small} images (MB)", f"peak RSS {large} images (MB)", "ratio",
         "<= 1.2x", f"seconds ({small})", f"seconds ({large})"], rows)


if __name__ == "__main__":
    main()
