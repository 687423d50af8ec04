"""More gradient CAMs: HiResCAM, XGrad-CAM and Layer-CAM.

Each is Grad-CAM's one forward and one backward pass (``_setup.gradient_cam``),
with another way of turning the gradients ``g = d y_c / d A`` and the
activations ``A`` (B, h, w, K) into a map, as pytorch-grad-cam's
``HiResCAM``, ``XGradCAM`` and ``LayerCAM`` do.
"""

import keras

from keras_brnpa._checks import empty_batch_safe
from keras_brnpa.explain._setup import _weighted_sum
from keras_brnpa.explain._setup import gradient_cam as _gradient_cam


def _hires(acts, grads):
    return keras.ops.relu(keras.ops.sum(grads * acts, axis=-1))


def _xgrad(acts, grads):
    ops = keras.ops
    total = ops.sum(acts, axis=(1, 2))  # (B, K)
    weights = ops.sum(grads * acts, axis=(1, 2)) / (total + 1e-7)
    return _weighted_sum(acts, weights)


def _layer(acts, grads):
    return keras.ops.relu(keras.ops.sum(keras.ops.relu(grads) * acts, axis=-1))


@empty_batch_safe
def hires_cam(
    model,
    images,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
    seed=None,
    verbose=0,
    reshape_transform=None,
):
    """HiResCAM: the activations times their gradient, element by element.

    ``map_ij = ReLU(sum_k g_kij A_kij)`` with ``g = d y_c / d A`` (Draelos
    and Carin, 2020): Grad-CAM without the spatial average of the
    gradient, so the map shows where the score is computed from when the
    layers after ``A`` are not a global average pooling then a linear layer
    (for which both are equal up to the factor ``h * w``). As
    pytorch-grad-cam's ``HiResCAM``.

    Args:
        model, images, layer_name, class_index, batch_size, upsample,
        from_logits, seed, verbose, reshape_transform: as for
            ``grad_cam`` (``seed`` and ``verbose`` unused).

    Returns:
        float32 NumPy array ``(B, h, w)``, non-negative.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.hires_cam(model, images).shape
    (2, 2, 2)
    """
    return _gradient_cam(_hires, model, images, layer_name, class_index, batch_size, upsample,
                         from_logits, reshape_transform)


@empty_batch_safe
def xgrad_cam(
    model,
    images,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
    seed=None,
    verbose=0,
    reshape_transform=None,
):
    """XGrad-CAM: channel weights are the activation-weighted gradients.

    ``w_k = sum_ij(g_kij A_kij) / (sum_ij A_kij + 1e-7)`` and
    ``map = ReLU(sum_k w_k A_k)`` (Fu et al., BMVC 2020), as
    pytorch-grad-cam's ``XGradCAM``.

    Args:
        model, images, layer_name, class_index, batch_size, upsample,
        from_logits, seed, verbose, reshape_transform: as for
            ``grad_cam`` (``seed`` and ``verbose`` unused).

    Returns:
        float32 NumPy array ``(B, h, w)``, non-negative.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.xgrad_cam(model, images, class_index=[0, 2]).shape
    (2, 2, 2)
    """
    return _gradient_cam(_xgrad, model, images, layer_name, class_index, batch_size, upsample,
                         from_logits, reshape_transform)


@empty_batch_safe
def layer_cam(
    model,
    images,
    layer_name=None,
    class_index=None,
    batch_size=32,
    upsample=False,
    from_logits=None,
    seed=None,
    verbose=0,
    reshape_transform=None,
):
    """Layer-CAM: the activations times their positive gradient, per pixel.

    ``map_ij = ReLU(sum_k ReLU(g_kij) A_kij)`` (Jiang et al., IEEE TIP
    2021): fine maps from shallow layers too. As pytorch-grad-cam's
    ``LayerCAM``.

    Args:
        model, images, layer_name, class_index, batch_size, upsample,
        from_logits, seed, verbose, reshape_transform: as for
            ``grad_cam`` (``seed`` and ``verbose`` unused).

    Returns:
        float32 NumPy array ``(B, h, w)``, non-negative.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).random((2, 64, 64, 3), "float32")
    >>> keras_brnpa.explain.layer_cam(model, images, upsample=True).shape
    (2, 64, 64)
    """
    return _gradient_cam(_layer, model, images, layer_name, class_index, batch_size, upsample,
                         from_logits, reshape_transform)
