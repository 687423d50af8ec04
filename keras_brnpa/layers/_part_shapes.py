"""Shape logic shared by the part-pooling layers (BR-NPA and B-CNN)."""

import keras

from keras_brnpa._checks import invalid


class PartShapesMixin:
    """Input checks and output shapes of a layer mapping a 4-D feature map
    to ``(vectors (B, n_parts * C), maps)``.

    The layer defines ``n_parts``, ``data_format``, ``return_attention_maps``
    and may override ``_check_locations(h, w, shape)``.
    """

    def _check_shape(self, shape):
        """Validate the rank and return ``(height, width, channels)``."""
        shape = tuple(shape)
        if len(shape) != 4:
            raise invalid(
                "features",
                f"<tensor of shape {shape}>",
                "a 4-D feature map (batch, height, width, channels) "
                "or (batch, channels, height, width)",
            )
        if self.data_format == "channels_last":
            h, w, c = shape[1], shape[2], shape[3]
        else:
            c, h, w = shape[1], shape[2], shape[3]
        self._check_locations(h, w, shape)
        return h, w, c

    def _check_locations(self, h, w, shape):
        """Hook for layers with a constraint on the number of locations."""

    def _output_shapes(self, input_shape, with_maps):
        b = input_shape[0]
        h, w, c = self._check_shape(input_shape)
        vectors = (b, None if c is None else self.n_parts * c)
        if not with_maps:
            return vectors
        if self.data_format == "channels_last":
            return vectors, (b, h, w, self.n_parts)
        return vectors, (b, self.n_parts, h, w)

    def compute_output_shape(self, input_shape):
        """Shape of the part vectors (and of the maps when returned)."""
        return self._output_shapes(input_shape, self.return_attention_maps)

    def compute_output_spec(self, features, return_attention_maps=None, training=None):
        if return_attention_maps is None:
            return_attention_maps = self.return_attention_maps
        shapes = self._output_shapes(features.shape, return_attention_maps)
        if not return_attention_maps:
            return keras.KerasTensor(shapes, dtype=self.compute_dtype)
        return tuple(keras.KerasTensor(s, dtype=self.compute_dtype) for s in shapes)
