"""Shared helpers of the explainers: checks, batching, resizing, the tapped model."""

import functools
import numbers
import weakref

import keras

from keras_brnpa import _checks
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid
from keras_brnpa._checks import single_output
from keras_brnpa._image import resize_maps
from keras_brnpa._image import resize_maps_tensor
from keras_brnpa.models import inspection


#: Any backend tensor (or array-like) as a NumPy array.
to_numpy = functools.partial(_checks.to_numpy, "x")


def check_model(model):
    if not isinstance(model, keras.Model):
        raise invalid("model", model, "a keras.Model")
    return model


def check_images(images, name="images", model=None):
    """Validate a batch of channels-last images; returns float32 NumPy.

    Non-finite values are refused; with ``model``, images that look like
    another pixel range than the model's get a warning
    (``inspection.check_input_scale``).
    """
    array = _checks.check_images(images, name, model=model)
    if model is not None:
        inspection.check_input_scale(model, array, name)
    return array


def check_batch_size(batch_size):
    return check_positive_int("batch_size", batch_size)


def check_size(name, size):
    """Validate an ``(H, W)`` pair of positive integers."""
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or any(
            isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in size
        )
    ):
        raise invalid(name, size, "a tuple (H, W) of two integers >= 1")
    return int(size[0]), int(size[1])


def resolve_upsample(upsample, image_size):
    """``False`` -> ``None``; ``True`` -> the image size; a pair -> itself."""
    if upsample is False or upsample is None:
        return None
    if upsample is True:
        return tuple(int(s) for s in image_size)
    if isinstance(upsample, (tuple, list)):
        return check_size("upsample", upsample)
    raise invalid("upsample", upsample, "False, True (the image size) or a tuple (H, W)")


def upsample(maps, size):
    """Resize saliency maps bilinearly (half-pixel centres, no antialiasing).

    ``keras.ops.image.resize(..., "bilinear", antialias=False)``, the
    same numbers (to float32 precision) on every backend. Non-negative
    maps stay non-negative and a constant map stays constant.

    Args:
        maps: array ``(B, h, w)`` or ``(B, h, w, P)`` (one map per part).
        size: ``(H, W)``, the output size, usually the image size.

    Returns:
        A float32 NumPy array ``(B, H, W)`` or ``(B, H, W, P)``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> maps = np.arange(4, dtype="float32").reshape(1, 2, 2)
    >>> keras_brnpa.explain.upsample(maps, (4, 4)).shape
    (1, 4, 4)
    >>> keras_brnpa.explain.upsample(maps, (2, 2))[0].tolist()
    [[0.0, 1.0], [2.0, 3.0]]
    """
    try:
        array = to_numpy(maps)
    except Exception as error:
        raise invalid("maps", type(maps).__name__, "an array (B, h, w) or (B, h, w, P)") from error
    if array.ndim not in (3, 4) or 0 in array.shape:
        raise invalid(
            "maps", f"<array of shape {array.shape}>", "a non-empty array (B, h, w) or (B, h, w, P)"
        )
    size = check_size("size", size)
    return resize_maps(array, size)


def progress(total, verbose, label, unit="image"):
    """``update(done)``: progress when ``verbose`` (``keras_brnpa._progress``), else nothing."""
    if verbose not in (0, 1, False, True):
        raise invalid("verbose", verbose, "0 (silent) or 1 (a progress bar)")
    if not verbose:
        return lambda done: None
    from keras_brnpa._progress import progress as show

    return show(total, label, unit)  # a bar on a terminal, a line per 10 % in a log


