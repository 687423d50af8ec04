"""Compare explanation methods on one or several models: a methods x metrics table."""

import time
import warnings
from collections.abc import Mapping

import numpy as np

from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid
from keras_brnpa._warnings import BRNPAWarning
from keras_brnpa.evaluation import stats
from keras_brnpa.evaluation.degenerate import degenerate_maps
from keras_brnpa.evaluation.degenerate import warning_message
from keras_brnpa.evaluation.report import COLUMNS
from keras_brnpa.evaluation.report import DEFAULT_METRICS
from keras_brnpa.evaluation.report import METRICS
from keras_brnpa.evaluation.report import ExplanationReport

#: ``metric_options`` keys and the keyword arguments each one accepts.
METRIC_OPTIONS = {"road": ("fractions", "noise")}


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


def _density(model, method, images, maps, batch_size):
    """The authors' sparsity: all the part maps times the normalised feature
    norm for the model's own attention, the map itself for other methods."""
    from keras_brnpa import metrics
    from keras_brnpa.explain.attention import parts_and_norm
    from keras_brnpa.models import head_kind

    if method in ("brnpa", "attention") and head_kind(model) in ("brnpa", "bcnn"):
        return metrics.sparsity_density(*parts_and_norm(model, images, batch_size))
    return metrics.sparsity_density(maps)




def _check_metrics(names):
    """The metric names, in ``METRICS`` order (``None``: ``DEFAULT_METRICS``)."""
    if names is None:
        return DEFAULT_METRICS
    if isinstance(names, str):
        names = (names,)
    expected = f"None or a non-empty list of metric names among {list(METRICS)}"
    try:
        names = list(names)
    except TypeError:
        raise invalid("metrics", names, expected) from None
    unknown = [name for name in names if not isinstance(name, str) or name not in METRICS]
    if not names or unknown:
        if unknown:
            expected += f" (unknown: {', '.join(repr(name) for name in unknown)})"
        raise invalid("metrics", names, expected)
    return tuple(name for name in METRICS if name in names)


def _check_metric_options(metric_options, chosen):
    """``{"road": {"fractions": ..., "noise": ...}}`` checked, ROAD's defaults filled."""
    from keras_brnpa.metrics import road_metric

    options = {} if metric_options is None else metric_options
    if not isinstance(options, Mapping):
        raise invalid("metric_options", metric_options,
                      "None or a dict {'road': {'fractions': ..., 'noise': ...}}")
    for key, kwargs in options.items():
        allowed = METRIC_OPTIONS.get(key)
        if allowed is None or not isinstance(kwargs, Mapping) or set(kwargs) - set(allowed):
            raise invalid("metric_options", metric_options,
                          "None or a dict {'road': {'fractions': ..., 'noise': ...}}")
    road = dict(options.get("road", {}))
    if not {"road", "road_lerf"} & set(chosen):
        return {}
    return {"road": {
        "fractions": road_metric._check_fractions(
            road.get("fractions", road_metric.FRACTIONS)).tolist(),
        "noise": road_metric._check_noise(road.get("noise", road_metric.NOISE)),
    }}


def _check_batch(name, x):
    try:
        x = np.asarray(x, "float32")
    except (TypeError, ValueError) as error:
        raise invalid(name, type(x).__name__, "an array (B, H, W, C)") from error
    if x.ndim != 4 or 0 in x.shape:
        raise invalid(name, f"<array of shape {x.shape}>", "an array (B, H, W, C)")
    return x


