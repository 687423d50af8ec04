"""The example scripts run end to end (``--smoke``) in a fresh process."""

import os
import re
import subprocess
import sys
import zipfile

import pytest

# Scripts in a fresh process: their output does not depend on the backend
# beyond what the library tests check per backend (tests/conftest.py).
pytestmark = pytest.mark.backend_neutral


EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _run(script, tmp_path, *args):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script), "--smoke", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_quickstart_sequential(tmp_path):
    out = _run("quickstart_sequential.py", tmp_path)
    assert "brnpa_attention" in out  # the layer is in the model summary
    assert re.search(r"attention maps: \(8, 8, 8, 3\) each sums to 1: True", out), out
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert 0.0 <= accuracy <= 1.0


def test_train_then_distill_cub(tmp_path):
    out = _run("train_cub.py", tmp_path, "--output", "teacher")
    teacher = tmp_path / "teacher" / "model.keras"
    assert teacher.exists() and zipfile.is_zipfile(teacher)
    assert not (tmp_path / "teacher" / "backup").exists()  # finished: backup removed
    out = _run("distill_cub.py", tmp_path, "--output", "student")
    teacher_shape = re.search(r"teacher feature map: \((\d+), (\d+), (\d+)\)", out).groups()
    student_shape = re.search(r"student feature map: \((\d+), (\d+), (\d+)\)", out).groups()
    # The high-resolution student: 4x larger feature map per side, same channels.
    assert int(student_shape[0]) == 4 * int(teacher_shape[0])
    assert int(student_shape[1]) == 4 * int(teacher_shape[1])
    assert student_shape[2] == teacher_shape[2]
    assert zipfile.is_zipfile(tmp_path / "student" / "model.keras")


def test_compare_explanations(tmp_path):
    out = _run("compare_explanations.py", tmp_path, "--output", "gallery.png")
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[0] in ("BR-NPA", "Grad-CAM", "Grad-CAM++", "Score-CAM", "RISE"):
            rows[parts[0]] = [float(v) for v in parts[1:]]
    assert set(rows) == {"BR-NPA", "Grad-CAM", "Grad-CAM++", "Score-CAM", "RISE"}, out
    for dauc, iauc, sparsity, pointing, energy in rows.values():
        assert 0 <= dauc <= 1 and 0 <= iauc <= 1 and 0 <= pointing <= 1
        assert sparsity >= 1  # max / mean of a non-negative map
    assert (tmp_path / "gallery.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("script", sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py")))
def test_every_example_has_a_smoke_flag(script):
    with open(os.path.join(EXAMPLES, script)) as f:
        assert "--smoke" in f.read(), f"{script} has no --smoke flag for the tests"


def _results(out):
    """``{head: {key: float}}`` from the ``RESULT head=... key=value`` lines."""
    rows = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            fields = dict(item.split("=", 1) for item in line.split()[1:])
            head = fields.pop("head")
            rows[head] = {key: float(value) for key, value in fields.items()}
    return rows


def test_reid_synthetic(tmp_path):
    out = _run("reid_synthetic.py", tmp_path, "--output", "reid")
    rows = _results(out)
    assert set(rows) == {"brnpa", "gap"}, out
    for values in rows.values():
        assert set(values) == {"untrained_rank1", "untrained_mAP", "rank1", "mAP"}
        assert all(0.0 <= v <= 1.0 for v in values.values())
    assert (tmp_path / "reid" / "retrieval.png").read_bytes()[:4] == b"\x89PNG"


def test_fewshot_synthetic(tmp_path):
    out = _run("fewshot_synthetic.py", tmp_path, "--output", "fewshot")
    rows = _results(out)
    assert set(rows) == {"brnpa", "gap"}, out
    for values in rows.values():
        assert 0.0 <= values["accuracy_1shot"] <= 1.0 and 0.0 <= values["ci95_1shot"] < 0.5
        assert 0.0 <= values["accuracy_5shot"] <= 1.0
    assert re.search(r"brnpa +0\.\d{3} \+- 0\.\d{3}", out), out
    assert (tmp_path / "fewshot" / "retrieval.png").read_bytes()[:4] == b"\x89PNG"
