"""Gradient attributions on the pixels: saliency, SmoothGrad, Integrated Gradients.

Each returns one attribution per pixel and channel, ``(B, H, W, C)`` like
the images (``np.abs(a).max(axis=-1)`` or ``a.sum(axis=-1)`` makes a map of
it). The score is the one of the CAMs: the class logit (a final softmax is
removed, see ``models.logits_view``), or the log-probability when the
model's outputs are probabilities. The gradients are taken on the device
(``_gradients.compile_input_gradients``), ``batch_size`` images at a time:
SmoothGrad's noisy copies and Integrated Gradients' path points are
flattened into one stream of batches and summed per image on the device.
"""

import numbers

import keras
import numpy as np

from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import empty_batch_safe
from keras_brnpa._checks import invalid
from keras_brnpa._checks import resolve_classes
from keras_brnpa.explain import _utils
from keras_brnpa.explain._setup import _Setup


def _setup(model, images, class_index, batch_size, from_logits):
    _utils.check_model(model)
    if not model.built:
        _utils.call_model(model, _utils.check_images(images)[:1])
    return _Setup(model, images, False, class_index, batch_size, False, from_logits)


def _classes(setup, scale):
    """The explained class of each image (the prediction on the image itself)."""
    forward = _utils.model_forward(setup.model, setup.view)
    outputs = []
    for index in setup.batches():
        x, n = setup.batch(index)
        outputs.append(_utils.to_numpy(_utils.single_output(forward(x)))[:n])
    outputs = np.concatenate(outputs).astype("float32")
    return resolve_classes(setup.class_index, outputs).astype("int32")


