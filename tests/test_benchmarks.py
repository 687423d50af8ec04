"""The benchmarks' ``--quick`` modes run and print their tables.

Each script runs in a subprocess with the current ``KERAS_BACKEND``; the
checks parse the Markdown table it prints (rows present, times positive,
ratios consistent with the times), not the speed itself: speed targets
are for the full runs, reported in docs/benchmarks.md.
"""

import importlib
import os
import re
import subprocess
import sys
from unittest import mock

import keras
import numpy as np
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
        "hires_cam",
        "xgrad_cam",
        "layer_cam",
        "score_cam",
        "rise",
        "saliency",
        "smooth_grad",
        "integrated_gradients",
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
        "explain.hires_cam": "hires_cam",
        "explain.xgrad_cam": "xgrad_cam",
        "explain.layer_cam": "layer_cam",
    }
    assert set(public) == set(names)
    for name, (_, ratio, verdict) in public.items():
        assert number(ratio) == pytest.approx(number(rows[names[name]][2]), abs=0.011)
        # The verdict is taken on the unrounded ratio: at the printed 1.10x
        # either verdict is consistent (1.1049 prints as 1.10 and misses).
        if abs(number(ratio) - 1.1) > 0.005:
            assert verdict == ("met" if number(ratio) <= 1.1 else "MISSED")
        else:
            assert verdict in ("met", "MISSED")


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
    # JAX always with XLA, torch eagerly.
    if BACKEND == "jax":
        assert {r[2] for r in keras_rows} == {"True"}
    if BACKEND == "torch":
        assert {r[2] for r in keras_rows} == {"False"}
    for impl, resolution, jit, precision, seconds, images_per_s, _ in rows:
        assert precision == "float32"
        assert number(images_per_s) == pytest.approx(batch / number(seconds), rel=0.05, abs=0.1)
    reference = [r for r in rows if r[0] == "PyTorch eager reference (cpu)"]
    assert len(reference) == (2 if BACKEND == "torch" else 0)
    if reference:
        # Keras / reference per resolution and precision, from the times above.
        ratios = table(out, "| resolution")
        assert [(r[0], r[1]) for r in ratios] == [("low", "float32"), ("high", "float32")]
        for res, _, keras_cell, _, ref_cell, ratio in ratios:
            keras_s = min(number(r[4]) for r in keras_rows if r[1] == res)
            ref_s = number(next(r[4] for r in reference if r[1] == res))
            assert number(keras_cell.split()[0]) == keras_s
            assert number(ref_cell) == ref_s
            assert number(ratio) == pytest.approx(keras_s / ref_s, rel=0.05, abs=0.01)


