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
    assert table[0].startswith("| method | model | map | n | accuracy | DAUC")
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


def test_chosen_metrics_equal_direct_calls(setup, tmp_path):
    """``metrics=`` picks the columns; DC/IC and ROAD equal direct calls per image."""
    _, images, _, _ = setup
    model = keras.Sequential([keras.Input((32, 32, 3)),  # 32 px: tiny
                              keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    x = np.ascontiguousarray(images[:2, ::2, ::2])
    road = {"fractions": [0.3, 0.6], "noise": 0.02}
    report = evaluation.compare_explanations(
        model, x, methods=["eigencam", "ablationcam"], steps=3, seed=2,
        metrics=["road_lerf", "dcic", "dauc", "road"], metric_options={"road": road})
    values = report.per_image["eigencam"]
    assert list(values) == ["dauc", "dc", "ic", "road", "road_lerf"]  # COLUMNS order
    assert np.isfinite(values["road"]).all() and np.isfinite(values["dc"]).all()
    maps = report.maps["eigencam"]
    mean_colour = np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape)
    dc = metrics.deletion_correlation(model, x, maps, steps=3, baseline=mean_colour)
    ic = metrics.insertion_correlation(model, x, maps, steps=3)
    dauc = metrics.deletion_auc(model, x, maps, steps=3, baseline=mean_colour)
    for key, direct in (("dc", dc), ("ic", ic), ("dauc", dauc)):
        np.testing.assert_allclose(values[key], direct, rtol=1e-5, atol=1e-6)
    for key, order in (("road", "morf"), ("road_lerf", "lerf")):
        direct = metrics.road(model, x, maps, order=order, seed=2, **road)
        np.testing.assert_allclose(values[key], direct, rtol=1e-5, atol=1e-6)
    row = report.rows[0]
    assert row["n"] == 2 and "iauc" not in row and "sparsity" not in row
    assert row["road"] == pytest.approx(values["road"].mean())
    assert row["road_ci95"] == evaluation.bootstrap_ci(values["road"], seed=2)
    other = report.per_image["ablationcam"]["road"]
    assert report.compare("eigencam", "ablationcam", "road")["difference"] == pytest.approx(
        np.mean(values["road"] - other))
    assert report.settings["road"] == road and report.settings["metrics"] == [
        "dauc", "dcic", "road", "road_lerf"]
    assert list(report.curves) == ["deletion", "insertion"]  # DC/IC's curves, t = 0 left out
    assert report.curves["deletion"]["eigencam"].shape == (2, 3)
    header = report.to_markdown().splitlines()[0]
    assert "| DC (higher better) | IC (higher better) | ROAD MoRF (lower better) |" in header
    folder = report.save(tmp_path / "out")
    text = open(os.path.join(folder, "report.md")).read()
    for line in ("- DC: deletion correlation", "- IC: insertion correlation",
                 "- ROAD MoRF: ROAD, most relevant first", "- ROAD LeRF: ROAD, least"):
        assert line in text
    assert "removes the fractions 0.3, 0.6 of the pixels, noise 0.02" in text
    data = json.load(open(os.path.join(folder, "metrics.json")))
    np.testing.assert_allclose(data["per_image"]["ablationcam"]["road"], other)
    # ROAD alone: no curve, so no curves.png.
    alone = evaluation.compare_explanations(model, x, methods=["eigencam"], metrics="road",
                                            metric_options={"road": {"fractions": [0.5]}})
    assert alone.curves == {} and list(alone.per_image["eigencam"]) == ["road"]
    assert "curves.png" not in os.listdir(alone.save(tmp_path / "alone"))


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
    with pytest.raises(ValueError, match="argument chunk_size"):
        compare(models, images, chunk_size=0)
    with pytest.raises(ValueError, match="argument labels.*iterable of batches"):
        compare(models, iter([images]), labels=labels)
    with pytest.raises(ValueError, match="argument metrics.*metric names among.*unknown: 'nope'"):
        compare(models, images, metrics=["dauc", "nope"])
    with pytest.raises(ValueError, match="argument metrics"):
        compare(models, images, metrics=[])
    with pytest.raises(ValueError, match="argument metrics.*'pointing' only with masks"):
        compare(models["cnn"], images, methods=["gradcam"], metrics=["pointing"])
    with pytest.raises(ValueError, match="argument metric_options"):
        compare(models, images, metrics=["road"], metric_options={"road": {"order": "lerf"}})
    with pytest.raises(ValueError, match="argument fractions"):
        compare(models, images, metrics=["road"], metric_options={"road": {"fractions": [1.5]}})


# ------------------------------------------------ intervals and paired tests
def _numpy_bootstrap(values, seed, n_resamples=1000):
    """The interval re-computed from its definition, with one NumPy call."""
    values = np.asarray(values, "float64")
    values = values[np.isfinite(values)]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_resamples, len(values)))].mean(axis=1)
    return np.quantile(means, [0.025, 0.975])


