"""keras_brnpa.evaluation.compare_explanations: the methods x metrics table."""

import json
import os

import keras
import numpy as np
import pytest

import keras_brnpa
from keras_brnpa import evaluation
from keras_brnpa import explain
from keras_brnpa import metrics

SIZE = 64


@pytest.fixture(scope="module")
def setup():
    keras.utils.set_random_seed(0)
    models = {
        "brnpa": keras_brnpa.models.build_classifier(
            3, backbone="tiny", head="brnpa", input_shape=(SIZE, SIZE, 3)),
        "cnn": keras_brnpa.models.build_classifier(
            3, backbone="tiny", head="gap", input_shape=(SIZE, SIZE, 3)),
    }
    images, labels, masks = keras_brnpa.datasets.synthetic_parts(4, SIZE, 3, seed=0)
    return models, images.astype("float32"), labels, masks


def test_rows_equal_direct_calls(setup):
    models, images, labels, masks = setup
    report = evaluation.compare_explanations(
        models, images, labels=labels, masks=masks, steps=4,
        class_names=["a", "b", "c"])
    assert [r["method"] for r in report.rows] == ["brnpa: brnpa", "cnn: gradcam"]
    for row, (name, method) in zip(report.rows, [("brnpa", "brnpa"), ("cnn", "gradcam")]):
        model = models[name]
        maps = explain.explain(method, model, images)
        assert row["map_size"] == list(maps.shape[1:3])
        np.testing.assert_allclose(report.maps[row["method"]], maps, rtol=1e-5, atol=1e-7)
        # The report's deletion baseline: each image's own mean colour.
        mean_colour = np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape)
        dauc = metrics.deletion_auc(model, images, maps, steps=4, baseline=mean_colour)
        iauc = metrics.insertion_auc(model, images, maps, steps=4)
        assert row["dauc"] == pytest.approx(dauc.mean(), abs=1e-6)
        assert row["iauc"] == pytest.approx(iauc.mean(), abs=1e-6)
        assert row["sparsity"] == pytest.approx(np.nanmean(metrics.sparsity(maps)), abs=1e-6)
        if method == "brnpa":  # all the parts times the normalised feature norm
            density = metrics.sparsity_density(explain.attention_maps(model, images),
                                               explain.feature_norm_map(model, images))
        else:
            density = metrics.sparsity_density(maps)
        assert row["sparsity_density"] == pytest.approx(density.mean(), abs=1e-6)
        assert row["pointing_game"] == pytest.approx(
            metrics.pointing_game(maps, masks).mean(), abs=1e-9)
        assert row["energy_in_mask"] == pytest.approx(
            np.nanmean(metrics.energy_in_mask(maps, masks)), abs=1e-6)
        predicted = np.asarray(model.predict(images, verbose=0)).argmax(-1)
        assert row["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert report.curves["deletion"]["cnn: gradcam"].shape == (4, 4)
    table = report.to_markdown().splitlines()
    assert table[0].startswith("| method | model | map | accuracy | DAUC")
    assert len(table) == 4 and "cnn: gradcam" in table[3]


def test_save_writes_the_files_and_never_overwrites(setup, tmp_path):
    models, images, labels, masks = setup
    report = evaluation.compare_explanations(
        models["cnn"], images, labels=labels, masks=masks, steps=2,
        methods=["gradcam", ("RISE (16 masks)", models["cnn"].name, "rise", {"n_masks": 16})])
    folder = report.save(tmp_path / "out")
    assert sorted(os.listdir(folder)) == ["curves.png", "gallery.png", "metrics.json", "report.md"]
    data = json.load(open(os.path.join(folder, "metrics.json")))
    assert [r["method"] for r in data["rows"]] == ["gradcam", "RISE (16 masks)"]
    assert data["settings"]["methods"][1]["kwargs"] == {"n_masks": 16}
    assert data["rows"][1]["map_size"] == [SIZE, SIZE]
    text = open(os.path.join(folder, "report.md")).read()
    assert report.to_markdown() in text and "gallery.png" in text
    before = open(os.path.join(folder, "report.md")).read()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        report.save(folder)
    assert open(os.path.join(folder, "report.md")).read() == before
    report.save(folder, overwrite=True)


def test_options_reach_the_method(setup):
    models, images, _, _ = setup
    few = evaluation.compare_explanations(
        models["cnn"], images[:2], methods=["rise"], steps=2, options={"rise": {"n_masks": 4}})
    direct = explain.rise(models["cnn"], images[:2], n_masks=4, seed=0)
    np.testing.assert_allclose(few.maps["rise"], direct, rtol=1e-6)


def test_errors(setup):
    models, images, labels, _ = setup
    compare = evaluation.compare_explanations
    with pytest.raises(ValueError, match="argument models"):
        compare([1, 2], images)
    with pytest.raises(ValueError, match="argument methods"):
        compare(models, images, methods=[])
    with pytest.raises(ValueError, match="argument method"):
        compare(models, images, methods=["nope"])
    with pytest.raises(ValueError, match="argument methods.*model name"):
        compare(models, images, methods=[("x", "missing", "gradcam", {})])
    with pytest.raises(ValueError, match="argument labels"):
        compare(models, images, labels=labels[:2])
    with pytest.raises(ValueError, match="argument steps"):
        compare(models, images, steps=0)
    with pytest.raises(ValueError, match="argument methods.*distinct labels"):
        compare(models, images, methods=[("x", "cnn", "gradcam"), ("x", "cnn", "rise")])
