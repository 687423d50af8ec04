"""The B-CNN baseline of the paper: learned bilinear attention pooling."""

import keras
from keras import ops

from keras_brnpa.layers._part_shapes import PartShapesMixin
from keras_brnpa.layers._validation import check_data_format
from keras_brnpa.layers._validation import check_positive_int
from keras_brnpa.layers._validation import invalid


@keras.saving.register_keras_serializable(package="keras_brnpa")
class BilinearAttentionPooling(PartShapesMixin, keras.layers.Layer):
    """Bilinear attention pooling (B-CNN / WS-DAN style), the paper's baseline.

    A small learned convolutional block predicts ``n_parts`` non-negative
    attention maps from the feature map: a 3x3 convolution to
    ``hidden_channels`` channels, batch normalisation and ReLU, then a 1x1
    convolution to ``n_parts`` channels and a ReLU. Each map weights the
    features, which are averaged over space; the ``n_parts`` pooled vectors
    are concatenated (part 1 first).

    Args:
        n_parts: int >= 1, number of attention maps.
        hidden_channels: int >= 1 or ``None`` (the number of input
            channels, as in the paper's block), width of the 3x3 conv.
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None``
            (``keras.config.image_data_format()``).
        return_attention_maps: bool, default of the call argument.
        kernel_initializer: initializer of both convolutions.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        features: 4-D feature map, ``(B, H, W, C)`` or ``(B, C, H, W)``.
        return_attention_maps: bool or ``None`` (use the constructor's).
        training: bool, passed to the batch normalisation.

    Returns:
        Pooled vectors ``(B, n_parts * C)``; with
        ``return_attention_maps=True`` a tuple ``(vectors, maps)`` with
        non-negative ``maps`` of shape ``(B, H, W, n_parts)``
        (``channels_first``: ``(B, n_parts, H, W)``).

    Example:

    >>> import keras, keras_brnpa
    >>> model = keras.Sequential([
    ...     keras.Input((32, 32, 3)),
    ...     keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
    ...     keras_brnpa.BilinearAttentionPooling(n_parts=3),
    ...     keras.layers.Dense(5),
    ... ])
    >>> model.output_shape
    (None, 5)

    Reference:
        Hu, Qi, Huang, Lu. "See Better Before Looking Closer: Weakly
        Supervised Data Augmentation Network for Fine-Grained Visual
        Classification" (WS-DAN), arXiv:1901.09891; used as the B-CNN
        baseline in Gomez et al., Pattern Recognition 2022.
    """

    def __init__(
        self,
        n_parts=3,
        hidden_channels=None,
        data_format=None,
        return_attention_maps=False,
        kernel_initializer="he_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_parts = check_positive_int("n_parts", n_parts)
        self.hidden_channels = (
            None
            if hidden_channels is None
            else check_positive_int("hidden_channels", hidden_channels)
        )
        self.data_format = check_data_format(data_format)
        if not isinstance(return_attention_maps, bool):
            raise invalid("return_attention_maps", return_attention_maps, "a bool")
        self.return_attention_maps = return_attention_maps
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        _, _, c = self._check_shape(input_shape)
        if c is None:
            raise invalid(
                "features",
                f"<tensor of shape {tuple(input_shape)}>",
                "a known number of channels",
            )
        hidden = self.hidden_channels or c
        axis = -1 if self.data_format == "channels_last" else 1
        self.conv = keras.layers.Conv2D(
            hidden,
            3,
            padding="same",
            use_bias=False,
            data_format=self.data_format,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="conv",
        )
        self.norm = keras.layers.BatchNormalization(
            axis=axis, dtype=self.dtype_policy, name="norm"
        )
        self.project = keras.layers.Conv2D(
            self.n_parts,
            1,
            data_format=self.data_format,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="project",
        )
        self.conv.build(input_shape)
        hidden_shape = self.conv.compute_output_shape(input_shape)
        self.norm.build(hidden_shape)
        self.project.build(hidden_shape)
        self.built = True

    def call(self, features, return_attention_maps=None, training=None):
        if return_attention_maps is None:
            return_attention_maps = self.return_attention_maps
        hidden = ops.relu(self.norm(self.conv(features), training=training))
        maps = ops.relu(self.project(hidden))
        if self.data_format == "channels_first":
            maps_cl = ops.transpose(maps, (0, 2, 3, 1))
            feats_cl = ops.transpose(features, (0, 2, 3, 1))
        else:
            maps_cl, feats_cl = maps, features
        # (B, H, W, P) x (B, H, W, C) -> (B, P, C), spatial mean.
        pooled = ops.einsum("bhwp,bhwc->bpc", maps_cl, feats_cl)
        shape = ops.shape(feats_cl)
        count = ops.cast(shape[1] * shape[2], pooled.dtype)
        pooled = pooled / count
        vectors = ops.reshape(pooled, (-1, self.n_parts * shape[3]))
        if not return_attention_maps:
            return vectors
        return vectors, maps

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_parts": self.n_parts,
                "hidden_channels": self.hidden_channels,
                "data_format": self.data_format,
                "return_attention_maps": self.return_attention_maps,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