@pytest.fixture(scope="module")
def report(setup):
    models, images, labels, masks = setup
    return evaluation.compare_explanations(
        models["brnpa"], images, labels=labels, masks=masks, steps=4, seed=3,
        methods=["brnpa", "gradcam", ("RISE", models["brnpa"].name, "rise", {"n_masks": 8})])


def test_per_image_values_and_their_intervals(setup, report):
    models, images, labels, masks = setup
    model = models["brnpa"]
    maps = explain.explain("gradcam", model, images)
    values = report.per_image["gradcam"]
    np.testing.assert_allclose(
        values["iauc"], metrics.insertion_auc(model, images, maps, steps=4), atol=1e-6)
    np.testing.assert_allclose(values["pointing_game"], metrics.pointing_game(maps, masks))
    predicted = np.asarray(model.predict(images, verbose=0)).argmax(-1)
    np.testing.assert_array_equal(values["accuracy"], predicted == labels)
    for row in report.rows:
        assert row["n"] == len(images)
        for key in ("accuracy", "dauc", "iauc", "sparsity", "pointing_game"):
            per_image = report.per_image[row["method"]][key]
            assert per_image.shape == (len(images),)
            assert row[key] == pytest.approx(np.nanmean(per_image), abs=1e-12)
            np.testing.assert_allclose(row[f"{key}_ci95"], _numpy_bootstrap(per_image, 3),
                                       rtol=1e-12, atol=1e-15)
            assert row[f"{key}_ci95"][0] <= row[key] + 1e-12 <= row[f"{key}_ci95"][1] + 2e-12


def test_bootstrap_interval_covers_the_mean():
    """Property: the 95 % interval of a sample holds the true mean ~95 % of the time."""
    rng = np.random.default_rng(0)
    hits = [evaluation.bootstrap_ci(rng.normal(1.0, 2.0, 40), seed=trial,
                                    n_resamples=400)
            for trial in range(300)]
    coverage = np.mean([low <= 1.0 <= high for low, high in hits])
    assert 0.88 <= coverage <= 0.98
    # Seeded: the same seed gives the same interval, another seed another one.
    values = rng.random(20)
    assert evaluation.bootstrap_ci(values, seed=1) == evaluation.bootstrap_ci(values, seed=1)
    assert evaluation.bootstrap_ci(values, seed=1) != evaluation.bootstrap_ci(values, seed=2)
    # Drawn in blocks: the same stream as one call for a large sample.
    large = rng.random(5000)
    np.testing.assert_allclose(evaluation.bootstrap_ci(large, seed=4, n_resamples=300),
                               _numpy_bootstrap(large, 4, 300), rtol=1e-12)
    assert np.isnan(evaluation.bootstrap_ci([np.nan, np.inf])).all()


