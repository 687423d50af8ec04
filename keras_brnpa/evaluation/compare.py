"""Compare explanation methods on one or several models: a methods x metrics table."""

import math
import os
import time
from collections.abc import Mapping

import numpy as np

from keras_brnpa._json import write_json
from keras_brnpa.layers._validation import check_positive_int
from keras_brnpa.layers._validation import invalid

#: Metric key -> (column label, True when higher is better).
COLUMNS = {
    "accuracy": ("accuracy", True),
    "dauc": ("DAUC", False),
    "iauc": ("IAUC", True),
    "sparsity": ("sparsity", True),
    "sparsity_density": ("density", False),
    "pointing_game": ("pointing game", True),
    "energy_in_mask": ("energy in mask", True),
}

REPORT_FILES = ("report.md", "metrics.json", "gallery.png", "curves.png")


def _check_models(models):
    import keras

    if isinstance(models, keras.Model):
        return {models.name: models}
    if not isinstance(models, Mapping) or not models:
        raise invalid("models", models, "a keras.Model or a non-empty dict {name: keras.Model}")
    for name, model in models.items():
        if not isinstance(name, str) or not isinstance(model, keras.Model):
            raise invalid(
                "models", f"{{{name!r}: {type(model).__name__}}}", "a dict {str name: keras.Model}"
            )
    return dict(models)


def _plan(models, methods, options):
    """The list of ``(label, model name, method, kwargs)`` to run."""
    from keras_brnpa import explain

    several = len(models) > 1
    entries = []
    if methods == "auto":
        for name, model in models.items():
            method = explain.default_method(model)
            entries.append((f"{name}: {method}" if several else method, name, method, {}))
    else:
        if isinstance(methods, str) or not isinstance(methods, (list, tuple)) or not methods:
            raise invalid(
                "methods",
                methods,
                "'auto', or a non-empty list of method names (keras_brnpa.explain.METHODS) "
                "and/or (label, model name, method, kwargs) tuples",
            )
        for entry in methods:
            if isinstance(entry, str):
                method = explain.method_name(entry)
                for name in models:
                    label = f"{name}: {method}" if several else method
                    entries.append((label, name, method, {}))
            elif isinstance(entry, (list, tuple)) and len(entry) in (3, 4):
                label, name, method = entry[:3]
                kwargs = dict(entry[3]) if len(entry) == 4 and entry[3] else {}
                if name not in models:
                    raise invalid("methods", entry, f"a model name among {sorted(models)}")
                entries.append((str(label), name, explain.method_name(method), kwargs))
            else:
                raise invalid(
                    "methods", entry, "a method name or a (label, model name, method, kwargs) tuple"
                )
    labels = [label for label, _, _, _ in entries]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise invalid("methods", methods, f"distinct labels (repeated: {', '.join(duplicates)})")
    planned = []
    for label, name, method, kwargs in entries:
        merged = dict((options or {}).get(method, {}))
        merged.update(kwargs)
        planned.append((label, name, method, merged))
    return planned


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _mean(values):
    values = np.asarray(values, "float64")
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


