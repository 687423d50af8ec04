"""Batch-normalisation settings for short runs from scratch."""


def set_batch_norm_momentum(model, momentum=0.9):
    """Set the moving-average momentum of every ``BatchNormalization`` layer.

    Keras's default momentum, 0.99, averages the batch statistics over
    about 100 steps: a network trained from scratch for a few hundred steps
    (a small folder of images, a few epochs) ends with moving means and
    variances that still lag far behind its weights, and its inference-mode
    predictions (validation, ``predict``, the explainers) are much worse
    than its training accuracy. A momentum of 0.9 (about 10 steps) follows
    the weights closely. Pretrained backbones keep their own statistics:
    leave them alone. Nested models and layers are included; call it before
    ``compile`` or ``fit``.

    Args:
        model: a Keras model or layer.
        momentum: float in [0, 1), the new momentum (default 0.9).

    Returns:
        The number of ``BatchNormalization`` layers changed.

    Example:

    >>> import keras, keras_brnpa
    >>> model = keras_brnpa.models.build_classifier(
    ...     3, backbone="tiny", head="gap", input_shape=(32, 32, 3))
    >>> keras_brnpa.models.set_batch_norm_momentum(model, 0.9) > 0
    True
    >>> norms = [layer for layer in model._flatten_layers()
    ...          if isinstance(layer, keras.layers.BatchNormalization)]
    >>> {layer.momentum for layer in norms}
    {0.9}
    """
    import numbers

    import keras

    from keras_brnpa._checks import invalid

    if not isinstance(model, keras.layers.Layer):
        raise invalid("model", type(model).__name__, "a Keras model or layer")
    if (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
            or not 0 <= momentum < 1):
        raise invalid("momentum", momentum, "a number in [0, 1)")
    changed = 0
    for layer in model._flatten_layers(include_self=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
            changed += 1
    return changed
