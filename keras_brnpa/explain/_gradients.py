"""The only backend-specific code of the package: gradients for Grad-CAM.

``activations_and_gradients`` runs a classifier split at a layer
(``features_fn`` then ``head_fn``, see ``_utils.split_model``) and returns
the layer's activations together with the gradient of a class score with
respect to them, with ``tf.GradientTape``, ``jax.vjp`` or
``torch.autograd`` depending on ``keras.config.backend()``.
"""

import keras
import numpy as np

from keras_brnpa.explain._utils import resolve_classes
from keras_brnpa.explain._utils import to_numpy


def _cotangent(outputs, classes, from_logits):
    """d score / d outputs for score = logit (or log-probability) of class."""
    onehot = np.zeros(outputs.shape, dtype="float32")
    rows = np.arange(len(classes))
    if from_logits:
        onehot[rows, classes] = 1.0
    else:
        # score = log(p_c): its gradient wrt the probabilities is 1 / p_c.
        probs = outputs[rows, classes].astype("float64")
        onehot[rows, classes] = (1.0 / np.maximum(probs, 1e-12)).astype("float32")
    return onehot


def _vjp_tensorflow(head_fn, activations, cotangent_fn):
    import tensorflow as tf

    activations = tf.convert_to_tensor(activations)
    with tf.GradientTape() as tape:
        tape.watch(activations)
        outputs = head_fn(activations, training=False)
    outputs_np = to_numpy(outputs).astype("float32")
    cotangent = tf.cast(tf.convert_to_tensor(cotangent_fn(outputs_np)), outputs.dtype)
    grads = tape.gradient(outputs, activations, output_gradients=cotangent)
    return outputs_np, to_numpy(grads)


def _vjp_jax(head_fn, activations, cotangent_fn):
    import jax
    import jax.numpy as jnp

    outputs, pullback = jax.vjp(lambda a: head_fn(a, training=False), activations)
    outputs_np = to_numpy(outputs).astype("float32")
    cotangent = jnp.asarray(cotangent_fn(outputs_np), dtype=outputs.dtype)
    (grads,) = pullback(cotangent)
    return outputs_np, to_numpy(grads)


def _vjp_torch(head_fn, activations, cotangent_fn):
    import torch

    activations = activations.detach().requires_grad_(True)
    with torch.enable_grad():
        outputs = head_fn(activations, training=False)
        outputs_np = to_numpy(outputs.detach()).astype("float32")
        cotangent = torch.as_tensor(
            cotangent_fn(outputs_np), dtype=outputs.dtype, device=outputs.device
        )
        (grads,) = torch.autograd.grad(outputs, activations, grad_outputs=cotangent)
    return outputs_np, to_numpy(grads.detach())


_VJP = {"tensorflow": _vjp_tensorflow, "jax": _vjp_jax, "torch": _vjp_torch}


def activations_and_gradients(features_fn, head_fn, images, class_index=None, from_logits=True):
    """Activations of a layer and the gradient of a class score wrt them.

    Args:
        features_fn: callable ``(images, training=False)`` -> activations
            ``(B, h, w, K)`` (the model up to the layer).
        head_fn: callable ``(activations, training=False)`` -> outputs
            ``(B, num_classes)`` (the rest of the model).
        images: NumPy batch ``(B, H, W, C)``.
        class_index: ``None`` (the predicted class), an int or ``B`` ints.
        from_logits: if ``True`` the outputs are logits and the score is
            the logit of the class (Grad-CAM's pre-softmax score); if
            ``False`` they are probabilities and the score is the log of
            the class probability; a callable decides from the outputs.

    Returns:
        ``(activations, gradients, outputs, classes)`` as float32 NumPy
        arrays (classes as ints), one forward and one backward pass.
    """
    backend = keras.config.backend()
    if backend not in _VJP:
        raise NotImplementedError(
            f"Gradient-based explanations support the tensorflow, jax and torch "
            f"backends; the current backend is {backend!r}."
        )
    activations = features_fn(keras.ops.convert_to_tensor(images), training=False)
    chosen = {}

    def cotangent_fn(outputs):
        chosen["classes"] = resolve_classes(class_index, outputs)
        logits = from_logits(outputs) if callable(from_logits) else from_logits
        return _cotangent(outputs, chosen["classes"], logits)

    outputs, grads = _VJP[backend](head_fn, activations, cotangent_fn)
    return (
        to_numpy(activations).astype("float32"),
        grads.astype("float32"),
        outputs,
        chosen["classes"],
    )
