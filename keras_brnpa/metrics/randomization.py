"""The model-randomisation sanity check (Adebayo et al., NeurIPS 2018).

An explanation of a model's decision should depend on the model: when its
learned weights are replaced by random ones, the map should change. A map
that stays the same (an edge detector, a map computed from the image alone)
explains the image, not the model, and fails the check. Passing it is
necessary, not sufficient: a map can depend on the weights and still rank
the pixels badly (deletion, insertion and ROAD measure that).

``model_randomization`` copies the model (``keras.models.clone_model``; the
user's model is never changed), explains the images with the original
weights, then randomises the copy's layers one after the other **from the
output down** and explains again after each one:

- ``order="cascading"`` (the paper's cascading randomisation): stage ``k``
  has the last ``k`` layers randomised, so the last stage is the fully
  random model;
- ``order="independent"``: stage ``k`` randomises layer ``k`` alone, the
  others keep their weights.

The layers are the model's layers that hold weights (the layers of nested
functional or ``Sequential`` models included, named by their nested path
``"backbone/conv4"``), in reverse topological order. A layer is
re-initialised as at construction: each weight with the layer's own
initialiser (``kernel_initializer``, ``bias_initializer``,
``gamma_initializer``, ``moving_variance_initializer``, ...), seeded; a
weight without one (a custom layer's) is a seeded random permutation of
its own values. Every stage explains the same class per image: the class
the original model predicts (or ``class_index``), so that only the weights
change.

The similarity of the original and the randomised map of each image:

- ``"spearman"``: the Spearman rank correlation of the two maps'
  values (flattened; average ranks for ties; ``NaN`` when either map is
  constant), equal to ``scipy.stats.spearmanr`` on them;
- ``"ssim"``: the structural similarity (Wang et al. 2004) of the two maps,
  each first scaled to ``[0, 1]`` (min-max; a constant map is all 0), with
  a Gaussian window of standard deviation 1.5 px truncated at 3.5
  standard deviations (11 x 11), constants ``(0.01)^2`` and ``(0.03)^2``,
  mirrored borders (``scipy.ndimage.gaussian_filter``, mode
  ``"reflect"``), averaged over every pixel (maps with several channels:
  over the channels too).

Reference: Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim, "Sanity Checks
for Saliency Maps", NeurIPS 2018; smooth and efficient MPRT: Hedström et
al. 2023 (in Quantus).
"""

import inspect
import numbers
import warnings

import numpy as np

from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_class_index
from keras_brnpa._checks import check_images
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import invalid
from keras_brnpa._checks import resolve_classes
from keras_brnpa._warnings import BRNPAWarning

ORDERS = ("cascading", "independent")
SIMILARITIES = ("spearman", "ssim")

#: SSIM's Gaussian window (Wang et al. 2004): standard deviation, truncation.
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5


def _spearman(a, b):
    """Spearman rank correlation of each pair of maps, ``(B,)``.

    Average ranks for ties (``scipy.stats.rankdata``), then the Pearson
    correlation of the ranks; ``NaN`` where either map is constant.
    """
    from scipy.stats import rankdata

    a = rankdata(np.asarray(a, np.float64).reshape(len(a), -1), axis=1)
    b = rankdata(np.asarray(b, np.float64).reshape(len(b), -1), axis=1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (a * b).sum(axis=1) / denominator
    return np.where(denominator > 0, result, np.nan)


def _unit_range(maps):
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0)


def _ssim(a, b):
    """Structural similarity of each pair of maps ``(B, h, w[, k])``, ``(B,)``.

    As the module docstring defines it: min-max scaled maps, Gaussian
    window (1.5 px), mirrored borders, mean over pixels (and channels).
    """
    from scipy.ndimage import gaussian_filter

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim == 3:
        a, b = a[..., None], b[..., None]
    a, b = _unit_range(a), _unit_range(b)

    def window(x):
        return gaussian_filter(x, sigma=(0, SSIM_SIGMA, SSIM_SIGMA, 0), mode="reflect",
                               truncate=SSIM_TRUNCATE)

    c1, c2 = 0.01**2, 0.03**2
    mean_a, mean_b = window(a), window(b)
    var_a = window(a * a) - mean_a**2
    var_b = window(b * b) - mean_b**2
    covariance = window(a * b) - mean_a * mean_b
    index = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    )
    return index.reshape(len(index), -1).mean(axis=1)


_MEASURES = {"spearman": _spearman, "ssim": _ssim}


