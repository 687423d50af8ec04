"""A classifier run with one (possibly nested) layer tapped.

The explainers need, from one model and one of its layers: the layer's
activations, the model's outputs, the gradient of a class score with
respect to the activations, and (Ablation-CAM) the outputs of the layers
after it from given activations. ``Tap`` gets all of them by running the
model's own graph (``_nodes_by_depth``, as ``keras.Model.call`` does),
descending into the nested models on the path to the layer, with a hook on
the layer's output:

- ``run(images, hook)``: the outputs, ``hook`` applied to the layer's
  output (to record it, watch it on a gradient tape, or add a zero
  perturbation whose gradient is the activations' gradient on JAX);
- ``features(images)``: stops at the layer (nothing after it is computed);
- ``head(activations)``: the layers after it, the layer's output replaced.

No new model is built from the graph, so the layouts that splitting the
model into two ``keras.Model`` pieces could not express work: a wrapper
whose output *is* the nested application's output, a model nested two
levels deep, skip connections around the layer (for ``run`` and
``features``; ``head`` needs everything after the layer to depend on the
images only through it). A layer called more than once in the graph is
refused, naming it: which call would be explained is ambiguous.
"""

import weakref

import keras

from keras_brnpa._checks import invalid
from keras_brnpa.models import inspection


class _Reached(Exception):
    """Raised at the layer by ``features`` (the rest is not computed)."""

    def __init__(self, value):
        super().__init__("reached")
        self.value = value


def _flatten(structure):
    return keras.tree.flatten(structure)


def _call(operation, args, kwargs, training):
    """``operation(*args, **kwargs)`` with ``training`` where it takes it."""
    takes_training = getattr(operation, "_call_has_training_arg", False) or "training" in getattr(
        operation, "_call_context_args", ()
    )
    if takes_training and training is not None:
        kwargs = dict(kwargs, training=training)
    return operation(*args, **kwargs)


def _calls(container, layer):
    """How many times ``container``'s graph calls ``layer``."""
    if isinstance(container, keras.Sequential):
        return sum(1 for child in container.layers if child is layer)
    return sum(
        1
        for nodes in container._nodes_by_depth.values()
        for node in nodes
        if node.operation is layer
    )


def tap_error(path, reason):
    return invalid(
        "layer_name",
        path,
        f"a layer of the model with one output, called once ({reason})",
    )


class Tap:
    """``model`` with the layer at ``path`` (its ``chain`` of layers from
    ``inspection.find_layer``) tapped. See the module docstring."""

    def __init__(self, model, path, chain):
        # A weak reference: the caches of compiled calls hold taps, keyed
        # weakly by the model.
        self._model = weakref.ref(model)
        self.path, self.chain = path, list(chain)
        containers = [model] + self.chain[:-1]
        for container, layer in zip(containers, self.chain):
            count = _calls(container, layer)
            if count != 1:
                raise tap_error(
                    path,
                    f"{layer.name!r} is called {count} times in {container.name!r}: which call "
                    "to explain is ambiguous; name a layer before or after it, or give each "
                    "call its own layer",
                )
        self.layer = self.chain[-1]

    @property
    def model(self):
        return self._model()

    # -- the three calls -------------------------------------------------
    def run(self, images, training=False, hook=None):
        """The model's outputs, ``hook(activations)`` replacing the layer's output."""
        return self._container(self.model, 0, images, training, "run", hook)

    def features(self, images, training=False):
        """The layer's output (the layers after it are not run)."""
        try:
            self._container(self.model, 0, images, training, "features", None)
        except _Reached as reached:
            return reached.value
        raise tap_error(self.path, "the model's outputs do not depend on it")

    def head(self, activations, training=False):
        """The model's outputs from the layer's output ``activations``."""
        return self._container(self.model, 0, None, training, "head", activations)

    # -- the graph walk --------------------------------------------------
    def _target(self, depth, args, kwargs, training, mode, extra):
        if depth < len(self.chain) - 1:  # a nested model on the path: descend
            inputs = args[0] if args else kwargs.get("inputs")
            return self._container(self.chain[depth], depth + 1, inputs, training, mode, extra)
        if mode == "head":
            return extra
        out = _call(self.layer, args, kwargs, training)
        if isinstance(out, (list, tuple, dict)):
            raise tap_error(self.path, f"it has {len(_flatten(out))} outputs")
        if mode == "features":
            raise _Reached(out)
        return extra(out) if extra is not None else out

    def _container(self, container, depth, inputs, training, mode, extra):
        target = self.chain[depth]
        if isinstance(container, keras.Sequential):
            layers = container.layers
            start = layers.index(target) if mode == "head" else 0
            x = inputs
            for layer in layers[start:]:
                if layer is target:
                    x = self._target(depth, (x,), {}, training, mode, extra)
                else:
                    x = _call(layer, (x,), {}, training)
            return x
        values = {}
        if inputs is not None:
            for reference, value in zip(container.inputs, _flatten(inputs)):
                values[id(reference)] = value
        nodes_by_depth = container._nodes_by_depth
        for level in sorted(nodes_by_depth, reverse=True):
            for node in nodes_by_depth[level]:
                operation = node.operation
                if operation is None or node.is_input:
                    continue
                if operation is target and mode == "head":
                    out = self._target(depth, (None,), {}, training, mode, extra)
                elif any(id(x) not in values for x in node.input_tensors):
                    continue  # depends on something not computed (head mode)
                else:
                    args, kwargs = node.arguments.fill_in(values)
                    if operation is target:
                        out = self._target(depth, args, kwargs, training, mode, extra)
                    else:
                        out = _call(operation, args, kwargs, training)
                for reference, value in zip(node.outputs, _flatten(out)):
                    values[id(reference)] = value
        missing = [x for x in container.outputs if id(x) not in values]
        if missing:
            raise tap_error(
                self.path,
                f"the layers after it must depend on the images only through it to be run "
                f"from its activations; in {container.name!r} they do not",
            )
        outputs = [values[id(x)] for x in container.outputs]
        if len(outputs) == 1:
            return outputs[0]
        return keras.tree.pack_sequence_as(container._outputs_struct, outputs)


def find_tap(model, layer_name=None):
    """``Tap`` of ``model`` at ``layer_name`` (default: ``default_feature_layer``)."""
    if layer_name is None:
        layer_name = inspection.default_feature_layer(model)
    path, chain = inspection.find_layer(model, layer_name)
    return Tap(model, path, chain)