def import_benchmark(name):
    folder = os.path.join(ROOT, "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


@pytest.mark.parametrize("cuda", [True, False])
def test_bench_train_reference_device(cuda):
    """The PyTorch reference trains on the GPU when torch sees one."""
    torch = pytest.importorskip("torch")
    bench_train = import_benchmark("bench_train")
    expected = "cuda" if cuda else "cpu"
    with mock.patch.object(torch.cuda, "is_available", return_value=cuda):
        plain = bench_train.reference_settings("float32")
        amp = bench_train.reference_settings("mixed_float16")
        bf16 = bench_train.reference_settings("mixed_bfloat16")
    assert plain["device"] == torch.device(expected)
    assert (plain["autocast"], plain["scaler"], plain["channels_last"]) == (None, False, False)
    # What a PyTorch user runs: float16 autocast, a GradScaler, channels_last.
    assert amp["device"] == torch.device(expected)
    assert (amp["autocast"], amp["scaler"], amp["channels_last"]) == (torch.float16, True, True)
    assert (bf16["autocast"], bf16["scaler"]) == (torch.bfloat16, False)
    with pytest.raises(ValueError, match="precision"):
        bench_train.reference_settings("float16")


def test_bench_train_reference_moves_model_and_data():
    """With CUDA reported, the model and both tensors are sent to ``cuda``.

    ``Module.to`` / ``Tensor.to`` are recorded and left on the CPU (there
    is no GPU here), so the step itself still runs.
    """
    torch = pytest.importorskip("torch")
    bench_train = import_benchmark("bench_train")
    module_to, tensor_to = torch.nn.Module.to, torch.Tensor.to
    moved = []

    def record_module(self, *args, **kwargs):
        moved.append(("model", args[0] if args else kwargs.get("device"), kwargs.get("memory_format")))
        return module_to(self, *args[1:], **kwargs) if len(args) > 1 else module_to(
            self, memory_format=kwargs.get("memory_format", torch.preserve_format))

    def record_tensor(self, *args, **kwargs):
        if args and isinstance(args[0], torch.device):
            moved.append(("tensor", args[0], None))
            return self
        return tensor_to(self, *args, **kwargs)

    args = bench_train.parse_args(["--reference-only", "--backbone", "conv", "--size", "16",
                                   "--batch", "2", "--steps", "1"])
    images = np.zeros((2, 16, 16, 3), "float32")
    labels = np.array([0, 1])
    with mock.patch.object(torch.cuda, "is_available", return_value=True), \
            mock.patch.object(torch.cuda, "synchronize"), \
            mock.patch.object(torch.nn.Module, "to", record_module), \
            mock.patch.object(torch.Tensor, "to", record_tensor):
        seconds = bench_train.torch_reference_step_time(args, "low", "mixed_float16", images, labels)
    assert seconds > 0
    cuda = torch.device("cuda")
    assert ("model", cuda, torch.channels_last) in moved
    assert [m for m in moved if m[0] == "tensor"] == [("tensor", cuda, None)] * 2


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
    assert [r[2] for r in cams] == ["pytorch-grad-cam ScoreCAM", "pytorch-grad-cam GradCAM",
                                    "pytorch-grad-cam HiResCAM", "pytorch-grad-cam XGradCAM",
                                    "pytorch-grad-cam LayerCAM"]
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
    # ROAD: the imputation and ROAD with each side's defaults are timed; with
    # the peer, two more rows (noise 0, the same pixels) must agree closely.
    road = table(out, "| check")
    assert [r[0].split(",")[0].split(" (")[0] for r in road[:3]] == [
        "noisy_linear_impute", "road MoRF", "road LeRF"]
    for row in road[:3]:
        assert number(row[1]) > 0
    if road[0][3] == "skipped":
        assert len(road) == 3
        why = r"pytorch-grad-cam \(road\): (needs|not installed|fails)"
        assert re.search(r"# skipped peers:.*" + why, out.lower()), out
    else:
        assert len(road) == 5 and float(road[0][5]) < 1e-5
        assert all(float(row[5]) < 1e-5 for row in road[3:])


def test_bench_peers_torchvision_stand_in(monkeypatch):
    # Where torchvision does not import, pytorch-grad-cam gets a stand-in
    # holding the names it imports, each raising when called.
    monkeypatch.setenv("TQDM_DISABLE", "1")
    bench_peers = import_benchmark("bench_peers")
    saved = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "torchvision"}
    for name in saved:
        del sys.modules[name]
    sys.modules["torchvision"] = None  # "import torchvision" raises ImportError
    try:
        note = bench_peers.torchvision_stand_in()
        assert note.startswith("torchvision stand-in: the real one does not import (")
        assert "Error: " in note  # the import's error, named
        import torchvision
        from torchvision.transforms import Compose
        from torchvision.transforms.functional import resize

        assert torchvision.__stand_in__
        for name in ("Compose", "Normalize", "ToTensor"):
            assert hasattr(torchvision.transforms, name)
        for function in (Compose, resize, torchvision.ops.box_iou):
            with pytest.raises(RuntimeError, match="was called, but torchvision is bench_peers"):
                function([])
        assert bench_peers.torchvision_stand_in() is None  # installed: imports now
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_gpu_check_allow_cpu_quick(tmp_path):
    """benchmarks/gpu_check.sh end to end on the CPU (ALLOW_CPU=1, QUICK=1).

    Run once per suite, under the torch backend (the script sets
    KERAS_BACKEND itself for each backend of BACKENDS).
    """
    if BACKEND != "torch":
        pytest.skip("runs once per suite, under the torch backend")
    pytest.importorskip("torch")
    env = dict(os.environ, ALLOW_CPU="1", QUICK="1", BACKENDS="torch", PYTHON=sys.executable,
               OUT_DIR=str(tmp_path), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "--- torch: no GPU visible to torch, running on CPU anyway (ALLOW_CPU=1)" in proc.stdout
    rows = table(proc.stdout, "| backend")
    assert [(r[0], r[1]) for r in rows] == [
        ("torch", "bench_train (jit_compile=off)"),
        ("torch", "bench_explain (explain/forward)"),
        ("torch", "tests/test_brnpa_attention.py"),
    ]
    assert all(r[2].startswith("ok, ") for r in rows), rows
    assert "Keras (torch)" in rows[0][3]
    assert re.search(r"explain\.grad_cam [0-9.]+x", rows[1][3])
    assert re.search(r"\d+ passed", rows[2][3]) and "failed" not in rows[2][3]
    summary = (tmp_path / "summary.md").read_text()
    assert summary.splitlines()[1] == "| backend | check | result | detail |"
    assert {"torch_train.log", "torch_explain.log", "torch_tests.log"} <= {
        p.name for p in tmp_path.iterdir()}


@pytest.mark.skipif(BACKEND == "jax", reason="XLA compiles each of the 3 models' training, "
                    "prediction, maps and IAUC: 74 s on the CPU against 9 s on TensorFlow "
                    "and torch, for a script that does not depend on the backend")
def test_study_distill_quick(capsys):
    # In-process (no second interpreter): one step per model, eager.
    study = import_benchmark("study_distill")
    study.main(["--quick"])
    rows = table(capsys.readouterr().out, "| data | model")
    assert [row[1].split(",")[0] for row in rows] == [
        "teacher", "direct", "student from teacher"]
    for row in rows:
        assert row[0] == "parts"
        for cell in row[3:]:  # accuracy, pointing (box, pixels), energy, IAUC: fractions
            assert 0.0 <= float(cell) <= 1.0
    # Costs in high-resolution epochs: the teacher's epoch counts 1 / 1.2,
    # a student's 1 + 1 / (3 * 1.2) plus the teacher's.
    assert [float(row[2]) for row in rows] == [
        round(1 / 1.2, 1), 1.0, round(1 / 1.2 + 1 + 1 / 3.6, 1)]
    with pytest.raises(ValueError, match="--students"):
        study.parse_student("teacher:1:0.1")
    # A plain fifth field is attention transfer; key=value fields the rest.
    start, t, alpha, epochs, options = study.parse_student("teacher:1:0:2:0.5:lr=3e-3:parts=0.1")
    assert (start, t, alpha, epochs) == ("teacher", 1.0, 0.0, 2)
    assert options == {"lr": 3e-3, "at": 0.5, "energy": 0.0, "maps": 0.0, "parts": 0.1}
    for bad in ("teacher:1:0:2:depth=1", "teacher:1:0:2:0.1:0.2", "teacher:1:0:x"):
        with pytest.raises(ValueError, match="--students"):
            study.parse_student(bad)
    # --pretrain DATA:RESOLUTION:EPOCHS (a stand-in for a pretrained backbone).
    assert study.parse_args(["--pretrain", "clutter:high:4"]).pretrain == ("clutter", "high", 4)
    for bad in ("clutter:high", "imagenet:low:1", "clutter:mid:1", "clutter:low:0"):
        with pytest.raises(SystemExit):
            study.parse_args(["--pretrain", bad])
    assert capsys.readouterr().err.count("--pretrain: expected DATA:RESOLUTION:EPOCHS") == 4
    # The feature terms' distance against NumPy: || s/|s| - t/|t| ||^2, mean over the rest.
    rng = np.random.default_rng(0)
    s, t = rng.random((3, 2, 5)).astype("float32"), rng.random((3, 2, 5)).astype("float32")
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(
        float(study.normalized_distance(s, t)),
        np.mean(np.sum((unit(s) - unit(t)) ** 2, axis=-1)), rtol=1e-5)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the script trains through Keras's fit, "
                    "the same on every backend; its eager quick run costs 4 s on torch and "
                    "28 s on JAX against 2 s on TensorFlow")
