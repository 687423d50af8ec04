"""A full comparison report of several models and explanations (the demo's):
models with their accuracy, the table with intervals, the differences with
p-values, the maps at a common resolution, verdicts from paired tests and
the galleries."""

import math
import os

import numpy as np

from keras_brnpa._json import write_json
from keras_brnpa.evaluation import stats
from keras_brnpa.evaluation.report import COLUMNS
from keras_brnpa.evaluation.report import _fmt
from keras_brnpa.evaluation.report import _fmt_interval
from keras_brnpa._checks import invalid

#: The files ``write_study`` writes.
STUDY_FILES = ("report.md", "metrics.json", "gallery_explanations.png", "deletion_curves.png",
               "gallery_attention.png")


def _finite_mean(values):
    values = np.asarray(values, "float64")
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def verdict(report, ours, baseline, metrics=None, alpha=0.05):
    """A sentence saying where row ``ours`` wins or loses against ``baseline``.

    A metric counts as better or worse only when the paired Wilcoxon test
    of ``report.compare(ours, baseline, metric)`` gives ``p < alpha``; the
    direction is the metric's (``COLUMNS``). Otherwise the two rows are
    "not significantly different" on it.

    Args:
        report: an ``ExplanationReport`` with per-image values.
        ours: a row label.
        baseline: another row label.
        metrics: metric keys (default: those of ``COLUMNS`` both rows have).
        alpha: significance level.

    Returns:
        str, e.g. ``"Against RISE, BR-NPA is better on DAUC (0.21 vs 0.34,
        p=0.004); not significantly different on IAUC (...)."``

    Example:

    >>> import numpy as np, keras_brnpa
    >>> rows = [{"method": m, "model": "m", "map_size": [2, 2]} for m in ("a", "b")]
    >>> report = keras_brnpa.evaluation.ExplanationReport(
    ...     rows, {}, {}, [], None, None, None, {},
    ...     per_image={"a": {"dauc": np.arange(10.0)}, "b": {"dauc": np.arange(10.0) + 1}})
    >>> keras_brnpa.evaluation.verdict(report, "a", "b")
    'Against b, a is better on DAUC (4.500 vs 5.500, p=0.0020).'
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise invalid("alpha", alpha, "a number in (0, 1)")
    a_row, b_row = report._row(ours, "ours"), report._row(baseline, "baseline")
    a_values = report.per_image.get(a_row["method"], {})
    b_values = report.per_image.get(b_row["method"], {})
    keys = [key for key in COLUMNS if key in a_values and key in b_values] if metrics is None \
        else list(metrics)
    groups = {1: [], -1: [], 0: []}
    for key in keys:
        result = report.compare(ours, baseline, key)
        a, b = (row.get(key, _finite_mean(values[key]))
                for row, values in ((a_row, a_values), (b_row, b_values)))
        label, higher = COLUMNS[key]
        sign = 0
        p = result["p_value"]
        if math.isfinite(p) and p < alpha and result["difference"] != 0:
            sign = 1 if (result["difference"] > 0) == higher else -1
        groups[sign].append(f"{label} ({_fmt(float(a))} vs {_fmt(float(b))}, p={_fmt(p, 4)})")
    parts = [f"{word} on " + ", ".join(groups[sign])
             for sign, word in ((1, "better"), (-1, "worse"), (0, "not significantly different"))
             if groups[sign]]
    return f"Against {baseline}, {ours} is " + "; ".join(parts) + "."


def common_resolution(report, grid, steps):
    """DAUC, IAUC and pointing game of every row with its maps on one ``grid x grid`` grid.

    Coarser maps are upsampled bilinearly, finer ones averaged by blocks
    (``metrics.fit_saliency``), so that no method wins by its resolution.
    Uses the maps, images and masks the report kept.

    Returns:
        dict ``{label: {"dauc", "dauc_ci95", "iauc", ..., "pointing_game", ...}}``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> x, y, m = keras_brnpa.datasets.synthetic_parts(2, 64, 3, seed=0)
    >>> report = keras_brnpa.evaluation.compare_explanations(model, x, masks=m, steps=2)
    >>> sorted(keras_brnpa.evaluation.common_resolution(report, 4, 2)["gradcam"])[:2]
    ['dauc', 'dauc_ci95']
    """
    from keras_brnpa import explain
    from keras_brnpa import metrics

    images = np.asarray(report.images, "float32")
    size = images.shape[1:3]
    seed = report.settings.get("seed", 0)
    rows = {}
    for row in report.rows:
        maps = report.maps[row["method"]]
        if maps.shape[1] < grid or maps.shape[2] < grid:
            maps = explain.upsample(maps, (grid, grid))
        maps = metrics.fit_saliency(maps, size, max_cells=grid * grid)
        model = report.models[row["model"]]
        values = {
            "dauc": metrics.deletion_auc(model, images, maps, steps=steps, baseline="mean"),
            "iauc": metrics.insertion_auc(model, images, maps, steps=steps),
        }
        if report.masks is not None:
            values["pointing_game"] = metrics.pointing_game(maps, report.masks).astype("float64")
        rows[row["method"]] = {}
        for key, value in values.items():
            rows[row["method"]][key] = float(np.nanmean(value))
            rows[row["method"]][f"{key}_ci95"] = stats.bootstrap_ci(value, seed=seed)
    return rows


def write_study(folder, report, title, intro, models=None, notes=(), common_grid=None,
                verdicts=(), attention=None, gallery_size=6, extra=None):
    """Write a full comparison report in ``folder`` (the demo's).

    ``report.md`` holds: ``title``, ``intro``, the evaluated images (split,
    files), the models with their accuracy ± interval, the table of
    ``report`` with intervals and one line per column, ``notes``, the
    differences from the best row with p-values, the table at a common
    resolution (``common_grid``), one verdict per ``(ours, baseline)`` pair
    (``verdict``) and the pictures; ``metrics.json`` holds
    ``report.to_dict()`` with ``models``, ``common_resolution`` and
    ``extra``. Files: ``STUDY_FILES`` (``gallery_attention.png`` only with
    ``attention``).

    Args:
        folder: output folder (files of ``STUDY_FILES`` replaced).
        report: an ``ExplanationReport`` (with ``models``).
        title: the Markdown title line, e.g. ``"# BR-NPA demo report"``.
        intro: a paragraph (str) describing the data and the training.
        models: optional dict ``{name: {"head": str, "correct": (n,) bools}}``:
            a table of the models (head, feature map, parameters, accuracy
            ± 95 % bootstrap interval over the images of ``correct``).
        notes: paragraphs printed after the results table.
        common_grid: ``None`` or an int: also score every row with its
            maps on a ``grid x grid`` grid (``common_resolution``).
        verdicts: ``(ours, baseline)`` row-label pairs.
        attention: optional dict ``{column: model}``: a gallery of the
            part maps of these BR-NPA/B-CNN models.
        gallery_size: images in the galleries (every class first).
        extra: optional dict added to metrics.json.

    Returns:
        ``folder``.

    Example:

    >>> import os, tempfile, numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="brnpa", input_shape=(64, 64, 3))
    >>> x, y, m = keras_brnpa.datasets.synthetic_parts(3, 64, 3, seed=0)
    >>> report = keras_brnpa.evaluation.compare_explanations(
    ...     model, x, labels=y, masks=m, methods=["brnpa", "gradcam"], steps=2)
    >>> folder = keras_brnpa.evaluation.write_study(
    ...     tempfile.mkdtemp(), report, "# Study", "Three images.",
    ...     verdicts=[("brnpa", "gradcam")])
    >>> "Against gradcam, brnpa is" in open(os.path.join(folder, "report.md")).read()
    True
    """
    from keras_brnpa import explain
    from keras_brnpa import models as models_module

    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    report.save_gallery(os.path.join(folder, "gallery_explanations.png"), gallery_size)
    from keras_brnpa import visualize

    visualize.plot_curves(os.path.join(folder, "deletion_curves.png"), report.curves)
    seed = report.settings.get("seed", 0)
    lines = [title, "", intro, ""] + report.source_markdown()
    model_info = {}
    if models:
        lines += ["## Models", "",
                  "| model | head | feature map | parameters | accuracy (n) |",
                  "|---|---|---|---|---|"]
        for name, info in models.items():
            model = report.models[name]
            correct = np.asarray(info["correct"], "float64")
            accuracy = float(correct.mean())
            interval = stats.bootstrap_ci(correct, seed=seed)
            shape = list(models_module.feature_shape(model))
            model_info[name] = {"accuracy": accuracy, "accuracy_ci95": interval,
                                "n": int(correct.size), "parameters": int(model.count_params()),
                                "feature_map": shape, "head": info.get("head", "")}
            lines.append(f"| {name} | {info.get('head', '')} | {'x'.join(map(str, shape))} | "
                         f"{model.count_params():,} | {_fmt_interval(accuracy, interval)} "
                         f"({correct.size}) |")
        lines.append("")
    lines += ["## Results", "", report.to_markdown(), "", "Columns:", ""]
    lines += [line for line in report.column_lines()]
    lines += [""] + [paragraph + "\n" for paragraph in notes]
    differences = report.differences_markdown()
    if differences:
        lines += ["## Differences from the best row", "", report.DIFFERENCES_TEXT, "",
                  differences, ""]
    common = None
    if common_grid:
        grid = int(common_grid)
        common = common_resolution(report, grid, report.settings.get("steps", 24))
        lines += [
            f"## At a common resolution ({grid}x{grid})", "",
            f"The same maps, each brought to a {grid}x{grid} grid (coarser maps upsampled "
            "bilinearly, finer ones averaged by blocks), so that no method wins or loses by "
            "its resolution alone:", "",
            "| explanation | map | DAUC (lower better) | IAUC (higher better) | pointing game |",
            "|---|---|---|---|---|",
        ]
        sizes = {row["method"]: row["map_size"] for row in report.rows}
        for label, c in common.items():
            h, w = sizes[label]
            lines.append(
                f"| {label} | {h}x{w} -> {grid}x{grid} | "
                + " | ".join(_fmt_interval(c.get(k), c.get(f"{k}_ci95"))
                             for k in ("dauc", "iauc", "pointing_game")) + " |")
        lines.append("")
    if verdicts:
        lines += ["## Where each wins and loses", "",
                  "Better or worse only where the paired Wilcoxon test on the per-image values "
                  "gives p < 0.05 (no correction for the many comparisons: read a single "
                  "p near 0.05 with care):", ""]
        lines += [f"- {verdict(report, ours, baseline)}" for ours, baseline in verdicts]
        lines.append("")
    lines += ["## Pictures", ""]
    if attention:
        indices = report.gallery_indices(gallery_size)
        images = np.asarray(report.images)[indices]
        parts = {f"{label}: parts": explain.attention_maps(model, images)
                 for label, model in attention.items()}
        if report.masks is not None and np.asarray(report.masks).ndim == 3:
            parts["ground truth"] = np.asarray(report.masks, "float32")[indices]
        visualize.save_gallery(os.path.join(folder, "gallery_attention.png"), images, parts,
                               titles=report._titles(indices))
        lines += ["Attention maps (part 1 red, part 2 green, part 3 blue; last column: the "
                  "ground-truth part masks):", "", "![attention maps](gallery_attention.png)",
                  ""]
    lines += ["All the explanation maps compared above (degenerate maps marked):", "",
              "![explanations](gallery_explanations.png)", "",
              "Deletion and insertion curves:", "", "![curves](deletion_curves.png)", ""]
    data = report.to_dict()
    data["models"] = model_info
    if common is not None:
        data["common_resolution"] = {"grid": int(common_grid), "rows": common}
    data.update(extra or {})
    write_json(os.path.join(folder, "metrics.json"), data)
    with open(os.path.join(folder, "report.md"), "w") as f:
        f.write("\n".join(lines))
    return folder
