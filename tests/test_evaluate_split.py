"""``brnpa evaluate --data``: held-out images by default, the split named, a
stratified sample (issue "Verdicts a user can trust", part 3)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import keras_brnpa
from keras_brnpa import cli
from keras_brnpa import evaluation

NAMES = ["elm", "oak", "yew"]
SEED, FRACTION = 7, 0.25


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A 3-class folder of 36 images, an untrained model and the run.json a
    training run on it with seed 7 and a 25 % validation split records."""
    root = tmp_path_factory.mktemp("split")
    pictures, labels, _ = keras_brnpa.datasets.synthetic_parts(36, 64, 3, seed=0)
    labels = np.arange(36) % 3  # 12 per class
    for i, (picture, label) in enumerate(zip(pictures, labels)):
        path = root / "data" / NAMES[label] / f"{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((picture * 255).round().astype("uint8")).save(path)
    keras.utils.set_random_seed(0)
    model = keras_brnpa.models.build_classifier(3, backbone="tiny", head="gap",
                                                input_shape=(64, 64, 3))
    os.makedirs(root / "run")
    model.save(root / "run" / "model.keras")
    (root / "run" / "run.json").write_text(json.dumps({
        "class_names": NAMES,
        "config": {"data": str(root / "data"), "seed": SEED, "validation_split": FRACTION}}))
    return root


def _keras_split(root, subset):
    """The files of a subset as Keras itself splits the folder (what ``brnpa train`` uses)."""
    data = keras.utils.image_dataset_from_directory(
        root / "data", image_size=(64, 64), batch_size=None, shuffle=True, seed=SEED,
        validation_split=FRACTION, subset=subset, verbose=False)
    return sorted(os.path.relpath(p, root / "data") for p in data.file_paths)


@pytest.mark.backend_neutral  # the CLI's output and files (tests/conftest.py)
def test_validation_split_by_default_in_a_real_process(folder):
    out = folder / "report"
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from keras_brnpa.cli import main; "
         "sys.exit(main(sys.argv[1:]))", "evaluate", "--model",
         str(folder / "run" / "model.keras"), "--data", str(folder / "data"), "--steps", "2",
         "--num-images", "6", "--seed", "3", "--quiet", "--output", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "metrics.json").read_text())
    source = data["source"]
    assert source["split"] == "validation" and "run.json" in source["split_detail"]
    held_out = _keras_split(folder, "validation")
    assert len(held_out) == 9
    files = source["files"]
    assert len(files) == 6 and set(files) <= set(held_out)
    assert not set(files) & set(_keras_split(folder, "training"))
    # Stratified: every class of the split, in proportion (3 x 2 here).
    classes = [path.split(os.sep)[0] for path in files]
    counts = {name: classes.count(name) for name in NAMES}
    split_counts = {name: [p.split(os.sep)[0] for p in held_out].count(name) for name in NAMES}
    assert all(counts[name] >= 1 for name in NAMES if split_counts[name]), counts
    assert data["rows"][0]["n"] == 6 and len(data["per_image"]["gradcam"]["dauc"]) == 6
    text = (out / "report.md").read_text()
    assert "split: **validation**" in text and files[0] in text


def test_train_and_all_splits(folder, capsys):
    argv = ["evaluate", "--model", str(folder / "run" / "model.keras"), "--data",
            str(folder / "data"), "--steps", "2", "--quiet", "--methods", "gradcam"]
    for split, expected in (("train", _keras_split(folder, "training")),
                            ("all", sorted(os.path.relpath(os.path.join(d, f), folder / "data")
                                           for d, _, fs in os.walk(folder / "data")
                                           for f in fs))):
        out = folder / f"report_{split}"
        assert cli.main(argv + ["--split", split, "--output", str(out)]) == 0, \
            capsys.readouterr().err
        source = json.loads((out / "metrics.json").read_text())["source"]
        assert source["split"] == split
        assert sorted(source["files"]) == expected


def test_no_recorded_split_is_an_error(folder, tmp_path, capsys):
    run = tmp_path / "run"
    os.makedirs(run)
    os.link(folder / "run" / "model.keras", run / "model.keras")
    (run / "run.json").write_text(json.dumps({"config": {
        "data": str(folder / "data"), "seed": 0, "validation_split": 0}}))
    code = cli.main(["evaluate", "--model", str(run / "model.keras"), "--data",
                     str(folder / "data"), "--quiet"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR and "--split validation" in err and "--split all" in err


def test_stratified_sample():
    labels = np.repeat([0, 1, 2, 3], [50, 30, 15, 5])
    sample = evaluation.stratified_sample(labels, 20, seed=0)
    assert len(sample) == 20 and len(set(sample.tolist())) == 20
    np.testing.assert_array_equal(np.bincount(labels[sample]), [10, 6, 3, 1])
    np.testing.assert_array_equal(sample, evaluation.stratified_sample(labels, 20, seed=0))
    assert not np.array_equal(sample, evaluation.stratified_sample(labels, 20, seed=1))
    # Fewer than proportional for a small class: still one of each.
    small = evaluation.stratified_sample(labels, 5, seed=0)
    assert sorted(set(labels[small].tolist())) == [0, 1, 2, 3]
    assert len(evaluation.stratified_sample(labels, 500)) == 100
    with pytest.raises(ValueError, match="argument num_images"):
        evaluation.stratified_sample(labels, 0)
    with pytest.raises(ValueError, match="argument labels"):
        evaluation.stratified_sample(np.ones(3), 2)