def batches(n, batch_size):
    """Yield slices covering ``range(n)`` in chunks of ``batch_size``."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _bucket(n):
    """Smallest power of two >= n."""
    return 1 << max(0, int(n - 1).bit_length())


def call_model(fn, x, pad_to=None):
    """Run a Keras model/function in inference mode, return NumPy float32.

    With ``pad_to`` (the batch size) the batch is zero-padded to the next
    power of two, at most ``pad_to``, so that a stream of batches of varying
    sizes only shows a few shapes to the model (each new shape costs a
    compilation on JAX).
    """
    n = len(x)
    if pad_to is not None:
        x, n = pad_batch(x, pad_to)
    out = single_output(fn(keras.ops.convert_to_tensor(x), training=False))
    return to_numpy(out)[:n].astype("float32")


def pad_batch(x, pad_to):
    """``(padded, n)``: ``x`` (an array or a backend tensor) as a backend
    tensor zero-padded along axis 0 to the next power of two of its ``n``
    rows, at most ``pad_to`` (a stream of batches then shows only a few
    shapes to a compiled function)."""
    x = keras.ops.convert_to_tensor(x)
    n = int(x.shape[0])
    target = max(n, min(_bucket(n), pad_to))
    if target != n:
        zeros = keras.ops.zeros((target - n,) + tuple(x.shape[1:]), dtype=x.dtype)
        x = keras.ops.concatenate([x, zeros], axis=0)
    return x, n


def finish_maps(maps, size):
    """Concatenate device maps, resize them to ``size`` (or not), return NumPy."""
    maps = keras.ops.concatenate(maps, axis=0) if len(maps) > 1 else maps[0]
    if size is not None:
        maps = resize_maps_tensor(maps, size)
    return to_numpy(keras.ops.cast(maps, "float32")).astype("float32", copy=False)


# Compiled calls of a model's pieces (see _gradients), built once per model
# and key (the layer, the output view, the kind of call).
_COMPILED = weakref.WeakKeyDictionary()


def compiled(model, key, build):
    """``build()`` the first time ``(model, key)`` is asked for, then reuse it.

    What ``build`` returns must not hold a strong reference to ``model``
    (the cache would keep it alive): reference it through a ``weakref``.
    """
    try:
        cache = _COMPILED.setdefault(model, {})
    except TypeError:  # not weak-referenceable: no cache
        return build()
    if key not in cache:
        cache[key] = build()
    return cache[key]


def model_forward(model, view=False):
    """The model's compiled inference call ``(images tensor) -> outputs``.

    The outputs are the model's: a tensor, or a dict/list of them for a
    model with several outputs (``single_output`` checks).

    ``view`` names the output view the call is made in (``True`` inside
    ``models.logits_view``): a compiled function keeps the layers as they
    were when it was traced, so each view gets its own.
    """
    from keras_brnpa.explain._gradients import compile_call

    if not model.built:
        raise invalid("model", f"<unbuilt {type(model).__name__}>", "a built keras.Model")
    reference = weakref.ref(model)

    def call(x, training=False):
        return reference()(x, training=training)

    return compiled(model, ("model", view), lambda: compile_call(call, model.variables))


def check_outputs(model):
    """Number of classes of a one-output classifier (``None`` if unknown).

    A subclassed model that has not been called has no known output
    shape: its outputs are checked when it runs (``call_model``).
    """
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, (list, dict)) or len(shape) != 2:
        raise invalid(
            "model",
            f"<{type(model).__name__} {model.name!r} with output shape {shape}>",
            "a classifier with one output of shape (B, num_classes)",
        )
    return shape[-1]


def slice_classes(class_index, index):
    return None if class_index is None else class_index[index]


# ---------------------------------------------------------------------------
# A model tapped at a (possibly nested) layer (see _graph.Tap).


def default_layer_name(model):
    """``"backbone"`` if present, else the last 4-D feature map (nested too)."""
    return inspection.default_feature_layer(model)


# The tap of a model at a layer, built once per (model, layer).
_TAPS = weakref.WeakKeyDictionary()


def token_grid(n):
    """``(skip, side)`` of ``n`` tokens: ``(0, sqrt n)`` for a square ``n``,
    ``(1, sqrt(n - 1))`` when a class token comes first, else ``(0, None)``."""
    import math

    for skip in (0, 1):
        if n is not None and n - skip > 0 and math.isqrt(n - skip) ** 2 == n - skip:
            return skip, math.isqrt(n - skip)
    return 0, None


def tap_model(model, layer_name=None, custom=False):
    """The ``_graph.Tap`` of a classifier at ``layer_name``, cached per layer.

    ``layer_name``: a name, a nested path ``"outer/inner"`` or a layer
    object; by default ``default_layer_name``. Its output must be 4-D
    ``(B, h, w, C)`` or tokens ``(B, N, C)`` (``token_grid``), or anything
    when ``custom`` (a ``reshape_transform`` is given). Works for ``keras.Sequential``
    and functional models, nested ones included; subclassed models cannot be
    tapped (their graph is Python code).
    """
    from keras_brnpa.explain._graph import Tap
    from keras_brnpa.explain._graph import tap_error

    check_model(model)
    if not inspection.is_graph_model(model):
        raise invalid(
            "model",
            f"<{type(model).__name__} {model.name!r}>",
            "a functional or Sequential keras.Model: gradient and activation explainers "
            "look at a layer inside the model's graph, which a subclassed model does not "
            "have (RISE and the deletion/insertion metrics work on any model)",
        )
    if layer_name is None:
        layer_name = default_layer_name(model)
    path, chain = inspection.find_layer(model, layer_name)
    shape = _output_shape(chain[-1])
    if not custom and shape is not None:
        tokens = len(shape) == 3 and (shape[1] is None or token_grid(shape[1])[1] is not None)
        if len(shape) != 4 and not tokens:
            raise tap_error(
                path,
                f"a 4-D output (B, h, w, C), or (B, N, C) tokens with N or N - 1 a square, is "
                f"needed (else pass reshape_transform); its output has shape {shape}",
            )
    try:
        cache = _TAPS.setdefault(model, {})
    except TypeError:  # not weak-referenceable
        cache = {}
    if path in cache and cache[path].layer is chain[-1]:
        return cache[path]
    tap = Tap(model, path, chain)
    cache[path] = tap
    return tap


def split_model(model, layer_name=None):
    """``(path, features_fn, head_fn)`` of ``tap_model``: the layer's
    activations from the images, and the model's outputs from them."""
    tap = tap_model(model, layer_name)
    return tap.path, tap.features, tap.head


def _output_shape(layer):
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return None