def _batches(images, labels, masks, chunk_size):
    """``(x, y or None, masks or None)`` chunks of ``images`` (an array or an
    iterable of batches), converted to float32 one chunk at a time."""
    if isinstance(images, np.ndarray) or (
        hasattr(images, "shape") and hasattr(images, "__array__")
    ):
        for start in range(0, len(images), chunk_size):
            stop = start + chunk_size
            yield (
                _check_batch("images", images[start:stop]),
                None if labels is None else labels[start:stop],
                None if masks is None else masks[start:stop],
            )
        return
    for batch in images:
        if isinstance(batch, (tuple, list)):
            if len(batch) not in (1, 2, 3):
                raise invalid("images", f"<a batch of {len(batch)} items>",
                              "batches x, (x, y) or (x, y, masks)")
            x, y, m = (tuple(batch) + (None, None))[:3]
        else:
            x, y, m = batch, None, None
        x = _check_batch("images", x)
        if y is not None:
            y = np.asarray(y)
            if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
                raise invalid("images", f"<labels of shape {y.shape} in a batch of {len(x)}>",
                              "int labels (B,)")
        if m is not None:
            m = np.asarray(m)
            if len(m) != len(x):
                raise invalid("images", f"<{len(m)} masks in a batch of {len(x)}>",
                              "one mask or box per image")
        for start in range(0, len(x), chunk_size):
            stop = start + chunk_size
            yield (x[start:stop], None if y is None else y[start:stop],
                   None if m is None else m[start:stop])


class _Row:
    """What one explanation accumulates over the chunks."""

    def __init__(self, label, name, method, kwargs):
        self.label, self.name, self.method, self.kwargs = label, name, method, kwargs
        self.values = {}
        self.maps = []
        self.deletion, self.insertion = [], []
        self.degenerate = 0
        self.map_size = None
        self.seconds = 0.0

    def add(self, key, values):
        self.values.setdefault(key, []).append(np.asarray(values, "float64").reshape(-1))


def _score_chunk(row, model, x, masks, steps, batch_size, seed, layer_name, from_logits,
                 baseline, room, chosen, road_options):
    """Explain and score one chunk of images for one row with the ``chosen`` metrics."""
    from keras_brnpa import explain
    from keras_brnpa import metrics

    tick = time.time()
    kwargs = dict(row.kwargs)
    kwargs.setdefault("batch_size", batch_size)
    kwargs.setdefault("seed", seed)
    kwargs.setdefault("verbose", 0)  # one progress bar for the whole job
    if layer_name is not None:
        kwargs.setdefault("layer_name", layer_name)
    if from_logits is not None:
        kwargs.setdefault("from_logits", from_logits)
    try:
        maps = explain.explain(row.method, model, x, **kwargs)
    except ValueError as error:
        raise ValueError(f"{row.label}: {error}") from error
    maps = np.asarray(maps, "float32")
    if maps.ndim == 4:  # all parts: part 1, the most active region
        maps = maps[..., 0]
    row.map_size = [int(maps.shape[1]), int(maps.shape[2])]
    scoring = dict(steps=steps, batch_size=2 * batch_size, return_curves=True,
                   from_logits=from_logits)
    deletion = insertion = None
    if "dcic" in chosen:  # DC, IC and the AUCs from one run of each curve
        dc, deletion = metrics.deletion_correlation(model, x, maps, baseline=baseline,
                                                    **scoring)
        ic, insertion = metrics.insertion_correlation(model, x, maps, **scoring)
        deletion, insertion = deletion[:, 1:], insertion[:, 1:]  # the AUCs' curves
        row.add("dc", dc)
        row.add("ic", ic)
        dauc, iauc = metrics.curve_area(deletion), metrics.curve_area(insertion)
    else:
        if "dauc" in chosen:
            dauc, deletion = metrics.deletion_auc(model, x, maps, baseline=baseline, **scoring)
        if "iauc" in chosen:
            iauc, insertion = metrics.insertion_auc(model, x, maps, **scoring)
    if "dauc" in chosen:
        row.add("dauc", dauc)
    if "iauc" in chosen:
        row.add("iauc", iauc)
    if deletion is not None:
        row.deletion.append(np.asarray(deletion))
    if insertion is not None:
        row.insertion.append(np.asarray(insertion))
    for name, order in (("road", "morf"), ("road_lerf", "lerf")):
        if name in chosen:
            row.add(name, metrics.road(model, x, maps, order=order, seed=seed,
                                       from_logits=from_logits, batch_size=2 * batch_size,
                                       **road_options))
    if "sparsity" in chosen:
        row.add("sparsity", metrics.sparsity(maps))
    if "density" in chosen:
        row.add("sparsity_density", _density(model, row.method, x, maps, batch_size))
    if masks is not None and "pointing" in chosen:
        row.add("pointing_game", metrics.pointing_game(maps, masks))
        row.add("energy_in_mask", metrics.energy_in_mask(maps, masks))
    row.degenerate += int(degenerate_maps(maps).sum())
    if room > 0:
        row.maps.append(maps[:room])
    row.seconds += time.time() - tick