def test_study_bcnn_quick_curve(capsys):
    # In-process, one eager epoch of the B-CNN with the curve and dropout.
    study = import_benchmark("study_bcnn")
    study.main(["--quick", "--curve", "--models", "bcnn", "--bcnn-scale", "auto",
                "--bcnn-dropout", "0.5"])
    out = capsys.readouterr().out
    curve = re.search(r"test accuracy per epoch \(bcnn, seed 0\): ([\d. ]+)", out).group(1)
    final = re.search(r"RESULT model=bcnn lr=0.003 seed=0 accuracy=([\d.]+)", out).group(1)
    # The last epoch's score of the test images is the accuracy the study reports.
    assert len(curve.split()) == 1 and abs(float(curve) - float(final)) < 1e-3
    assert "dropout 0.5" in table(out, "| model")[0][0]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="building the models costs 11 s on JAX "
                    "and 3 s on torch against 0.3 s on TensorFlow; the order in which Keras "
                    "makes the weights does not depend on the backend (passed on all three)")
def test_study_bcnn_dropout_keeps_initial_weights():
    # --bcnn-dropout sets the rate and leaves the initial weights as without it.
    study = import_benchmark("study_bcnn")
    weights = []
    for rate in ("0", "0.5"):
        args = study.parse_args(["--quick", "--bcnn-dropout", rate])
        keras.utils.set_random_seed(3)
        model = study.build("bcnn", 4, 32, "low", "conv", args)
        assert model.get_layer("dropout").rate == float(rate)
        weights.append([keras.ops.convert_to_numpy(w) for w in model.weights])
    assert len(weights[0]) == len(weights[1])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
