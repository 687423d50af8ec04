"""The benchmarks' ``--quick`` modes run and print their tables.

Each script runs in a subprocess with the current ``KERAS_BACKEND``; the
checks parse the Markdown table it prints (rows present, times positive,
ratios consistent with the times), not the speed itself: speed targets
are for the full runs, reported in docs/benchmarks.md.
"""

import os
import re
import subprocess
import sys

import keras
import pytest

BACKEND = keras.config.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_benchmark(name, *args):
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    # Smoke runs: one compute thread each. On a busy machine (CI, shared
    # cores) a second spinning thread only adds waiting; speed is not
    # checked here.
    env.update(OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", name), "--quick", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


def table(output, header_start):
    """Rows (lists of cells) of the Markdown table whose header starts so."""
    lines = output.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def number(cell):
    return float(cell.rstrip("x"))


def test_bench_layer_quick():
    out = run_benchmark("bench_layer.py")
    assert f"# bench_layer: backend={BACKEND}" in out
    # The plain gather-per-part implementation agrees with the layer.
    diff = float(re.search(r"max relative difference ([0-9.e+-]+)", out).group(1))
    assert diff < 1e-3
    rows = table(out, "| features")
    heads = [r for r in rows if r[0] == "4x12x12x64"]
    assert [r[1] for r in heads] == ["eager", "compiled"]
    for _, mode, gap, brnpa, gather, vs_gap, vs_gather in heads:
        if mode == "compiled" and BACKEND == "torch":
            assert brnpa == "n/a"  # torch.compile only with --torch-compile
            continue
        gap, brnpa, gather = number(gap), number(brnpa), number(gather)
        assert min(gap, brnpa, gather) > 0
        assert number(vs_gap) == pytest.approx(brnpa / gap, rel=0.05, abs=0.01)
        assert number(vs_gather) == pytest.approx(brnpa / gather, rel=0.05, abs=0.01)
    steps = {r[1]: r for r in rows if "step" in r[0]}
    assert set(steps) == {"gap step", "brnpa step", "brnpa head alone"}
    head_ms = number(steps["brnpa head alone"][3])
    step_ms = number(steps["brnpa step"][3])
    share = float(re.search(r"head share of the step: ([0-9.]+)%", out).group(1))
    assert share == pytest.approx(100 * head_ms / step_ms, rel=0.05, abs=0.1)


def test_bench_explain_quick():
    out = run_benchmark("bench_explain.py")
    assert f"# bench_explain: backend={BACKEND}" in out
    rows = {r[0]: r for r in table(out, "| method")}
    expected = {
        "inference (predict_on_batch)",
        "brnpa maps (attention_model without features)",
        "brnpa maps (attention_model, all outputs)",
        "brnpa maps (explain.attention_maps)",
        "brnpa map (explain.explanation_map)",
        "grad_cam",
        "grad_cam_plus_plus",
        "score_cam",
        "rise",
    }
    # keras_brnpa.explain provides every method: none is reported missing.
    assert "missing from keras_brnpa.explain" not in out
    assert set(rows) == expected
    base = number(rows["inference (predict_on_batch)"][1])
    assert number(rows["inference (predict_on_batch)"][2]) == 1.0
    for name, ms, ratio, _ in rows.values():
        assert number(ms) > 0
        assert number(ratio) == pytest.approx(number(ms) / base, rel=0.05, abs=0.01)
    summary = float(re.search(r"BR-NPA maps vs plain inference: ([0-9.]+)x", out).group(1))
    maps = number(rows["brnpa maps (attention_model without features)"][1])
    assert summary == pytest.approx(maps / base, rel=0.05, abs=0.01)
    # explain/forward: the public calls over one compiled forward pass.
    public = {r[0]: r for r in table(out, "| explain/forward")}
    names = {
        "explain.attention_maps": "brnpa maps (explain.attention_maps)",
        "explain.explanation_map": "brnpa map (explain.explanation_map)",
        "explain.grad_cam": "grad_cam",
    }
    assert set(public) == set(names)
    for name, (_, ratio, verdict) in public.items():
        assert number(ratio) == pytest.approx(number(rows[names[name]][2]), abs=0.011)
        assert verdict == ("met" if number(ratio) <= 1.1 else "MISSED")


def test_bench_train_quick():
    # The PyTorch reference runs in its own process; run it once per suite
    # (on the torch backend) to keep the other backends' suites short.
    extra = () if BACKEND == "torch" else ("--no-reference",)
    out = run_benchmark("bench_train.py", *extra)
    assert f"# bench_train: backend={BACKEND}" in out
    batch = int(re.search(r"batch=(\d+)", out).group(1))
    rows = table(out, "| implementation")
    keras_rows = [r for r in rows if r[0] == f"Keras ({BACKEND})"]
    assert [r[1] for r in keras_rows] == ["low", "high"]
    for impl, resolution, jit, precision, seconds, images_per_s, _ in rows:
        assert precision == "float32"
        assert number(images_per_s) == pytest.approx(batch / number(seconds), rel=0.05, abs=0.1)
    reference = [r for r in rows if r[0] == "PyTorch eager reference"]
    assert len(reference) == (2 if BACKEND == "torch" else 0)
    if reference:
        assert "PyTorch eager reference =" in out


def test_bench_peers_quick():
    # The peers are an optional extra (keras-brnpa[peers]): without them the
    # script still times our side and says which peer it skipped and why.
    out = run_benchmark("bench_peers.py")
    assert f"# bench_peers: backend={BACKEND}" in out
    metrics = table(out, "| metric")
    cams = table(out, "| method")
    assert [r[2] for r in metrics] == [
        "xplique Deletion", "xplique Insertion", "Quantus PixelFlipping"
    ]
    assert [r[2] for r in cams] == ["pytorch-grad-cam ScoreCAM", "pytorch-grad-cam GradCAM"]
    for row in metrics + cams:
        assert number(row[1]) > 0
        if row[3] == "skipped":
            assert row[4] == "n/a"
            peer = row[2].split()[0].lower()
            assert re.search(rf"# skipped peers:.*{peer}[^;]*: (needs|not installed|fails)",
                             out.lower()), out
            continue
        # A peer that ran: the ratio matches the times, the values agree.
        assert number(row[4]) == pytest.approx(number(row[3]) / number(row[1]), rel=0.05, abs=0.01)
        if row in metrics:
            assert float(row[5]) < 1e-5
        else:
            assert float(row[6]) > 0.99  # correlation of the normalised maps
            if row[0] == "grad_cam":
                assert float(row[5]) < 1e-3
