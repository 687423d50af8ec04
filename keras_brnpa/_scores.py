"""The score of a class in classifier outputs, on the device.

One function for every place that turns a model's outputs into the score
of the explained class: the gradient explainers (the raw output, logit
or probability), Score-CAM and RISE (the probability: a softmax of
logits). Keras is imported inside the function, so importing this module
imports no backend.
"""


def class_scores(outputs, classes=None, softmax=False):
    """``(classes, scores)``: each row's class and its score, as tensors.

    Traceable (``keras.ops`` only), so it runs inside compiled calls and
    gradient tapes.

    Args:
        outputs: tensor ``(B, K)``, the model's outputs.
        classes: ``None`` (each row's argmax) or an int tensor ``(B,)``;
            ``-1`` in a row means that row's argmax.
        softmax: ``True``: the score is ``softmax(outputs)[class]`` (the
            outputs are logits of one-label classes); ``False``: the
            output itself (a logit, or a probability as the model gives
            it, sigmoid multi-label outputs included).

    Returns:
        ``(classes, scores)``: an int32 tensor ``(B,)`` and a float32
        tensor ``(B,)``.
    """
    import keras

    ops = keras.ops
    outputs = ops.cast(outputs, "float32")
    argmax = ops.cast(ops.argmax(outputs, axis=-1), "int32")
    if classes is None:
        classes = argmax
    else:
        classes = ops.cast(classes, "int32")
        classes = ops.where(classes >= 0, classes, argmax)
    if softmax:
        outputs = ops.softmax(outputs, axis=-1)
    scores = ops.take_along_axis(outputs, classes[:, None], axis=-1)[:, 0]
    return classes, scores