def _path_sum(setup, scale, classes, points, make_inputs):
    """Sum over ``points`` per image of the input gradients at ``make_inputs``.

    ``make_inputs(images, image_ids, points)`` gets the images ``(n, H, W,
    C)`` (a tensor, one row per evaluation), the image and the point index
    of each row (NumPy), and returns the inputs to differentiate at.
    """
    ops = keras.ops
    images = ops.convert_to_tensor(setup.images)
    n_images = len(setup.images)
    total = ops.zeros(setup.images.shape, dtype="float32")
    classes_t = ops.convert_to_tensor(classes)
    for chunk in _utils.batches(n_images * points, setup.batch_size):
        flat = np.arange(chunk.start, chunk.stop)
        ids = (flat // points).astype("int32")
        image_ids = ops.convert_to_tensor(ids)
        x = make_inputs(ops.take(images, image_ids, axis=0), ids, flat % points)
        grads, _ = setup.input_gradients(x, ops.take(classes_t, image_ids, axis=0), scale)
        total = total + ops.segment_sum(grads, image_ids, num_segments=n_images)
    return total


def _finish(attributions):
    return _utils.to_numpy(keras.ops.cast(attributions, "float32")).astype("float32", copy=False)


@empty_batch_safe
def saliency(
    model,
    images,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
    seed=None,
    verbose=0,
):
    """Saliency: the gradient of the class score with respect to the pixels.

    ``a = d y_c / d x`` (Simonyan et al., 2014), signed, one value per pixel
    and channel (captum's ``Saliency(abs=False)``). One forward and one
    backward pass of the whole model per batch.

    Args:
        model: any ``keras.Model`` with one output ``(B, num_classes)``
            (no layer is needed: subclassed models work).
        images: array ``(B, H, W, C)``, as the model takes them.
        class_index: ``None`` (each image's predicted class), an int, or
            one int per image.
        batch_size: images per forward/backward pass.
        from_logits: as for ``grad_cam`` (the score is the logit, or the
            log-probability of probability outputs).
        layer_name, upsample, seed, verbose: unused (the attributions are
            on the pixels); every explainer takes the same keywords.

    Returns:
        float32 NumPy array ``(B, H, W, C)``, the images' shape.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.saliency(model, images).shape
    (2, 64, 64, 3)
    """
    setup = _setup(model, images, class_index, batch_size, from_logits)
    out = []
    with setup.output_scale() as scale:
        for index in setup.batches():
            x = keras.ops.convert_to_tensor(setup.images[index])
            grads, _ = setup.input_gradients(x, setup.given(index, len(setup.images[index])),
                                             scale)
            out.append(grads)
    return _finish(keras.ops.concatenate(out, axis=0) if len(out) > 1 else out[0])


@empty_batch_safe
def smooth_grad(
    model,
    images,
    noise=0.15,
    samples=25,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
    seed=0,
    verbose=0,
):
    """SmoothGrad: the saliency averaged over noisy copies of each image.

    ``a = mean_s d y_c / d x (x + e_s)`` with ``e_s ~ N(0, sigma^2)`` and
    ``sigma = noise * (max(x) - min(x))`` per image (Smilkov et al., 2017;
    captum's ``NoiseTunnel(Saliency, "smoothgrad")``). The class is the
    prediction on the image itself. ``noise=0`` gives ``saliency``.

    Args:
        model, images, class_index, batch_size, from_logits: as for
            ``saliency``.
        noise: standard deviation of the noise as a fraction of each
            image's value range (the paper: 0.1-0.2), ``>= 0``.
        samples: noisy copies per image, ``>= 1``.
        seed: ``None`` or an int: the noise, drawn with NumPy (so the same
            on every backend) as ``samples`` standard-normal fields of one
            image's shape, shared by every image of the call and scaled by
            each image's ``sigma``: an image's attribution does not depend
            on the other images of the batch.
        layer_name, upsample, verbose: unused; every explainer takes the
            same keywords.

    Returns:
        float32 NumPy array ``(B, H, W, C)``, the images' shape.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.smooth_grad(model, images, samples=4).shape
    (2, 64, 64, 3)
    """
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not (
        np.isfinite(noise) and noise >= 0
    ):
        raise invalid("noise", noise, "a finite float >= 0 (a fraction of the value range)")
    samples = check_positive_int("samples", samples)
    seed = check_seed(seed, allow_none=True)
    setup = _setup(model, images, class_index, batch_size, from_logits)
    flat = setup.images.reshape(len(setup.images), -1)
    sigma = (float(noise) * (flat.max(axis=1) - flat.min(axis=1))).astype("float32")
    shape = setup.images.shape[1:]
    # One standard-normal field per sample, shared by every image and scaled
    # by the image's sigma: an image's map is the same alone or in any batch.
    fields = np.random.default_rng(seed).standard_normal((samples,) + shape).astype("float32")

    def noisy(x, image_ids, points):
        draws = fields[points] * sigma[image_ids].reshape((len(points),) + (1,) * len(shape))
        return x + keras.ops.convert_to_tensor(draws)
    with setup.output_scale() as scale:
        classes = _classes(setup, scale)
        total = _path_sum(setup, scale, classes, samples, noisy)
    return _finish(total / float(samples))


def _baseline(baseline, images):
    if baseline is None:
        return np.zeros_like(images)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        if not np.isfinite(baseline):
            raise invalid("baseline", baseline, "a finite number")
        return np.full_like(images, float(baseline))
    try:
        array = _utils.to_numpy(baseline).astype("float32")
    except Exception as error:
        raise invalid("baseline", type(baseline).__name__,
                      "None, a number or an array like one image or the images") from error
    if array.shape == images.shape[1:]:
        array = np.broadcast_to(array, images.shape)
    if array.shape != images.shape or not np.all(np.isfinite(array)):
        raise invalid(
            "baseline", f"<array of shape {array.shape}>",
            f"None (zeros), a number, or finite values of shape {images.shape[1:]} or "
            f"{images.shape}",
        )
    return np.ascontiguousarray(array, dtype="float32")


@empty_batch_safe
def integrated_gradients(
    model,
    images,
    steps=50,
    baseline=None,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
    seed=None,
    verbose=0,
):
    """Integrated Gradients: the gradient averaged along a straight path
    from a baseline, times the distance travelled.

    ``a = (x - x0) * mean_k d y_c / d x (x0 + t_k (x - x0))`` with the
    midpoints ``t_k = (k + 1/2) / steps`` (Sundararajan et al., ICML 2017;
    captum's ``IntegratedGradients``). Completeness: the attributions of an
    image sum to ``y_c(x) - y_c(x0)`` up to the error of the ``steps``-point
    rule. The class is the prediction on the image itself.

    Args:
        model, images, class_index, batch_size, from_logits: as for
            ``saliency``.
        steps: points on the path, ``>= 1``.
        baseline: ``None`` (zeros: a black image), a number, or an array
            of one image's shape or of the images' shape.
        layer_name, upsample, seed, verbose: unused; every explainer takes
            the same keywords.

    Returns:
        float32 NumPy array ``(B, H, W, C)``, the images' shape.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.integrated_gradients(model, images, steps=4).shape
    (2, 64, 64, 3)
    """
    steps = check_positive_int("steps", steps)
    setup = _setup(model, images, class_index, batch_size, from_logits)
    base = _baseline(baseline, setup.images)
    ops = keras.ops
    base_t = ops.convert_to_tensor(base)
    alphas = ((np.arange(steps) + 0.5) / steps).astype("float32")

    def on_path(x, image_ids, points):
        x0 = ops.take(base_t, ops.convert_to_tensor(image_ids), axis=0)
        t = ops.convert_to_tensor(alphas[points].reshape(-1, 1, 1, 1))
        return x0 + t * (x - x0)
    with setup.output_scale() as scale:
        classes = _classes(setup, scale)
        total = _path_sum(setup, scale, classes, steps, on_path)
    return _finish(total / float(steps) * ops.convert_to_tensor(setup.images - base))
