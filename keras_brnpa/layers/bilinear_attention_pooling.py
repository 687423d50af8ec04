"""The B-CNN baseline of the paper: learned bilinear attention pooling."""

import keras
from keras import ops

from keras_brnpa.layers._part_shapes import PartShapesMixin
from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_data_format
from keras_brnpa._checks import check_positive_float
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid


@keras.saving.register_keras_serializable(package="keras_brnpa")
class BilinearAttentionPooling(PartShapesMixin, keras.layers.Layer):
    """Bilinear attention pooling (B-CNN / WS-DAN style), the paper's baseline.

    The block of the BR-NPA authors' B-CNN: a residual ``BasicBlock(C, C)``
    (3x3 convolution, batch normalisation, ReLU, 3x3 convolution, batch
    normalisation, plus the input, ReLU), then a 1x1 convolution **without
    bias** to ``n_parts + 1`` channels and a ReLU; the first ``n_parts``
    channels are the attention maps (the extra one is computed and dropped,
    as in the authors' code). Each map weights the features, which are
    averaged over space; the ``n_parts`` pooled vectors are concatenated
    (part 1 first)::

        h      = BasicBlock(features)                  # (B, H, W, C), >= 0
        z      = BatchNorm(conv1x1(h))                 # (B, H, W, P + 1)
        maps   = relu(z)[..., :n_parts]                # (B, H, W, P), >= 0
        v_k    = mean_ij(maps[..., k] * features)      # (B, C) per part
        v      = concat(v_1, ..., v_P)                 # (B, P * C)
        y      = sign(v) * sqrt(|v| + epsilon)         # signed square root
        output = scale * y / ||y||_2                   # L2 normalisation

    **Normalisation of the pooled vectors** (``normalize=True``, the
    default). The bilinear CNN paper (Lin, RoyChowdhury, Maji 2015) passes
    its pooled bilinear vector through a signed square root and an L2
    normalisation before the linear classifier, and WS-DAN does the same
    with its part features: the square root damps the few large
    activations that a spatial sum of products produces, and the L2 norm
    puts every image on the same scale whatever the size of the attended
    regions. ``epsilon`` (1e-12, WS-DAN's value) keeps the square root's
    gradient finite near 0; the norm is clamped at 1e-12 below, so an
    all-zero vector (every map dead) stays 0; computed in float32.
    ``normalize=False`` returns the pooled vectors as they are (the
    layer before this option).

    **Scale of the normalised vectors** (``scale``, default ``1.0``: unit
    vectors). A unit vector of ``D = n_parts * C`` dimensions has entries
    of about ``1 / sqrt(D)``: a linear classifier trained from scratch on
    it starts with logits near 0 and needs large weights to separate the
    classes, so it can learn slowly or not at all (measured on
    ``synthetic_clutter`` with the tiny ResNet from scratch: the loss
    stayed at ``log(10)`` for 6 epochs on one seed of two).
    ``scale="auto"`` multiplies the normalised vector by ``sqrt(D)``, so
    that its entries have a root mean square of 1 (the scale of
    un-normalised features that a ``Dense`` layer's initialisation
    expects; WS-DAN multiplies by a fixed 100 for the same reason); a
    float multiplies by that number. With ``"auto"`` and one epoch of
    learning-rate warm-up the B-CNN kept up with the plain CNN on that
    task (``docs/how_it_works.md``); on the easier embedded data and in
    very short runs it was no better than unit vectors, so the default
    stays ``1.0``. Only used with ``normalize=True``.

    **Dead maps, and the one difference from the authors' block.** The
    authors apply the ReLU directly to the 1x1 convolution. ``h`` is
    non-negative (it leaves a ReLU), so a map's pre-activation is dominated
    by ``w . mean(h)``, a per-map constant: with a zero-mean initialisation
    about half the maps are negative at every location of every image from
    the start, and during training a step that makes a map negative
    everywhere is never undone (a ReLU that is 0 everywhere has no
    gradient). With all ``n_parts`` maps dead the pooled vectors are 0 and
    the classifier is at chance. The default ``map_normalization=True``
    puts a batch normalisation between the 1x1 convolution and the ReLU
    (as WS-DAN's attention block, conv-BN-ReLU): each map's
    pre-activation is centred over the batch and the locations, so part of
    every map stays positive and trainable. ``map_normalization=False`` is
    exactly the authors' block. Measured on the embedded data
    (``docs/how_it_works.md``): without it a fifth to two thirds of the
    maps died within a few epochs; with it none did, and the B-CNN
    trained as well as the plain CNN.

    Args:
        n_parts: int >= 1, number of attention maps.
        hidden_channels: int >= 1 or ``None`` (the number of input
            channels ``C``, the authors' ``BasicBlock(C, C)``), width of the
            first 3x3 convolution of the residual block; the second one
            always gives ``C`` channels (the residual is added to the input).
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None``
            (``keras.config.image_data_format()``).
        return_attention_maps: bool, default of the call argument.
        kernel_initializer: initializer of the two 3x3 convolutions.
        map_initializer: initializer of the 1x1 map convolution.
        map_normalization: bool, batch normalisation between the 1x1
            convolution and the ReLU (default ``True``, see above);
            ``False`` is the authors' block exactly.
        normalize: bool, signed square root and L2 normalisation of the
            concatenated pooled vectors (default ``True``, see above).
        scale: float > 0 (default ``1.0``) or ``"auto"``
            (``sqrt(n_parts * C)``, see above), multiplier of the
            normalised vectors (ignored with ``normalize=False``).
        epsilon: float > 0, added under the square root.
        **kwargs: base ``keras.layers.Layer`` arguments.

    Call arguments:
        features: 4-D feature map, ``(B, H, W, C)`` or ``(B, C, H, W)``.
        return_attention_maps: bool or ``None`` (use the constructor's).
        training: bool, passed to the batch normalisations.

    Returns:
        Pooled vectors ``(B, n_parts * C)`` (L2 norm ``scale``, 1 by
        default, with ``normalize=True``); with
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
    >>> layer = model.layers[1]
    >>> tuple(layer.project.kernel.shape)  # n_parts + 1 maps, no bias
    (1, 1, 8, 4)
    >>> import numpy as np
    >>> vectors = layer(np.ones((2, 15, 15, 8), "float32"))
    >>> np.round(keras.ops.convert_to_numpy(keras.ops.norm(vectors, axis=-1)), 4)
    array([1., 1.], dtype=float32)

    Reference:
        Hu, Qi, Huang, Lu. "See Better Before Looking Closer: Weakly
        Supervised Data Augmentation Network for Fine-Grained Visual
        Classification" (WS-DAN), arXiv:1901.09891; Lin, RoyChowdhury,
        Maji. "Bilinear CNN Models for Fine-grained Visual Recognition",
        ICCV 2015 (the signed square root and L2 normalisation); used as
        the B-CNN
        baseline in Gomez et al., Pattern Recognition 2022 (block of the
        authors' ``code/modelBuilder.py``).
    """

    def __init__(
        self,
        n_parts=3,
        hidden_channels=None,
        data_format=None,
        return_attention_maps=False,
        kernel_initializer="he_normal",
        map_initializer="he_normal",
        map_normalization=True,
        normalize=True,
        epsilon=1e-12,
        scale=1.0,
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
        return_attention_maps = check_bool("return_attention_maps", return_attention_maps)
        self.return_attention_maps = return_attention_maps
        self.kernel_initializer = _get_initializer("kernel_initializer", kernel_initializer)
        map_normalization = check_bool("map_normalization", map_normalization)
        self.map_normalization = map_normalization
        self.map_initializer = _get_initializer("map_initializer", map_initializer)
        self.normalize = check_bool("normalize", normalize)
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, (int, float))
            or not 0 < epsilon < 1
        ):
            raise invalid("epsilon", epsilon, "a float in (0, 1)")
        self.epsilon = float(epsilon)
        if not (isinstance(scale, str) and scale == "auto"):
            scale = check_positive_float("scale", scale, "'auto' or a finite float > 0")
        self.scale = scale

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

        def conv(filters, size, name, initializer):
            return keras.layers.Conv2D(
                filters,
                size,
                padding="same",
                use_bias=False,
                data_format=self.data_format,
                kernel_initializer=initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        def norm(name):
            return keras.layers.BatchNormalization(
                axis=axis, dtype=self.dtype_policy, name=name
            )

        self.conv1 = conv(hidden, 3, "conv1", self.kernel_initializer)
        self.norm1 = norm("norm1")
        self.conv2 = conv(c, 3, "conv2", self.kernel_initializer)
        self.norm2 = norm("norm2")
        self.project = conv(self.n_parts + 1, 1, "project", self.map_initializer)
        self.conv1.build(input_shape)
        hidden_shape = self.conv1.compute_output_shape(input_shape)
        self.norm1.build(hidden_shape)
        self.conv2.build(hidden_shape)
        self.norm2.build(input_shape)
        self.project.build(input_shape)
        if self.map_normalization:
            self.map_norm = norm("map_norm")
            self.map_norm.build(self.project.compute_output_shape(input_shape))
        self.built = True

    def block(self, features, training=None):
        """The residual ``BasicBlock(C, C)``: its non-negative output ``h``."""
        x = ops.relu(self.norm1(self.conv1(features), training=training))
        x = self.norm2(self.conv2(x), training=training)
        return ops.relu(x + features)

    def call(self, features, return_attention_maps=None, training=None):
        if return_attention_maps is None:
            return_attention_maps = self.return_attention_maps
        logits = self.project(self.block(features, training=training))
        if self.map_normalization:
            logits = self.map_norm(logits, training=training)
        all_maps = ops.relu(logits)
        if self.data_format == "channels_first":
            maps = all_maps[:, : self.n_parts]
            maps_cl = ops.transpose(maps, (0, 2, 3, 1))
            feats_cl = ops.transpose(features, (0, 2, 3, 1))
        else:
            maps = all_maps[..., : self.n_parts]
            maps_cl, feats_cl = maps, features
        # (B, H, W, P) x (B, H, W, C) -> (B, P, C), spatial mean.
        pooled = ops.einsum("bhwp,bhwc->bpc", maps_cl, feats_cl)
        shape = ops.shape(feats_cl)
        count = ops.cast(shape[1] * shape[2], pooled.dtype)
        pooled = pooled / count
        vectors = ops.reshape(pooled, (-1, self.n_parts * shape[3]))
        if self.normalize:
            vectors = self.normalize_vectors(vectors)
        if not return_attention_maps:
            return vectors
        return vectors, maps

    def normalize_vectors(self, vectors):
        """Signed square root, L2 normalisation (Lin et al. 2015), ``scale``."""
        x = ops.cast(vectors, "float32")
        y = ops.sign(x) * ops.sqrt(ops.abs(x) + self.epsilon)
        norm = ops.sqrt(ops.sum(ops.square(y), axis=-1, keepdims=True))
        scale = self.scale
        if scale == "auto":
            scale = float(vectors.shape[-1]) ** 0.5
        # An all-zero vector (every map dead) stays 0 (torch's F.normalize).
        return ops.cast(y * (scale / ops.maximum(norm, 1e-12)), vectors.dtype)

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
                "map_initializer": keras.initializers.serialize(self.map_initializer),
                "map_normalization": self.map_normalization,
                "normalize": self.normalize,
                "epsilon": self.epsilon,
                "scale": self.scale,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuilds the layer; a config saved before ``normalize`` existed
        (keras_brnpa 0.2) has no such key and keeps its old outputs
        (``normalize=False``) instead of taking the new default; one saved
        before ``scale`` existed keeps its unit vectors (``scale=1.0``,
        whatever the default).

        Example:

        >>> layer = BilinearAttentionPooling(n_parts=2, scale="auto")
        >>> config = layer.get_config()
        >>> BilinearAttentionPooling.from_config(config).normalize
        True
        >>> del config["normalize"]
        >>> BilinearAttentionPooling.from_config(config).normalize
        False
        >>> del config["scale"]
        >>> BilinearAttentionPooling.from_config(config).scale
        1.0
        """
        config = dict(config)
        config.setdefault("normalize", False)
        config.setdefault("scale", 1.0)
        return super().from_config(config)


def _get_initializer(name, value):
    try:
        return keras.initializers.get(value)
    except (ValueError, TypeError) as error:
        raise invalid(name, value, "a Keras initializer (name, config or instance)") from error
