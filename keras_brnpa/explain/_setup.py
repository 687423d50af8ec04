"""What every CAM and gradient attribution shares: validated arguments, the
tapped model's compiled calls, batching and the output scale."""

import contextlib

import keras
import numpy as np

from keras_brnpa._checks import check_class_index
from keras_brnpa._checks import check_from_logits
from keras_brnpa._checks import invalid
from keras_brnpa._checks import resolve_classes
from keras_brnpa._scores import class_scores
from keras_brnpa.explain import _utils
from keras_brnpa.explain._gradients import compile_call
from keras_brnpa.explain._gradients import compile_gradients
from keras_brnpa.explain._gradients import compile_input_gradients
from keras_brnpa.models.inspection import logits_view
from keras_brnpa.models.inspection import resolve_from_logits


class _Setup:
    """Validated arguments and compiled model pieces shared by the CAM methods.

    The maths of every method runs in ``keras.ops`` on the backend's
    device; only small per-image vectors (classes, which channels to use)
    and the final maps come back to the host.
    """

    def __init__(
        self, model, images, layer_name, class_index, batch_size, upsample, from_logits=None,
        reshape_transform=None,
    ):
        _utils.check_model(model)
        self.from_logits = check_from_logits(from_logits)
        self.images = _utils.check_images(images, model=model)
        self.batch_size = _utils.check_batch_size(batch_size)
        self.size = _utils.resolve_upsample(upsample, self.images.shape[1:3])
        num_classes = _utils.check_outputs(model)
        self.class_index = check_class_index(class_index, len(self.images))
        if self.class_index is not None and num_classes:
            resolve_classes(self.class_index, np.zeros((len(self.images), num_classes)))
        if reshape_transform is not None and not callable(reshape_transform):
            raise invalid("reshape_transform", reshape_transform,
                          "None or a callable (B, ...) tensor -> (B, h, w, C) tensor")
        self.reshape_transform = reshape_transform
        if layer_name is False:  # input attributions: no layer
            self.tap, self.layer_name = None, None
        else:
            self.tap = _utils.tap_model(model, layer_name, custom=reshape_transform is not None)
            self.layer_name = self.tap.path
        self.model = model
        self.view = False  # True inside logits_view (see output_scale)

    @contextlib.contextmanager
    def output_scale(self):
        """Within: the model's scale; yields ``resolve(outputs) -> from_logits``.

        With ``from_logits=None`` a model ending with a softmax outputs its
        logits inside the block (``models.logits_view``), so that a softmax
        model and its logits twin give the same maps.
        """
        if self.from_logits is not None:
            yield lambda outputs: self.from_logits
            return
        with logits_view(self.model) as switched:
            self.view = switched
            try:
                if switched:
                    yield lambda outputs: True
                else:
                    yield lambda outputs: resolve_from_logits(
                        self.model, None, _utils.to_numpy(outputs)
                    )
            finally:
                self.view = False

    def _compiled(self, kind, build):
        return _utils.compiled(self.model, (kind, self.layer_name, self.view), build)

    def batches(self):
        return _utils.batches(len(self.images), self.batch_size)

    def classes(self, index):
        return _utils.slice_classes(self.class_index, index)

    def batch(self, index):
        """``(images tensor, n)``: the batch ``index``, padded to a few sizes."""
        return _utils.pad_batch(self.images[index], self.batch_size)

    def given(self, index, length):
        """The classes of the batch as an int32 tensor, -1 for 'predicted'."""
        given = np.full((length,), -1, dtype="int32")
        classes = self.classes(index)
        if classes is not None:
            given[: index.stop - index.start] = classes
        return keras.ops.convert_to_tensor(given)

    def gradients(self, index, scale):
        """Activations and d score / d activations of the batch (float32 tensors).

        The score is the class logit, or the log-probability when the
        outputs are probabilities (its gradient is the probability's
        divided by the probability).
        """
        step = self._compiled(
            "gradients",
            lambda: compile_gradients(self.tap, self.model.variables),
        )
        x, n = self.batch(index)
        acts, grads, outputs, classes = step(x, self.given(index, int(x.shape[0])))
        acts, grads = self.to_grid(acts[:n]), self.to_grid(grads[:n])
        outputs, classes = keras.ops.cast(outputs[:n], "float32"), classes[:n]
        if not scale(outputs):
            _, probs = class_scores(outputs, classes)
            grads = grads / keras.ops.maximum(probs, 1e-12)[:, None, None, None]
        return acts, grads

    def input_gradients(self, x, given, scale):
        """d score / d images of the images tensor ``x`` (float32 tensors).

        ``given``: an int32 tensor, one class per row (-1: the row's
        argmax). Returns ``(gradients, outputs)``; the score is as for
        ``gradients``.
        """
        step = self._compiled(
            "input-gradients", lambda: compile_input_gradients(self.model)
        )
        padded, n = _utils.pad_batch(x, self.batch_size)
        if int(padded.shape[0]) != n:
            filler = keras.ops.full((int(padded.shape[0]) - n,), -1, dtype="int32")
            given = keras.ops.concatenate([keras.ops.cast(given, "int32"), filler], axis=0)
        grads, outputs, classes = step(padded, given)
        grads = keras.ops.cast(grads[:n], "float32")
        outputs, classes = keras.ops.cast(outputs[:n], "float32"), classes[:n]
        if not scale(outputs):
            _, probs = class_scores(outputs, classes)
            grads = grads / keras.ops.maximum(probs, 1e-12)[:, None, None, None]
        return grads, outputs

    def to_grid(self, x):
        """Activations (or their gradients) as a float32 ``(B, h, w, C)`` grid.

        ``reshape_transform(x)`` when given; else a 4-D tensor as it is and
        tokens ``(B, N, C)`` with ``N`` a square, or ``1 + N`` (the first,
        class token dropped), reshaped to ``(B, sqrt N, sqrt N, C)``.
        """
        if self.reshape_transform is not None:
            x = self.reshape_transform(x)
            if len(x.shape) != 4:
                raise invalid("reshape_transform", self.reshape_transform,
                              f"a callable returning (B, h, w, C); it returned shape {x.shape}")
        elif len(x.shape) == 3:
            skip, side = _utils.token_grid(x.shape[1])
            if side is None:
                raise invalid("layer_name", self.layer_name,
                              f"a layer with (B, N, C) tokens, N or N - 1 a square (got N = "
                              f"{x.shape[1]}), or a reshape_transform")
            x = keras.ops.reshape(x[:, skip:], (-1, side, side, x.shape[2]))
        return keras.ops.cast(x, "float32")

    def features(self, index, with_outputs=False, raw=False):
        """The layer's activations of the batch (and the model's outputs).

        On the grid (``to_grid``), or as the layer outputs them (``raw``).
        """
        tap = self.tap
        if with_outputs:

            def call(x, training=False):
                seen = {}

                def hook(acts):
                    seen["acts"] = acts
                    return acts

                outputs = tap.run(x, training=training, hook=hook)
                return seen["acts"], outputs

            kind = "features+outputs"
        else:
            call, kind = tap.features, "features"
        fn = self._compiled(kind, lambda: compile_call(call, self.model.variables))
        x, n = self.batch(index)
        grid = (lambda a: keras.ops.cast(a, "float32")) if raw else self.to_grid
        if with_outputs:
            acts, outputs = fn(x)
            return grid(acts[:n]), keras.ops.cast(outputs[:n], "float32")
        return grid(fn(x)[:n])

    def head(self, activations):
        """The rest of the model on a tensor of activations (padded, compiled)."""
        fn = self._compiled(
            "head", lambda: compile_call(self.tap.head, self.model.variables)
        )
        padded, n = _utils.pad_batch(activations, self.batch_size)
        return keras.ops.cast(fn(padded)[:n], "float32")

    def finish(self, maps):
        return _utils.finish_maps(maps, self.size)


def _weighted_sum(activations, weights):
    """``ReLU(sum_k w_k A_k)`` for A (B, h, w, K) and w (B, K), on the device."""
    weights = keras.ops.cast(weights, "float32")
    return keras.ops.relu(keras.ops.einsum("bhwk,bk->bhw", activations, weights))


def gradient_cam(combine, model, images, layer_name, class_index, batch_size, upsample,
                 from_logits, reshape_transform):
    """The maps of a gradient CAM: ``combine(activations, gradients)`` per batch.

    One forward and one backward pass per batch (``_Setup.gradients``);
    ``combine`` turns the activations ``A`` and ``g = d y_c / d A``, both
    ``(B, h, w, K)`` tensors, into ``(B, h, w)`` maps on the device.
    """
    setup = _Setup(model, images, layer_name, class_index, batch_size, upsample, from_logits,
                   reshape_transform)
    maps = []
    with setup.output_scale() as scale:
        for index in setup.batches():
            acts, grads = setup.gradients(index, scale)
            maps.append(combine(acts, grads))
    return setup.finish(maps)