def _weighted_layers(model):
    """``(path, layer)`` of every layer with weights, from the output down.

    Nested functional and ``Sequential`` models are walked (their layers
    named ``"outer/inner"``); any other layer with weights (a subclassed
    model, a custom layer with sublayers) is one unit. Reverse topological
    order: the output layer first.
    """
    from keras_brnpa.models import is_graph_model

    found, seen = [], set()

    def walk(container, prefix):
        for layer in container.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            path = prefix + layer.name
            if is_graph_model(layer):
                walk(layer, path + "/")
            elif layer.weights:
                found.append((path, layer))

    walk(model, "")
    return found[::-1]


def _initializer(layer, variable):
    """The layer's initialiser of ``variable`` (by its name), or ``None``."""
    import keras

    name = variable.name.split("/")[-1].split(":")[0]
    for attribute in (f"{name}_initializer", f"{name.replace('_kernel', '')}_initializer"):
        found = getattr(layer, attribute, None)
        if isinstance(found, keras.initializers.Initializer):
            return found
    return None


def _randomize_layer(layer, seed):
    """Re-initialise ``layer``'s weights in place (as the module docstring says)."""
    import keras

    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        init = _initializer(layer, variable)
        shape = tuple(int(s) for s in variable.shape)
        if init is not None:
            config = init.get_config()
            if "seed" in config:
                config["seed"] = int(rng.integers(2**31 - 1))
            value = type(init).from_config(config)(shape=shape, dtype=variable.dtype)
            value = keras.ops.convert_to_numpy(value)
        else:
            current = keras.ops.convert_to_numpy(variable.value)
            value = rng.permutation(current.reshape(-1)).reshape(current.shape)
        variable.assign(value)


def _copy(model):
    import keras

    from keras_brnpa.models import is_graph_model

    if not isinstance(model, keras.Model) or not is_graph_model(model):
        raise invalid(
            "model",
            f"<{type(model).__name__}>",
            "a functional or Sequential keras.Model (its copy's layers are randomised)",
        )
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _check_method(method):
    from keras_brnpa import explain

    if callable(method):
        return method
    return explain.method_name(method)


def _explainer(method, kwargs, classes, seed, batch_size):
    """``run(model, images) -> maps`` for a method name or a callable."""
    from keras_brnpa import explain

    given = {"class_index": classes, "seed": seed, "batch_size": batch_size}
    if isinstance(method, str):
        options = {**given, "verbose": 0, **kwargs}
        return lambda model, images: explain.explain(method, model, images, **options)
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        parameters = {}
    every = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    options = {k: v for k, v in given.items() if every or k in parameters}
    options.update(kwargs)
    return lambda model, images: method(model, images, **options)


def _check_layers(layers, available):
    if layers is None:
        return available
    by_path = dict(available)
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)) or not layers:
        raise invalid("layers", layers, "None or a non-empty list of layer paths")
    chosen = []
    for path in layers:
        if path not in by_path:
            raise invalid(
                "layers", path,
                "paths of layers with weights, among: " + ", ".join(p for p, _ in available),
            )
        chosen.append((path, by_path[path]))
    return chosen


def _maps(run, model, images):
    maps = np.asarray(run(model, images), np.float64)
    if maps.ndim not in (3, 4) or maps.shape[0] != len(images):
        raise invalid(
            "method", f"<maps of shape {maps.shape}>",
            f"a method returning (B, h, w) or (B, h, w, k) maps, B={len(images)}",
        )
    return maps