class ExplanationReport:
    """The result of ``compare_explanations``: rows, maps, curves and files.

    Attributes:
        rows: list of dicts, one per explanation: ``method`` (label),
            ``model``, ``explainer`` (the ``explain.METHODS`` name),
            ``map_size`` (``[h, w]``), ``accuracy`` (with labels), ``dauc``,
            ``iauc``, ``sparsity`` (per map, higher = sparser),
            ``sparsity_density`` (the authors' sparsity, lower = sparser:
            all the part maps times the normalised feature norm for a
            model's own BR-NPA or B-CNN attention, the map itself for the
            other methods), ``pointing_game`` and ``energy_in_mask`` (with
            masks), ``seconds``. Metric values are means over images.
        maps: dict label -> ``(B, h, w)`` maps.
        curves: dict ``{"deletion": {label: (B, steps + 1)}, "insertion":
            {...}}``.
        images, labels, masks, class_names, settings: what was compared.
        models: the dict ``{name: model}`` (set by ``compare_explanations``).

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="brnpa", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> report = keras_brnpa.evaluation.compare_explanations(
    ...     model, images, methods=["brnpa", "gradcam"], steps=4)
    >>> [row["method"] for row in report.rows]
    ['brnpa', 'gradcam']
    >>> print(report.to_markdown().splitlines()[0])
    | method | model | map | DAUC (lower better) | IAUC (higher better) | sparsity (higher = sparser) | density (authors' sparsity, lower = sparser) |
    """

    def __init__(self, rows, maps, curves, images, labels, masks, class_names, settings):
        self.rows = rows
        self.maps = maps
        self.curves = curves
        self.images = images
        self.labels = labels
        self.masks = masks
        self.class_names = class_names
        self.settings = settings
        self.models = {}

    def __repr__(self):
        return f"<ExplanationReport: {len(self.rows)} explanations of {len(self.images)} images>"

    def _columns(self):
        present = [key for key in COLUMNS if any(key in row for row in self.rows)]
        return present

    def to_markdown(self):
        """The table as Markdown (one row per explanation).

        Returns:
            str.

        Example:

        >>> import keras_brnpa
        >>> report = keras_brnpa.evaluation.ExplanationReport(
        ...     [{"method": "gradcam", "model": "cnn", "map_size": [2, 2], "dauc": 0.25}],
        ...     {}, {}, [], None, None, None, {})
        >>> print(report.to_markdown())
        | method | model | map | DAUC (lower better) |
        |---|---|---|---|
        | gradcam | cnn | 2x2 | 0.250 |
        """
        columns = self._columns()
        header = ["method", "model", "map"]
        for key in columns:
            label, higher = COLUMNS[key]
            if key in ("dauc", "iauc"):
                label += " (higher better)" if higher else " (lower better)"
            elif key == "sparsity":
                label += " (higher = sparser)"
            elif key == "sparsity_density":
                label += " (authors' sparsity, lower = sparser)"
            header.append(label)
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            h, w = row["map_size"]
            cells = [row["method"], row["model"], f"{h}x{w}"]
            cells += [_fmt(row.get(key), 2 if key == "sparsity" else 3) for key in columns]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_dict(self):
        """Rows and settings as plain JSON-ready Python values.

        Example:

        >>> import keras_brnpa
        >>> keras_brnpa.evaluation.ExplanationReport(
        ...     [], {}, {}, [], None, None, ["a"], {"steps": 4}).to_dict()["settings"]
        {'steps': 4}
        """
        return {
            "rows": [dict(row) for row in self.rows],
            "settings": dict(self.settings),
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "images": int(len(self.images)),
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

    def _titles(self, n):
        if self.labels is None:
            return None
        names = self.class_names
        return [
            names[int(c)] if names is not None and 0 <= int(c) < len(names) else f"class {int(c)}"
            for c in self.labels[:n]
        ]

    def save(self, folder, overwrite=False, gallery_size=6):
        """Write ``report.md``, ``metrics.json``, ``gallery.png`` and ``curves.png``.

        Args:
            folder: output folder (created if needed).
            overwrite: replace these four files when they exist; without
                it an existing report is never touched (``FileExistsError``).
            gallery_size: images in the gallery (the first ones).

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
        n = min(gallery_size, len(self.images))
        if self.maps:
            columns = {label: maps[:n] for label, maps in self.maps.items()}
            if self.masks is not None and np.asarray(self.masks).ndim == 3:
                columns["ground truth"] = np.asarray(self.masks[:n], "float32")
            visualize.save_gallery(
                os.path.join(folder, "gallery.png"), self.images[:n], columns,
                titles=self._titles(n),
            )
        if self.curves:
            visualize.plot_curves(os.path.join(folder, "curves.png"), self.curves)
        self.to_json(os.path.join(folder, "metrics.json"))
        with open(os.path.join(folder, "report.md"), "w") as f:
            f.write(self._report_markdown())
        return folder

    def _report_markdown(self):
        s = self.settings
        lines = [
            "# Explanation report",
            "",
            f"{len(self.images)} images; deletion and insertion with {s.get('steps')} steps "
            "(the explained class is the one predicted on the intact image).",
            "",
            self.to_markdown(),
            "",
            "DAUC: area under the probability of the class as the most salient cells are "
            "removed (lower is better); IAUC: as they are restored on the blurred image (higher "
            "is better); sparsity: maximum over mean of the map (higher = sparser); pointing "
            "game and energy in mask use the ground-truth masks.",
            "",
            "![explanations](gallery.png)",
            "",
            "![deletion and insertion curves](curves.png)",
            "",
        ]
        return "\n".join(lines)


def _density(model, method, images, maps, batch_size):
    """The authors' sparsity: all the part maps times the normalised feature
    norm for the model's own attention, the map itself for other methods."""
    from keras_brnpa import metrics
    from keras_brnpa.explain.attention import parts_and_norm
    from keras_brnpa.models import head_kind

    if method in ("brnpa", "attention") and head_kind(model) in ("brnpa", "bcnn"):
        return metrics.sparsity_density(*parts_and_norm(model, images, batch_size))
    return metrics.sparsity_density(maps)


def _accuracy(model, images, labels, batch_size):
    predictions = []
    for start in range(0, len(images), batch_size):
        outputs = model.predict_on_batch(images[start : start + batch_size])
        predictions.append(np.asarray(outputs).argmax(axis=-1))
    return float(np.mean(np.concatenate(predictions) == labels))


def compare_explanations(
    models,
    images,
    labels=None,
    masks=None,
    methods="auto",
    steps=24,
    batch_size=32,
    seed=0,
    options=None,
    class_names=None,
    verbose=False,
    layer_name=None,
    from_logits=None,
    baseline="mean",
):
    """Score explanation methods on one or several models, in one table.

    For each explanation (a method applied to a model) it computes the maps
    of ``images`` for each image's predicted class, then the deletion and
    insertion AUCs (``metrics.deletion_auc`` / ``insertion_auc``, the
    model's output scale detected), the sparsity, and with ``masks`` the
    pointing game and the energy in the mask; with ``labels`` the model's
    accuracy.

    Args:
        models: a ``keras.Model`` or a dict ``{name: keras.Model}``.
        images: ``(B, H, W, C)`` images, as the models take them.
        labels: ``None`` or ``(B,)`` int labels (adds the accuracy).
        masks: ``None``, ``(B, H, W)`` ground-truth masks or ``(B, 4)``
            boxes (adds the pointing game and the energy in the mask).
        methods: ``"auto"`` (each model's own attention when it has a
            BR-NPA or B-CNN head, else Grad-CAM), or a list whose items
            are method names from ``keras_brnpa.explain.METHODS`` (applied
            to every model) or tuples ``(label, model name, method,
            kwargs)``.
        steps: deletion/insertion steps.
        batch_size: images per forward pass.
        seed: seed of the random methods (RISE).
        options: optional dict ``{method name: kwargs}`` applied to every
            use of that method (e.g. ``{"rise": {"n_masks": 500}}``).
        class_names: optional list of class names (for the pictures).
        verbose: print one line per explanation, and show the progress
            bars of the slow methods (RISE, Score-CAM).
        layer_name: the layer of the gradient/activation methods (see
            ``explain.grad_cam``); ``None``: each method's default.
        from_logits: ``None`` (detected per model), ``True`` or ``False``;
            passed to the methods and the metrics.
        baseline: what deletion replaces the removed cells with
            (``metrics.deletion_auc``): ``"mean"`` (default) the mean colour
            of ``images``, which is what the authors' 0 means on
            mean/std-normalised inputs, whatever range your model takes; or
            a number or an array.

    Returns:
        An ``ExplanationReport``: ``rows``, ``to_markdown()``,
        ``to_json(path)``, ``save(folder)``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> models = {name: keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head=head, input_shape=(64, 64, 3))
    ...     for name, head in (("brnpa", "brnpa"), ("cnn", "gap"))}
    >>> images = np.random.default_rng(0).random((4, 64, 64, 3), "float32")
    >>> report = keras_brnpa.evaluation.compare_explanations(
    ...     models, images, labels=np.array([0, 1, 2, 0]), steps=4)
    >>> [(row["method"], row["map_size"]) for row in report.rows]
    [('brnpa: brnpa', [2, 2]), ('cnn: gradcam', [2, 2])]
    """
    from keras_brnpa import explain
    from keras_brnpa import metrics

    models = _check_models(models)
    try:
        images = np.asarray(images, "float32")
    except (TypeError, ValueError) as error:
        raise invalid("images", type(images).__name__, "an array (B, H, W, C)") from error
    if images.ndim != 4 or 0 in images.shape:
        raise invalid("images", f"<array of shape {images.shape}>", "an array (B, H, W, C)")
    n = len(images)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise invalid("labels", f"<array of shape {labels.shape}>", f"None or {n} int labels")
    if masks is not None:
        masks = np.asarray(masks)
        if len(masks) != n:
            raise invalid("masks", f"<array of shape {masks.shape}>", f"None or {n} masks or boxes")
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    if options is not None and not isinstance(options, Mapping):
        raise invalid("options", options, "None or a dict {method name: kwargs}")
    if class_names is not None:
        class_names = [str(c) for c in class_names]
    plan = _plan(models, methods, options)

    accuracy = {}
    if labels is not None:
        for name, model in models.items():
            accuracy[name] = _accuracy(model, images, labels, batch_size)
    rows, all_maps = [], {}
    curves = {"deletion": {}, "insertion": {}}
    for label, name, method, kwargs in plan:
        tick = time.time()
        model = models[name]
        kwargs = dict(kwargs)
        kwargs.setdefault("batch_size", batch_size)
        kwargs.setdefault("seed", seed)
        kwargs.setdefault("verbose", 1 if verbose else 0)
        if layer_name is not None:
            kwargs.setdefault("layer_name", layer_name)
        if from_logits is not None:
            kwargs.setdefault("from_logits", from_logits)
        try:
            maps = explain.explain(method, model, images, **kwargs)
        except ValueError as error:
            raise ValueError(f"{label}: {error}") from error
        maps = np.asarray(maps, "float32")
        if maps.ndim == 4:  # all parts: part 1, the most active region
            maps = maps[..., 0]
        scoring = dict(steps=steps, batch_size=2 * batch_size, return_curves=True,
                       from_logits=from_logits)
        dauc, deletion = metrics.deletion_auc(model, images, maps, baseline=baseline, **scoring)
        iauc, insertion = metrics.insertion_auc(model, images, maps, **scoring)
        row = {
            "method": label,
            "model": name,
            "explainer": method,
            "map_size": [int(maps.shape[1]), int(maps.shape[2])],
        }
        if labels is not None:
            row["accuracy"] = accuracy[name]
        row["dauc"] = _mean(dauc)
        row["iauc"] = _mean(iauc)
        row["sparsity"] = _mean(metrics.sparsity(maps))
        row["sparsity_density"] = _mean(_density(model, method, images, maps, batch_size))
        if masks is not None:
            row["pointing_game"] = _mean(metrics.pointing_game(maps, masks).astype("float64"))
            row["energy_in_mask"] = _mean(metrics.energy_in_mask(maps, masks))
        row["seconds"] = round(time.time() - tick, 2)
        rows.append(row)
        all_maps[label] = maps
        curves["deletion"][label] = deletion
        curves["insertion"][label] = insertion
        if verbose:
            print(
                f"{label}: " + ", ".join(
                    f"{COLUMNS[key][0]} {_fmt(row[key])}" for key in COLUMNS if key in row
                ) + f" ({row['seconds']} s)"
            )
    settings = {"steps": steps, "batch_size": batch_size, "seed": seed,
                "deletion_baseline": baseline if isinstance(baseline, (str, int, float)) else "array",
                "methods": [
        {"label": label, "model": name, "method": method, "kwargs": kwargs}
        for label, name, method, kwargs in plan
    ]}
    report = ExplanationReport(rows, all_maps, curves, images, labels, masks, class_names,
                               settings)
    report.models = models
    return report