class _Counter:
    """``add(k)`` over an ``update(done)`` progress callable."""

    def __init__(self, update):
        self.update, self.done = update, 0

    def add(self, k):
        self.done += k
        self.update(self.done)


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
    chunk_size=256,
    keep_maps=256,
    source=None,
    metrics=None,
    metric_options=None,
):
    """Score explanation methods on one or several models, in one table.

    For each explanation (a method applied to a model) it computes the maps
    of ``images`` for each image's predicted class, then per image the
    ``metrics`` (by default the deletion and insertion AUCs,
    ``metrics.deletion_auc`` / ``insertion_auc`` with the model's output
    scale detected, the sparsity, and with ``masks`` the pointing game and
    the energy in the mask); with ``labels`` whether the model's prediction
    is right.

    The metric names (``METRICS``; each adds the columns in brackets):

    - ``"dauc"``, ``"iauc"`` [``dauc``, ``iauc``]: deletion and insertion
      AUC (``steps`` steps; deletion fills with ``baseline``);
    - ``"dcic"`` [``dc``, ``ic``]: deletion and insertion correlation
      (``metrics.deletion_correlation`` / ``insertion_correlation``, Gomez
      et al. 2022; higher is better). The AUCs then come from the same
      curves (one more forward pass per image and curve, the intact or
      start image), so asking for both costs little more than the AUCs;
    - ``"road"`` [``road``]: ROAD, most relevant pixels first
      (``metrics.road(order="morf")``, Rong et al. 2022; lower is better)
      with ``seed`` as its noise seed; ``"road_lerf"`` [``road_lerf``]: least
      relevant first (higher is better). Each costs one imputation and one
      forward pass per image and fraction (9 by default): about the cost of
      a 9-step deletion curve plus the sparse solves, so LeRF is not in
      ``"road"``: ask for it when you read the MoRF/LeRF gap;
    - ``"sparsity"`` [``sparsity``], ``"density"`` [``sparsity_density``];
    - ``"pointing"`` [``pointing_game``, ``energy_in_mask``]: needs masks.

    Every mean comes with ``n`` and a 95 % interval: the percentile
    bootstrap over images (``stats.bootstrap_ci``, 1,000 resamples, seeded
    with ``seed``), and every per-image value is kept
    (``report.per_image``), so that two rows can be compared by a paired
    test (``report.compare``). Maps that are constant (all zero included)
    are counted per row (``degenerate``) with one ``UserWarning`` per row.

    The images are processed in chunks of ``chunk_size`` (every method and
    metric on a chunk, then the next), so the memory does not grow with
    their number beyond the per-image values, the curves and the maps kept
    for the gallery (``keep_maps``); pass an iterable of batches to avoid
    holding all the images at all.

    Args:
        models: a ``keras.Model`` or a dict ``{name: keras.Model}``.
        images: ``(B, H, W, C)`` images as the models take them, or an
            iterable of batches ``x``, ``(x, y)`` or ``(x, y, masks)``
            (e.g. a ``datasets.ArrayDataset``, a generator), labels and
            masks then coming from the batches.
        labels: ``None`` or ``(B,)`` int labels (adds the accuracy), with
            an array of images.
        masks: ``None``, ``(B, H, W)`` ground-truth masks or ``(B, 4)``
            boxes (adds the pointing game and the energy in the mask), with
            an array of images.
        methods: ``"auto"`` (each model's own attention when it has a
            BR-NPA or B-CNN head, else Grad-CAM), or a list whose items
            are method names from ``keras_brnpa.explain.METHODS`` (applied
            to every model) or tuples ``(label, model name, method,
            kwargs)``.
        steps: deletion/insertion steps.
        batch_size: images per forward pass.
        seed: seed of the random methods (RISE) and of the bootstrap.
        options: optional dict ``{method name: kwargs}`` applied to every
            use of that method (e.g. ``{"rise": {"n_masks": 500}}``).
        class_names: optional list of class names (for the pictures).
        verbose: show one progress bar (``keras.utils.Progbar``) for the
            whole job, in maps done.
        layer_name: the layer of the gradient/activation methods (see
            ``explain.grad_cam``); ``None``: each method's default.
        from_logits: ``None`` (detected per model), ``True`` or ``False``;
            passed to the methods and the metrics.
        baseline: what deletion replaces the removed cells with
            (``metrics.deletion_auc``): ``"mean"`` (default), a number or
            an array.
        chunk_size: images explained and scored together.
        keep_maps: maps (and images, masks) of the first ``keep_maps``
            images kept in the report for the gallery; ``None``: all.
        source: optional dict describing the images, written to
            metrics.json and report.md, e.g. ``{"data": "photos/", "split":
            "validation", "files": [...]}``.
        metrics: ``None`` (``DEFAULT_METRICS``: ``dauc``, ``iauc``,
            ``sparsity``, ``density``, and ``pointing`` when there are
            masks, the table of keras_brnpa 0.2) or a list of names among
            ``METRICS`` (above); ``"pointing"`` named without masks is an
            error.
        metric_options: optional ``{"road": {"fractions": ..., "noise":
            ...}}`` for ROAD (both orders): the removed fractions (default
            0.1 to 0.9) and the noise's standard deviation in the model's
            input units (default 0.01).

    Returns:
        An ``ExplanationReport``: ``rows``, ``per_image``, ``compare()``,
        ``to_markdown()``, ``to_json(path)``, ``save(folder)``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> models = {name: keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head=head, input_shape=(64, 64, 3))
    ...     for name, head in (("brnpa", "brnpa"), ("cnn", "gap"))}
    >>> images = np.random.default_rng(0).random((4, 64, 64, 3), "float32")
    >>> report = keras_brnpa.evaluation.compare_explanations(
    ...     models, images, labels=np.array([0, 1, 2, 0]), steps=4)
    >>> [(row["method"], row["map_size"], row["n"]) for row in report.rows]
    [('brnpa: brnpa', [2, 2], 4), ('cnn: gradcam', [2, 2], 4)]
    >>> len(report.rows[0]["dauc_ci95"])
    2
    >>> report = keras_brnpa.evaluation.compare_explanations(
    ...     models["cnn"], images, steps=4, metrics=["dauc", "road"],
    ...     metric_options={"road": {"fractions": [0.3, 0.6]}})
    >>> sorted(report.per_image["gradcam"])
    ['dauc', 'road']
    """
    import keras

    from keras_brnpa.models import head_kind

    models = _check_models(models)
    is_array = isinstance(images, (np.ndarray, list, tuple)) or hasattr(images, "__array__")
    if not is_array and not hasattr(images, "__iter__") and not hasattr(images, "__getitem__"):
        raise invalid("images", type(images).__name__,
                      "an array (B, H, W, C) or an iterable of batches")
    if is_array:
        try:
            images = images if isinstance(images, np.ndarray) else np.asarray(images, "float32")
        except (TypeError, ValueError) as error:
            raise invalid("images", type(images).__name__, "an array (B, H, W, C)") from error
        if images.ndim != 4 or 0 in images.shape:
            raise invalid("images", f"<array of shape {images.shape}>", "an array (B, H, W, C)")
        n = len(images)
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
                raise invalid("labels", f"<array of shape {labels.shape}>",
                              f"None or {n} int labels")
        if masks is not None:
            masks = np.asarray(masks)
            if len(masks) != n:
                raise invalid("masks", f"<array of shape {masks.shape}>",
                              f"None or {n} masks or boxes")
    else:
        n = None
        for name, value in (("labels", labels), ("masks", masks)):
            if value is not None:
                raise invalid(name, f"<{type(value).__name__}>",
                              "None when images is an iterable of batches (give them in the "
                              "batches: (x, y) or (x, y, masks))")
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    chunk_size = check_positive_int("chunk_size", chunk_size)
    if keep_maps is not None:
        keep_maps = check_positive_int("keep_maps", keep_maps)
    stats._check_seed(seed)
    if options is not None and not isinstance(options, Mapping):
        raise invalid("options", options, "None or a dict {method name: kwargs}")
    if source is not None and not isinstance(source, Mapping):
        raise invalid("source", source, "None or a dict (e.g. {'split': 'validation'})")
    if class_names is not None:
        class_names = [str(c) for c in class_names]
    explicit = metrics is not None
    chosen = _check_metrics(metrics)
    road_settings = _check_metric_options(metric_options, chosen)
    plan = [_Row(*entry) for entry in _plan(models, methods, options)]

    progress = None
    if verbose and n is None:
        progress = keras.utils.Progbar(None, unit_name="map")
    elif verbose:  # a live bar on a terminal, one line per 10 % in a log file
        from keras_brnpa._progress import progress as show

        progress = _Counter(show(n * len(plan), unit="map"))
    done = 0
    kept_images, kept_masks, all_labels, correct = [], [], [], {name: [] for name in models}
    has_masks = has_labels = None
    for x, y, m in _batches(images, labels, masks, chunk_size):
        if has_labels is None:
            has_labels, has_masks = y is not None, m is not None
            if explicit and "pointing" in chosen and not has_masks:
                raise invalid("metrics", list(chosen),
                              "'pointing' only with masks (ground-truth masks or boxes)")
        elif has_labels != (y is not None) or has_masks != (m is not None):
            raise invalid("images", "<batches with and without labels or masks>",
                          "every batch of the same form")
        room = len(x) if keep_maps is None else max(0, keep_maps - done)
        if room:
            kept_images.append(x[:room])
            if m is not None:
                kept_masks.append(np.asarray(m)[:room])
        if y is not None:
            all_labels.append(np.asarray(y))
            for name, model in models.items():
                predictions = [np.asarray(model.predict_on_batch(x[i:i + batch_size])).argmax(-1)
                               for i in range(0, len(x), batch_size)]
                correct[name].append(np.concatenate(predictions) == np.asarray(y))
        for row in plan:
            _score_chunk(row, models[row.name], x, m, steps, batch_size, seed, layer_name,
                         from_logits, baseline, room, chosen, road_settings.get("road", {}))
            if progress is not None:
                progress.add(len(x))
        done += len(x)
    if done == 0:
        raise invalid("images", "<no batch>", "at least one image")

    labels = np.concatenate(all_labels) if has_labels else None
    rows, per_image, all_maps = [], {}, {}
    curves = {kind: {} for kind, parts in (("deletion", plan[0].deletion),
                                          ("insertion", plan[0].insertion)) if parts}
    for row in plan:
        values = {key: np.concatenate(row.values[key]) for key in COLUMNS if key in row.values}
        if labels is not None:
            values = {"accuracy": np.concatenate(correct[row.name]).astype("float64"), **values}
        result = {"method": row.label, "model": row.name, "explainer": row.method,
                  "map_size": row.map_size, "n": done}
        for key in COLUMNS:
            if key in values:
                finite = values[key][np.isfinite(values[key])]
                result[key] = float(finite.mean()) if finite.size else float("nan")
                result[f"{key}_ci95"] = stats.bootstrap_ci(values[key], seed=seed)
        result["degenerate"] = row.degenerate
        result["seconds"] = round(row.seconds, 2)
        rows.append(result)
        per_image[row.label] = values
        all_maps[row.label] = np.concatenate(row.maps)
        for kind, parts in (("deletion", row.deletion), ("insertion", row.insertion)):
            if parts:
                curves[kind][row.label] = np.concatenate(parts)
        if row.degenerate:
            warnings.warn(
                warning_message(row.label, row.method, row.degenerate, done,
                                head_kind(models[row.name])),
                BRNPAWarning, stacklevel=2)
    settings = {
        "steps": steps, "batch_size": batch_size, "seed": seed, "chunk_size": chunk_size,
        "n_resamples": stats.N_RESAMPLES, "interval": "95% percentile bootstrap over images",
        "deletion_baseline": baseline if isinstance(baseline, (str, int, float)) else "array",
        "metrics": list(chosen), **road_settings,
        "methods": [{"label": row.label, "model": row.name, "method": row.method,
                     "kwargs": row.kwargs} for row in plan],
    }
    report = ExplanationReport(
        rows, all_maps, curves, np.concatenate(kept_images), labels,
        np.concatenate(kept_masks) if kept_masks else None, class_names, settings,
        per_image=per_image, source=source)
    report.models = models
    return report