def model_randomization(
    model,
    images,
    method,
    order="cascading",
    similarity="spearman",
    seed=0,
    layers=None,
    class_index=None,
    threshold=0.5,
    batch_size=32,
    return_maps=False,
    **kwargs,
):
    """Model-randomisation sanity check: how much the maps change with random weights.

    Explains ``images`` with ``method`` on the model, then on a copy whose
    layers are randomised from the output down (cascading: one more layer
    at each stage; independent: one layer at a time), and measures the
    similarity of each image's original and randomised maps. A method that
    explains the model gives maps that fall apart (similarity near 0) once
    the weights are random; a map that stays similar does not depend on the
    model and fails. See the module docstring for the exact definition.

    Args:
        model: a functional or ``Sequential`` ``keras.Model`` (copied; it is
            never changed).
        images: ``(B, H, W, C)`` images, as the model takes them.
        method: a method name of ``keras_brnpa.explain.METHODS``
            (``"gradcam"``, ``"rise"``, ...) or a callable
            ``(model, images, **kwargs) -> maps`` ``(B, h, w)`` or
            ``(B, h, w, k)``; a callable receives ``class_index``,
            ``seed`` and ``batch_size`` when its signature takes them.
        order: ``"cascading"`` or ``"independent"``.
        similarity: ``"spearman"`` (rank correlation) or ``"ssim"``.
        seed: int >= 0, seed of the randomisation (and of a random method).
        layers: ``None`` (every layer with weights, from the output down)
            or a list of layer paths (``"backbone/conv4"``), randomised in
            the order given.
        class_index: ``None`` (the class the original model predicts), an
            int or one int per image: the class explained at every stage.
        threshold: images whose similarity stays ``>= threshold`` at every
            stage are flagged (their maps do not follow the weights).
        batch_size: int >= 1, images per forward pass.
        return_maps: also return the maps (``"maps"``: ``"original"`` and
            one entry per stage).
        **kwargs: the method's own arguments (``layer_name``, ``n_masks``,
            ...).

    Returns:
        A dict: ``"layers"``, the paths in the order randomised;
        ``"similarity"``, ``{path: (B,) float64}`` (after randomising that
        layer, and in cascading order every layer before it);
        ``"flagged"``, a ``(B,)`` bool array; ``"order"`` and ``"measure"``;
        with ``return_maps``, ``"maps"``. A ``BRNPAWarning`` names the
        number of flagged images.

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((16, 16, 3)),
    ...     keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, name="dense")])
    >>> images = np.random.default_rng(0).random((2, 16, 16, 3), "float32")
    >>> result = keras_brnpa.metrics.model_randomization(model, images, "gradcam")
    >>> result["layers"], result["similarity"]["conv"].shape
    (['dense', 'conv'], (2,))
    """
    import keras

    if not isinstance(model, keras.Model):
        raise invalid("model", f"<{type(model).__name__}>", "a keras.Model")
    images = check_images(images, model=model)
    method = _check_method(method)
    if order not in ORDERS:
        raise invalid("order", order, f"one of {ORDERS}")
    if similarity not in SIMILARITIES:
        raise invalid("similarity", similarity, f"one of {SIMILARITIES}")
    seed = check_seed(seed)
    if seed < 0:
        raise invalid("seed", seed, "an integer >= 0")
    class_index = check_class_index(class_index, len(images))
    if (
        isinstance(threshold, (bool, np.bool_))
        or not isinstance(threshold, numbers.Real)
        or not np.isfinite(threshold)
    ):
        raise invalid("threshold", threshold, "a finite number")
    batch_size = check_positive_int("batch_size", batch_size)
    return_maps = check_bool("return_maps", return_maps)
    copy = _copy(model)
    stages = _check_layers(layers, _weighted_layers(copy))
    if not stages:
        raise invalid("model", f"<{type(model).__name__} {model.name!r}>", "a model with weights")

    from keras_brnpa.metrics._curves import predict_function

    predict = predict_function(model)
    outputs = np.concatenate(
        [predict(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    )
    classes = resolve_classes(class_index, outputs)
    run = _explainer(method, kwargs, classes, seed, batch_size)
    measure = _MEASURES[similarity]
    original = _maps(run, model, images)
    result = {"layers": [path for path, _ in stages], "similarity": {}, "order": order,
              "measure": similarity}
    maps = {"original": original}
    for index, (path, layer) in enumerate(stages):
        saved = [keras.ops.convert_to_numpy(w.value) for w in layer.weights]
        _randomize_layer(layer, [seed, index])
        randomized = _maps(run, copy, images)
        if randomized.shape != original.shape:
            raise invalid("method", f"<maps of shape {randomized.shape}>",
                          f"maps of one shape at every stage, {original.shape}")
        result["similarity"][path] = measure(original, randomized)
        if return_maps:
            maps[path] = randomized
        if order == "independent":
            for variable, value in zip(layer.weights, saved):
                variable.assign(value)
    table = np.stack(list(result["similarity"].values()))
    with np.errstate(invalid="ignore"):
        result["flagged"] = np.all(table >= threshold, axis=0)
    if return_maps:
        result["maps"] = maps
    flagged = int(result["flagged"].sum())
    if flagged:
        warnings.warn(
            f"model_randomization: the maps of {flagged} of {len(images)} images keep a "
            f"{similarity} similarity >= {threshold} after every randomisation of the model's "
            "weights: they do not depend on the model (the sanity check fails for them).",
            BRNPAWarning, stacklevel=2)
    return result
