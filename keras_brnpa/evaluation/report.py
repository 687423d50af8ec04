"""``ExplanationReport``: the table of ``compare_explanations``, its intervals,
its paired tests and its files (report.md, metrics.json, gallery.png, curves.png)."""

import math
import os

import numpy as np

from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid
from keras_brnpa._json import write_json
from keras_brnpa.evaluation import stats

#: Metric key -> (column label, True when higher is better).
COLUMNS = {
    "accuracy": ("accuracy", True),
    "dauc": ("DAUC", False),
    "iauc": ("IAUC", True),
    "dc": ("DC", True),
    "ic": ("IC", True),
    "road": ("ROAD MoRF", False),
    "road_lerf": ("ROAD LeRF", True),
    "sparsity": ("sparsity", True),
    "sparsity_density": ("density", False),
    "pointing_game": ("pointing game", True),
    "energy_in_mask": ("energy in mask", True),
}

#: One line per column of report.md: what it measures and its direction.
DESCRIPTIONS = {
    "n": "images scored (the intervals are over them).",
    "accuracy": "share of the images whose predicted class is the label (higher is better).",
    "dauc": "deletion AUC: probability of the explained class as the most salient cells are "
    "removed, most salient first (lower is better).",
    "iauc": "insertion AUC: probability of the class as the cells are restored on a blurred "
    "image, most salient first (higher is better).",
    "dc": "deletion correlation (Gomez et al. 2022): per image, the Pearson correlation "
    "between the score's drop at each deletion step and the mean saliency removed at that step "
    "(higher is better; undefined for a constant map).",
    "ic": "insertion correlation: the same along the insertion curve, the score's rise against "
    "the saliency restored (higher is better).",
    "road": "ROAD, most relevant first (Rong et al. 2022): probability of the class after the "
    "most salient pixels are removed and filled from their neighbours (noisy linear "
    "imputation), averaged over the removed fractions (lower is better).",
    "road_lerf": "ROAD, least relevant first: the same with the least salient pixels removed "
    "(higher is better; a good map keeps it well above ROAD MoRF).",
    "sparsity": "maximum over mean of the map (higher = sparser; its ceiling grows with the "
    "number of cells).",
    "sparsity_density": "the authors' sparsity: mean over maximum of the (part) maps times the "
    "normalised feature norm (lower = sparser).",
    "pointing_game": "share of the images whose map maximum falls inside the ground-truth "
    "region (higher is better).",
    "energy_in_mask": "share of the map's positive mass inside the ground-truth region "
    "(higher is better).",
    "degenerate": "maps that are constant (all zero included): they rank no pixel, so their "
    "scores measure the tie-breaking order, not the explanation (0 is good).",
}

REPORT_FILES = ("report.md", "metrics.json", "gallery.png", "curves.png")

#: Metric names of ``compare_explanations(metrics=...)`` and ``brnpa evaluate
#: --metrics`` -> the columns (keys of ``COLUMNS``) each one adds.
METRICS = {
    "dauc": ("dauc",),
    "iauc": ("iauc",),
    "dcic": ("dc", "ic"),
    "road": ("road",),
    "road_lerf": ("road_lerf",),
    "sparsity": ("sparsity",),
    "density": ("sparsity_density",),
    "pointing": ("pointing_game", "energy_in_mask"),
}

#: The metrics computed when none are named (those of keras_brnpa 0.2).
DEFAULT_METRICS = ("dauc", "iauc", "sparsity", "density", "pointing")


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _fmt_interval(value, interval, digits=3):
    """``0.840 ± 0.030``: the mean and half the width of its interval."""
    text = _fmt(value, digits)
    if interval is None or text == "n/a":
        return text
    low, high = interval
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return text
    return f"{text} ± {(high - low) / 2:.{digits}f}"