def test_compare_equals_scipy(report):
    from scipy import stats

    a = report.per_image["brnpa"]["dauc"]
    b = report.per_image["RISE"]["dauc"]
    result = report.compare("brnpa", "RISE", "dauc")
    assert result["test"] == "wilcoxon signed-rank (paired)"
    assert result["p_value"] == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-12)
    assert result["difference"] == pytest.approx(np.mean(a - b), abs=1e-12)
    np.testing.assert_allclose(result["ci95"], _numpy_bootstrap(a - b, 3), rtol=1e-12)
    assert result["n"] == len(a)
    welch = report.compare("brnpa", "RISE", "iauc", test="welch")
    a, b = report.per_image["brnpa"]["iauc"], report.per_image["RISE"]["iauc"]
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert welch["p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
    np.testing.assert_allclose(welch["ci95"], expected.confidence_interval(0.95), rtol=1e-12)
    # Identical values: no difference, p = 1 (SciPy alone gives NaN).
    same = report.compare("brnpa", "brnpa", "dauc")
    assert same["difference"] == 0 and same["p_value"] == 1.0
    with pytest.raises(ValueError, match="argument explainer_b"):
        report.compare("brnpa", "nope", "dauc")
    with pytest.raises(ValueError, match="argument metric"):
        report.compare("brnpa", "RISE", "nope")
    with pytest.raises(ValueError, match="argument test"):
        report.compare("brnpa", "RISE", "dauc", test="t")
    with pytest.raises(ValueError, match="argument b"):
        evaluation.paired_test([1.0, 2.0], [1.0])


def test_markdown_json_and_report_md(report, tmp_path):
    table = report.to_markdown().splitlines()
    assert table[0].startswith("| method | model | map | n | accuracy | DAUC")
    row = report.rows[0]
    half = (row["dauc_ci95"][1] - row["dauc_ci95"][0]) / 2
    assert f"{row['dauc']:.3f} ± {half:.3f}" in table[2]
    folder = report.save(tmp_path / "out")
    data = json.load(open(os.path.join(folder, "metrics.json")))
    assert data["rows"][1]["dauc_ci95"] == report.rows[1]["dauc_ci95"]
    np.testing.assert_allclose(data["per_image"]["RISE"]["iauc"],
                               report.per_image["RISE"]["iauc"])
    text = open(os.path.join(folder, "report.md")).read()
    assert "## Differences from the best row" in text
    assert "- DAUC: deletion AUC" in text and "(lower is better)" in text
    best = min(report.rows, key=lambda r: r["dauc"])["method"]
    other = next(r["method"] for r in report.rows if r["method"] != best)
    p = report.compare(other, best, "dauc")["p_value"]
    line = next(line for line in text.splitlines() if line.startswith(f"| {other} |")
                and "p=" in line)
    assert f"p={p:.4f}" in line


# ------------------------------------------------------- chunks and streaming
def test_chunks_and_batches_give_the_same_values(setup):
    models, images, labels, masks = setup
    model = models["cnn"]
    kwargs = dict(methods=["gradcam"], steps=3, baseline=0.5)
    whole = evaluation.compare_explanations(model, images, labels=labels, masks=masks,
                                            **kwargs)
    chunked = evaluation.compare_explanations(model, images, labels=labels, masks=masks,
                                              chunk_size=3, keep_maps=2, **kwargs)
    batches = evaluation.compare_explanations(
        model, ((images[i:i + 2], labels[i:i + 2], masks[i:i + 2]) for i in (0, 2)), **kwargs)
    for other in (chunked, batches):
        for key, values in whole.per_image["gradcam"].items():
            # Batch independence within 1e-5 (issue 20): the sparsity values
            # (about 2) differ by a few float32 ulps between batchings.
            np.testing.assert_allclose(other.per_image["gradcam"][key], values,
                                       rtol=1e-5, atol=1e-6)
        assert other.rows[0]["n"] == 4
    assert chunked.maps["gradcam"].shape[0] == 2 and len(chunked.images) == 2
    np.testing.assert_allclose(chunked.maps["gradcam"], whole.maps["gradcam"][:2], atol=1e-6)
    assert batches.curves["deletion"]["gradcam"].shape == whole.curves["deletion"]["gradcam"].shape


# ------------------------------------------------------------ degenerate maps
def test_degenerate_maps_are_counted_and_warned_about(tmp_path):
    inputs = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer="zeros",
                                   name="conv")(inputs)  # all zero: Grad-CAM maps all zero
    outputs = keras.layers.Dense(3, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, outputs, name="flat")
    images = np.random.default_rng(0).random((3, 32, 32, 3), "float32")
    with pytest.warns(UserWarning, match=r"3 of 3 maps of 'gradcam' \(gradcam\) are degenerate"):
        report = evaluation.compare_explanations(model, images, methods=["gradcam"], steps=2)
    assert report.rows[0]["degenerate"] == 3
    assert "degenerate maps" in report.to_markdown().splitlines()[0]
    report.save(tmp_path)
    assert "- degenerate maps:" in open(tmp_path / "report.md").read()
    maps = np.stack([np.zeros((3, 3)), np.full((3, 3), -2.0), np.eye(3), np.full((3, 3), np.nan),
                     1 + 1e-9 * np.eye(3)])
    np.testing.assert_array_equal(evaluation.degenerate_maps(maps),
                                  [True, True, False, True, True])


def test_gallery_shows_every_class_first():
    report = evaluation.ExplanationReport(
        [], {}, {}, np.zeros((6, 4, 4, 3)), np.array([0, 0, 0, 1, 1, 2]), None, None, {})
    assert report.gallery_indices(3) == [0, 3, 5]
    assert report.gallery_indices(5) == [0, 3, 5, 1, 4]


def test_verdicts_follow_the_direction_and_the_test():
    rng = np.random.default_rng(0)
    base = rng.random(12)
    per_image = {
        "ours": {"dauc": base, "iauc": base + 0.2, "sparsity": base + rng.normal(0, 0.01, 12)},
        "base": {"dauc": base + 0.1, "iauc": base + 0.3, "sparsity": base},
    }
    rows = [{"method": m, "model": "m", "map_size": [2, 2]} for m in per_image]
    report = evaluation.ExplanationReport(rows, {}, {}, [], None, None, None, {},
                                          per_image=per_image)
    sentence = evaluation.verdict(report, "ours", "base")
    assert sentence.startswith("Against base, ours is better on DAUC")
    better, rest = sentence.split("; worse on ")
    worse, same = rest.split("; not significantly different on ")
    assert "IAUC" in worse and "sparsity" in same
    p = report.compare("ours", "base", "dauc")["p_value"]
    assert f"p={p:.4f}" in better
