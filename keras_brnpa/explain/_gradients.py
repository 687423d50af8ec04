"""The only backend-specific code of the package: compiled calls and gradients.

The explainers run a classifier tapped at a layer (``_graph.Tap``) many
times. Calling a Keras model
eagerly costs 1.5-5x a compiled call on TensorFlow and JAX (one Python
dispatch per operation), so every call goes through a function compiled
once per model, layer and output view:

- TensorFlow: ``tf.function`` (a graph; variables are read, not copied);
- JAX: ``jax.jit`` of a stateless call (the variable values are arguments,
  as in Keras's own ``predict``, so weights are never baked in as
  constants and later weight updates are seen);
- PyTorch: eager, under ``torch.no_grad`` for the forward-only calls.

Gradients of a class score with respect to the activations come from
``tf.GradientTape``, ``jax.value_and_grad`` or ``torch.autograd``. Inputs and
results stay backend tensors (on the device); only what the caller converts
comes back to the host.
"""

import keras

from keras_brnpa._scores import class_scores

_BACKENDS = ("tensorflow", "jax", "torch")


def _backend():
    backend = keras.config.backend()
    if backend not in _BACKENDS:
        raise NotImplementedError(
            f"The explainers support the tensorflow, jax and torch backends; the current "
            f"backend is {backend!r}."
        )
    return backend


def compile_call(fn, variables):
    """``fn(*tensors, training=False)`` compiled for the current backend.

    Args:
        fn: a Keras model or a callable made of Keras layers, taking
            tensors and ``training``; it may return a tensor or a tuple.
        variables: the Keras variables ``fn`` reads (JAX passes their
            values as arguments of the compiled function).

    Returns:
        A callable taking backend tensors and returning backend tensors.
    """
    backend = _backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda *args: fn(*args, training=False), reduce_retracing=True)
    if backend == "jax":
        return _jax_stateless(lambda *args: fn(*args, training=False), variables)
    import torch

    def run(*args):
        with torch.no_grad():
            return fn(*args, training=False)

    return run


def _jax_stateless(fn, variables):
    import jax

    variables = list(variables)

    def pure(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    jitted = jax.jit(pure)
    return lambda *args: jitted([v.value for v in variables], *args)


def compile_gradients(tap, variables):
    """``step(images, given) -> (activations, gradients, outputs, classes)``.

    One forward pass of the tapped model (``_graph.Tap``) and one backward
    pass from the class score to the tapped layer: ``gradients`` is the
    derivative of each image's output for its class (``given``, or the
    argmax where ``given`` is -1) with respect to the layer's activations.
    The activations are caught where the model's own graph computes them,
    so skip connections and nested models need no special care.
    Everything is a backend tensor.
    """
    backend = _backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def step(images, given):
            seen = {}
            # Only the activations are watched: no gradient is recorded for
            # the layers before them.
            with tf.GradientTape(watch_accessed_variables=False) as tape:

                def hook(activations):
                    tape.watch(activations)
                    seen["activations"] = activations
                    return activations

                outputs = tap.run(images, training=False, hook=hook)
                classes, scores = class_scores(outputs, given)
            activations = seen["activations"]
            return activations, tape.gradient(scores, activations), outputs, classes

        return tf.function(step, reduce_retracing=True)
    if backend == "jax":
        import jax

        def step(images, given):
            # The gradient with respect to the activations is the gradient
            # with respect to a zero added to them.
            shape = jax.eval_shape(lambda x: tap.features(x, training=False), images)

            def total_score(delta):
                seen = {}

                def hook(activations):
                    seen["activations"] = activations
                    return activations + keras.ops.cast(delta, activations.dtype)

                outputs = tap.run(images, training=False, hook=hook)
                classes, scores = class_scores(outputs, given)
                return keras.ops.sum(scores), (seen["activations"], outputs, classes)

            delta = keras.ops.zeros(shape.shape, "float32")
            (_, (activations, outputs, classes)), grads = jax.value_and_grad(
                total_score, has_aux=True
            )(delta)
            return activations, grads, outputs, classes

        return _jax_stateless(step, variables)
    import torch

    def step(images, given):
        seen = {}

        def hook(activations):
            # Nothing before the layer is recorded for autograd; everything
            # after it is.
            activations = activations.detach().requires_grad_(True)
            torch.set_grad_enabled(True)
            seen["activations"] = activations
            return activations

        enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(False)
        try:
            outputs = tap.run(images, training=False, hook=hook)
            classes, scores = class_scores(outputs, given)
            activations = seen["activations"]
            (grads,) = torch.autograd.grad(scores.sum(), activations)
        finally:
            torch.set_grad_enabled(enabled)
        return activations.detach(), grads.detach(), outputs.detach(), classes

    return step


def compile_input_gradients(model):
    """``step(images, given) -> (gradients, outputs, classes)``.

    The gradient of each image's class score (``given``, or the argmax
    where ``given`` is -1) with respect to the image itself: one forward
    and one backward pass of the whole model. Everything is a backend
    tensor. ``model`` is held through a weak reference.
    """
    import weakref

    reference = weakref.ref(model)
    backend = _backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def step(images, given):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(images)
                outputs = reference()(images, training=False)
                classes, scores = class_scores(outputs, given)
            return tape.gradient(scores, images), outputs, classes

        return tf.function(step, reduce_retracing=True)
    if backend == "jax":
        import jax

        def step(images, given):
            def total_score(x):
                outputs = reference()(x, training=False)
                classes, scores = class_scores(outputs, given)
                return keras.ops.sum(scores), (outputs, classes)

            (_, (outputs, classes)), grads = jax.value_and_grad(total_score, has_aux=True)(
                images
            )
            return grads, outputs, classes

        return _jax_stateless(step, model.variables)
    import torch

    def step(images, given):
        images = images.detach().requires_grad_(True)
        with torch.enable_grad():
            outputs = reference()(images, training=False)
            classes, scores = class_scores(outputs, given)
            (grads,) = torch.autograd.grad(scores.sum(), images)
        return grads.detach(), outputs.detach(), classes

    return step