def _jsonable(values):
    """Per-image values as a list, NaN as ``None`` (valid JSON)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, "float64")]


class ExplanationReport:
    """The result of ``compare_explanations``: rows, intervals, tests and files.

    Attributes:
        rows: list of dicts, one per explanation: ``method`` (the row's
            label, the key of ``per_image`` and ``maps``), ``model``,
            ``explainer`` (the ``explain.METHODS`` name), ``map_size``
            (``[h, w]``), ``n`` (images), ``degenerate`` (constant maps,
            all zero included), and for each metric its mean over images
            and ``<metric>_ci95`` = ``[low, high]``, the 95 % percentile
            bootstrap interval of that mean over images (seeded with the
            ``seed`` of ``compare_explanations``): ``accuracy`` (with
            labels), ``dauc``, ``iauc``, ``sparsity`` (per map, higher =
            sparser), ``sparsity_density`` (the authors' sparsity, lower =
            sparser: all the part maps times the normalised feature norm
            for a model's own BR-NPA or B-CNN attention, the map itself
            for the other methods), ``pointing_game`` and
            ``energy_in_mask`` (with masks), and when asked for
            (``compare_explanations(metrics=...)``) ``dc``, ``ic``
            (deletion and insertion correlation, higher is better),
            ``road`` (ROAD MoRF, lower is better) and ``road_lerf``
            (ROAD LeRF, higher is better); and ``seconds``.
        per_image: dict ``{label: {metric: (n,) float64 array}}``, the
            value of every image (NaN where undefined); the means and
            intervals of ``rows`` are computed from it.
        maps: dict label -> ``(k, h, w)`` maps of the first ``k`` images
            (``keep_maps`` of ``compare_explanations``).
        curves: dict ``{"deletion": {label: (n, steps)}, "insertion":
            {...}}``.
        images: the first ``k`` images (those of ``maps``).
        labels, masks: every image's labels and masks (or ``None``).
        class_names, settings: what was compared.
        source: dict describing the images (e.g. ``{"split": "validation",
            "files": [...]}``), written to metrics.json and report.md.
        models: the dict ``{name: model}`` (set by ``compare_explanations``).

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="brnpa", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((4, 64, 64, 3), "float32")
    >>> report = keras_brnpa.evaluation.compare_explanations(
    ...     model, images, methods=["brnpa", "gradcam"], steps=4)
    >>> [row["method"] for row in report.rows]
    ['brnpa', 'gradcam']
    >>> report.per_image["brnpa"]["dauc"].shape
    (4,)
    >>> sorted(report.compare("brnpa", "gradcam", "dauc"))
    ['ci95', 'difference', 'n', 'p_value', 'test']
    """

    DIFFERENCES_TEXT = (
        "For each metric, each row minus the best row (in the metric's direction), its 95 % "
        "bootstrap interval, and the p-value of the paired Wilcoxon signed-rank test on the "
        "per-image values (small p: the difference is unlikely to be chance on these images; "
        "it says nothing about other images, and many tests make some small p by chance)."
    )

    def __init__(self, rows, maps, curves, images, labels, masks, class_names, settings,
                 per_image=None, source=None):
        self.rows = rows
        self.maps = maps
        self.curves = curves
        self.images = images
        self.labels = labels
        self.masks = masks
        self.class_names = class_names
        self.settings = settings
        self.per_image = per_image if per_image is not None else {}
        self.source = dict(source) if source else {}
        self.models = {}

    def __repr__(self):
        n = self.rows[0].get("n", len(self.images)) if self.rows else len(self.images)
        return f"<ExplanationReport: {len(self.rows)} explanations of {n} images>"

    def _columns(self):
        return [key for key in COLUMNS if any(key in row for row in self.rows)]

    def _row(self, label, name):
        labels = [row["method"] for row in self.rows]
        if label in labels:
            return self.rows[labels.index(label)]
        matches = [row for row in self.rows if row.get("explainer") == label]
        if len(matches) == 1:
            return matches[0]
        raise invalid(name, label, f"a row label among {labels}")

    def compare(self, explainer_a, explainer_b, metric, test="wilcoxon"):
        """Difference of two rows on one metric, with its interval and a test.

        ``test="wilcoxon"`` (default): both rows scored the same images, so
        the per-image values are paired: ``stats.paired_test`` (mean of the
        per-image differences A - B, seeded bootstrap interval, two-sided
        Wilcoxon signed-rank p-value equal to ``scipy.stats.wilcoxon``).
        ``test="welch"``: Welch's t-test on the two sets of values taken as
        independent samples (the authors' test between models; it ignores
        the pairing, so it is weaker on the same images).

        Args:
            explainer_a: a row label (``row["method"]``), or an explainer
                name (``row["explainer"]``) that only one row has.
            explainer_b: the other row.
            metric: a key of ``COLUMNS`` present in the rows (``"dauc"``,
                ``"iauc"``, ...).
            test: ``"wilcoxon"`` or ``"welch"``.

        Returns:
            dict ``{"difference", "ci95", "p_value", "test", "n"}``; the
            difference is A - B (its sign: read the metric's direction).

        Example:

        >>> import numpy as np, keras_brnpa
        >>> report = keras_brnpa.evaluation.ExplanationReport(
        ...     [{"method": "a", "model": "m", "map_size": [2, 2]},
        ...      {"method": "b", "model": "m", "map_size": [2, 2]}], {}, {}, [], None, None,
        ...     None, {}, per_image={"a": {"dauc": np.arange(8.0)},
        ...                          "b": {"dauc": np.arange(8.0) + 1}})
        >>> result = report.compare("a", "b", "dauc")
        >>> result["difference"], result["test"]
        (-1.0, 'wilcoxon signed-rank (paired)')
        """
        row_a = self._row(explainer_a, "explainer_a")
        row_b = self._row(explainer_b, "explainer_b")
        values = []
        for row in (row_a, row_b):
            per_image = self.per_image.get(row["method"], {})
            if metric not in per_image:
                available = sorted(set(per_image) & set(COLUMNS))
                raise invalid("metric", metric, f"one of {available}")
            values.append(per_image[metric])
        seed = self.settings.get("seed", 0)
        if test == "wilcoxon":
            return stats.paired_test(*values, seed=seed)
        if test == "welch":
            return stats.welch_test(*values)
        raise invalid("test", test, "'wilcoxon' or 'welch'")

    def to_markdown(self):
        """The table as Markdown (one row per explanation).

        A cell reads ``mean ± h`` where ``h`` is half the width of the 95 %
        bootstrap interval ``<metric>_ci95`` of the row (the interval
        itself, not always symmetric, is in ``rows`` and metrics.json).

        Returns:
            str.

        Example:

        >>> import keras_brnpa
        >>> report = keras_brnpa.evaluation.ExplanationReport(
        ...     [{"method": "gradcam", "model": "cnn", "map_size": [2, 2], "n": 8,
        ...       "dauc": 0.25, "dauc_ci95": [0.2, 0.3]}], {}, {}, [], None, None, None, {})
        >>> print(report.to_markdown())
        | method | model | map | n | DAUC (lower better) |
        |---|---|---|---|---|
        | gradcam | cnn | 2x2 | 8 | 0.250 ± 0.050 |
        """
        columns = self._columns()
        has_n = any("n" in row for row in self.rows)
        has_degenerate = any(row.get("degenerate") for row in self.rows)
        header = ["method", "model", "map"] + (["n"] if has_n else [])
        for key in columns:
            label, higher = COLUMNS[key]
            if key in ("dauc", "iauc", "dc", "ic", "road", "road_lerf"):
                label += " (higher better)" if higher else " (lower better)"
            elif key == "sparsity":
                label += " (higher = sparser)"
            elif key == "sparsity_density":
                label += " (authors' sparsity, lower = sparser)"
            header.append(label)
        if has_degenerate:
            header.append("degenerate maps")
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            h, w = row["map_size"]
            cells = [row["method"], row["model"], f"{h}x{w}"]
            if has_n:
                cells.append(_fmt(row.get("n")))
            cells += [
                _fmt_interval(row.get(key), row.get(f"{key}_ci95"), 2 if key == "sparsity" else 3)
                for key in columns
            ]
            if has_degenerate:
                cells.append(_fmt(row.get("degenerate", 0)))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def differences_markdown(self):
        """Each row's difference from the best row, per metric, with its p-value.

        The best row of a metric is the one with the best mean in the
        metric's direction; every other row gets ``difference [low, high],
        p`` from ``compare(row, best, metric)`` (paired Wilcoxon test).

        Returns:
            str (empty without per-image values or with a single row).

        Example:

        >>> import numpy as np, keras_brnpa
        >>> report = keras_brnpa.evaluation.ExplanationReport(
        ...     [{"method": "a", "model": "m", "map_size": [2, 2], "dauc": 3.5},
        ...      {"method": "b", "model": "m", "map_size": [2, 2], "dauc": 4.5}], {}, {}, [],
        ...     None, None, None, {}, per_image={"a": {"dauc": np.arange(8.0)},
        ...                                      "b": {"dauc": np.arange(8.0) + 1}})
        >>> print(report.differences_markdown().splitlines()[-1])
        | b | +1.000 [1.000, 1.000], p=0.0078 |
        """
        if len(self.rows) < 2 or not self.per_image:
            return ""
        columns = [key for key in self._columns()
                   if all(key in self.per_image.get(row["method"], {}) for row in self.rows)]
        if not columns:
            return ""
        best = {}
        for key in columns:
            means = [row.get(key, float("nan")) for row in self.rows]
            sign = -1 if COLUMNS[key][1] else 1  # the first best row on ties
            finite = [(sign * m, i) for i, m in enumerate(means)
                      if m is not None and math.isfinite(m)]
            if finite:
                best[key] = self.rows[min(finite)[1]]["method"]
        header = ["method"] + [COLUMNS[key][0] for key in columns]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            cells = [row["method"]]
            for key in columns:
                if key not in best:
                    cells.append("n/a")
                elif best[key] == row["method"]:
                    cells.append("best")
                else:
                    result = self.compare(row["method"], best[key], key)
                    if not result["n"]:
                        cells.append("n/a (no image with both values)")
                        continue
                    low, high = result["ci95"]
                    cells.append(
                        f"{result['difference']:+.3f} [{_fmt(low)}, {_fmt(high)}], "
                        f"p={_fmt(result['p_value'], 4)}"
                    )
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_dict(self):
        """Rows, per-image values and settings as plain JSON-ready values.

        ``per_image`` holds lists with ``None`` for undefined values.

        Example:

        >>> import keras_brnpa
        >>> keras_brnpa.evaluation.ExplanationReport(
        ...     [], {}, {}, [], None, None, ["a"], {"steps": 4}).to_dict()["settings"]
        {'steps': 4}
        """
        n = self.rows[0].get("n", len(self.images)) if self.rows else len(self.images)
        return {
            "rows": [dict(row) for row in self.rows],
            "per_image": {
                label: {key: _jsonable(values) for key, values in metrics.items()}
                for label, metrics in self.per_image.items()
            },
            "settings": dict(self.settings),
            "source": dict(self.source),
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "images": int(n),
        }

    def to_json(self, path):
        """Write ``to_dict()`` to ``path`` as JSON (atomically).

        Returns:
            ``path``.

        Example:

        >>> import os, tempfile, keras_brnpa
        >>> report = keras_brnpa.evaluation.ExplanationReport([], {}, {}, [], None, None, None, {})
        >>> path = report.to_json(os.path.join(tempfile.mkdtemp(), "metrics.json"))
        >>> os.path.exists(path)
        True
        """
        return write_json(os.fspath(path), self.to_dict())

    def _titles(self, indices):
        if self.labels is None:
            return None
        names = self.class_names
        return [
            names[int(c)] if names is not None and 0 <= int(c) < len(names) else f"class {int(c)}"
            for c in np.asarray(self.labels)[indices]
        ]

    def gallery_indices(self, size):
        """Up to ``size`` images of the gallery, every class first.

        With labels, one image of each class (in class order) before a
        second image of any class, among the images whose maps the report
        kept; without labels the first ``size``.

        Example:

        >>> import numpy as np, keras_brnpa
        >>> report = keras_brnpa.evaluation.ExplanationReport(
        ...     [], {}, {}, np.zeros((5, 2, 2, 3)), np.array([0, 0, 0, 1, 2]), None, None, {})
        >>> report.gallery_indices(4)
        [0, 3, 4, 1]
        """
        kept = len(self.images)
        if self.labels is None:
            return list(range(min(size, kept)))
        labels = np.asarray(self.labels)[:kept]
        order = []
        rank = {}
        for index, label in enumerate(labels):  # k-th image of its class
            rank[int(label)] = rank.get(int(label), -1) + 1
            order.append((rank[int(label)], int(label), index))
        return [index for _, _, index in sorted(order)[:size]]

    def save(self, folder, overwrite=False, gallery_size=6):
        """Write ``report.md``, ``metrics.json``, ``gallery.png`` and ``curves.png``.

        ``curves.png`` (the deletion and insertion curves) only when the
        report has curves (``metrics`` without ``dauc``, ``iauc`` and
        ``dcic`` computes none).

        Args:
            folder: output folder (created if needed).
            overwrite: replace these four files when they exist; without
                it an existing report is never touched (``FileExistsError``).
            gallery_size: images in the gallery, every class first
                (``gallery_indices``); degenerate maps are marked on it.

        Returns:
            ``folder``.

        Example:

        >>> import os, tempfile, numpy as np, keras_brnpa
        >>> model = keras_brnpa.models.build_classifier(
        ...     2, backbone="tiny", head="brnpa", input_shape=(64, 64, 3))
        >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
        >>> report = keras_brnpa.evaluation.compare_explanations(model, images, steps=2)
        >>> folder = report.save(os.path.join(tempfile.mkdtemp(), "report"))
        >>> sorted(os.listdir(folder))
        ['curves.png', 'gallery.png', 'metrics.json', 'report.md']
        """
        from keras_brnpa import visualize

        gallery_size = check_positive_int("gallery_size", gallery_size)
        folder = os.fspath(folder)
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise invalid("folder", folder, "a folder (a file of that name exists)")
        existing = [name for name in REPORT_FILES if os.path.exists(os.path.join(folder, name))]
        if existing and not overwrite:
            raise FileExistsError(
                f"{folder} already holds {', '.join(existing)}; pass overwrite=True to replace "
                "them, or choose another folder"
            )
        os.makedirs(folder, exist_ok=True)
        if self.maps:
            self.save_gallery(os.path.join(folder, "gallery.png"), gallery_size)
        if self._has_curves():
            visualize.plot_curves(os.path.join(folder, "curves.png"), self.curves)
        elif os.path.exists(os.path.join(folder, "curves.png")):  # an earlier report's
            os.remove(os.path.join(folder, "curves.png"))
        self.to_json(os.path.join(folder, "metrics.json"))
        with open(os.path.join(folder, "report.md"), "w") as f:
            f.write(self.report_markdown())
        return folder

    def _has_curves(self):
        return any(len(curves) for curves in (self.curves or {}).values())

    def save_gallery(self, path, size=6, maps=None):
        """The PNG gallery of ``size`` images (every class first), degenerate maps marked.

        Args:
            path: the ``.png`` file.
            size: images (rows of the picture).
            maps: optional dict ``{column: maps of the kept images}``
                instead of the report's maps (e.g. the part maps).

        Returns:
            ``path``.

        Example:

        >>> import os, tempfile, numpy as np, keras_brnpa
        >>> report = keras_brnpa.evaluation.ExplanationReport(
        ...     [], {"a": np.zeros((2, 4, 4))}, {}, np.zeros((2, 8, 8, 3)), None, None, None, {})
        >>> path = report.save_gallery(os.path.join(tempfile.mkdtemp(), "g.png"))
        >>> os.path.exists(path)
        True
        """
        from keras_brnpa import visualize
        from keras_brnpa.evaluation.degenerate import degenerate_maps

        indices = self.gallery_indices(check_positive_int("size", size))
        source = self.maps if maps is None else maps
        columns = {label: np.asarray(values)[indices] for label, values in source.items()}
        notes = {}
        for label, values in columns.items():
            flags = degenerate_maps(values) if values.ndim == 3 else np.zeros(len(values), bool)
            if flags.any():
                notes[label] = ["degenerate map" if flag else "" for flag in flags]
        if maps is None and self.masks is not None and np.asarray(self.masks).ndim == 3:
            columns["ground truth"] = np.asarray(self.masks, "float32")[indices]
        return visualize.save_gallery(path, np.asarray(self.images)[indices], columns,
                                      titles=self._titles(indices), notes=notes or None)

    def report_markdown(self, title="# Explanation report"):
        """The text of report.md: the images, the table with intervals, the
        differences from the best row with p-values, one line per column.

        Example:

        >>> import keras_brnpa
        >>> report = keras_brnpa.evaluation.ExplanationReport(
        ...     [{"method": "gradcam", "model": "cnn", "map_size": [2, 2], "dauc": 0.25}],
        ...     {}, {}, [], None, None, None, {"steps": 4})
        >>> "- DAUC: deletion AUC" in report.report_markdown()
        True
        """
        s = self.settings
        n = self.rows[0].get("n", len(self.images)) if self.rows else len(self.images)
        lines = [title, ""]
        lines += self.source_markdown(n)
        columns = set(self._columns())
        text = ""
        if columns & {"dauc", "iauc", "dc", "ic"}:
            text += f"Deletion and insertion with {s.get('steps')} steps. "
        road = s.get("road")
        if columns & {"road", "road_lerf"} and road:
            fractions = ", ".join(f"{p:g}" for p in road.get("fractions", ()))
            text += (f"ROAD removes the fractions {fractions} of the pixels, noise "
                     f"{road.get('noise', 0):g} (in the model's input units). ")
        lines += [
            text + "The explained class is the one predicted on the intact image. Each "
            "cell: the mean over the images ± half the width of its 95 % interval (percentile "
            f"bootstrap over the images, {s.get('n_resamples', stats.N_RESAMPLES)} resamples, "
            f"seed {s.get('seed', 0)}; the intervals themselves are in metrics.json).",
            "",
            self.to_markdown(),
            "",
            "Columns:",
            "",
        ]
        lines += self.column_lines()
        differences = self.differences_markdown()
        if differences:
            lines += [
                "",
                "## Differences from the best row",
                "",
                self.DIFFERENCES_TEXT,
                "",
                differences,
            ]
        lines += ["", "![explanations](gallery.png)", ""]
        if self._has_curves():
            lines += ["![deletion and insertion curves](curves.png)", ""]
        return "\n".join(lines)

    def column_lines(self):
        """One Markdown bullet per column of the table: what it is, its direction."""
        columns = (["n"] if any("n" in row for row in self.rows) else []) + self._columns()
        if any(row.get("degenerate") for row in self.rows):
            columns.append("degenerate")
        names = {"n": "n", "degenerate": "degenerate maps"}
        return [f"- {COLUMNS[key][0] if key in COLUMNS else names[key]}: {DESCRIPTIONS[key]}"
                for key in columns]

    def source_markdown(self, n=None):
        """Lines naming the evaluated images: their number, split and files."""
        if n is None:
            n = self.rows[0].get("n", len(self.images)) if self.rows else len(self.images)
        source = self.source
        text = f"{n} images"
        if source.get("data"):
            text += f" of {source['data']}"
        if source.get("split"):
            text += f", split: **{source['split']}**"
            if source.get("split_detail"):
                text += f" ({source['split_detail']})"
        lines = [text + ".", ""]
        files = source.get("files")
        if files:
            lines += ["<details><summary>Evaluated files</summary>", ""]
            lines += [f"- {path}" for path in files]
            lines += ["", "</details>", ""]
        return lines
