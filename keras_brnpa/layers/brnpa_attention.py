"""The BR-NPA layer: parameter-free grouping of feature vectors into parts."""

import math
import numbers

import keras
from keras import ops

from keras_brnpa.layers._part_shapes import PartShapesMixin
from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_choice
from keras_brnpa._checks import check_data_format
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_seed
from keras_brnpa._checks import invalid

# Below this absolute value the sum of similarities is treated as zero and
# the attention map of that part falls back to a uniform map.
_SUM_FLOOR = 1e-12
# Squared norms are floored before the square root so that an all-zero
# feature vector (dead ReLUs) gets a zero gradient instead of NaN. The value
# changes by at most sqrt(_SQUARE_FLOOR) = 1e-15, far below epsilon.
_SQUARE_FLOOR = 1e-30


def safe_norm(x, axis):
    """Euclidean norm along ``axis``: finite gradient at zero, no overflow.

    Each vector is divided by its largest absolute value before squaring
    (the scale is held constant for the gradient), so that features of any
    finite magnitude (``1e19`` squares to ``inf`` in float32) give their
    norm, and an all-zero vector gives 0 with a zero gradient.
    """
    scale = ops.stop_gradient(ops.max(ops.abs(x), axis=axis, keepdims=True))
    scale = ops.where(scale > 0, scale, ops.ones_like(scale))
    squares = ops.sum(ops.square(x / scale), axis=axis)
    return ops.sqrt(ops.maximum(squares, _SQUARE_FLOOR)) * ops.squeeze(scale, axis=axis)


# Images whose largest absolute feature exceeds 2**_MAX_EXPONENT are divided
# by a power of two first: norms, sums and similarities then never overflow.
_MAX_EXPONENT = 60
_FLOAT32_MAX = 3.4028234663852886e38


def _image_scale(flat):
    """``(B, 1, 1)`` powers of two, 1 unless an image's peak exceeds 2**60."""
    peak = ops.max(ops.abs(flat), axis=tuple(range(1, len(flat.shape))))
    exponent = ops.maximum(ops.ceil(ops.log2(peak)) - _MAX_EXPONENT, 0.0)
    exponent = ops.where(ops.isfinite(exponent), exponent, ops.zeros_like(exponent))
    scale = ops.stop_gradient(ops.power(2.0, exponent))
    return ops.reshape(scale, (-1,) + (1,) * (len(flat.shape) - 1))


def _in_units(norm, scale):
    """A norm computed on rescaled features, back in the features' units
    (unchanged where the scale is 1, capped at the largest float32)."""
    return ops.where(scale > 1, ops.minimum(norm * scale, _FLOAT32_MAX), norm)


@keras.saving.register_keras_serializable(package="keras_brnpa")
class BRNPAAttention(PartShapesMixin, keras.layers.Layer):
    """Bilinear Representative Non-Parametric Attention (BR-NPA).

    Groups the feature vectors of a backbone around its most active ones,
    without any trainable weight. For each part ``k`` (in order), the layer
    takes the location ``j`` with the highest remaining score (initially the
    feature norm ``n_i = ||f_i|| + epsilon``), computes the cosine similarity
    ``s_i`` of every feature vector to ``f_j``, normalises it into an
    attention map ``a_i = s_i / sum(s)``, pools the part vector
    ``v_k = sum_i a_i f_i`` and damps the score by ``(1 - s_i)`` so that the
    next part looks elsewhere. The part vectors are concatenated, part 1
    (the most active region) first.

    All the arithmetic is done in float32, whatever the input dtype or the
    mixed-precision policy; outputs are cast to the layer's compute dtype.
    Norms and similarities are computed from rescaled values: an image
    whose largest absolute feature exceeds ``2**60`` is first divided by a
    power of two (exact in floating point) that brings it below, each
    feature vector is divided by its largest absolute value before
    squaring, and the similarities are dot products of unit vectors. So
    features of any finite magnitude (``3e38`` included; ``1e19`` squares
    to ``inf`` in float32) give the maps of the same features at a
    moderate scale. The norm map (``group``, ``feature_norm``) is returned
    in the features' units, capped at the largest float32.

    Non-finite features (NaN or inf) give NaN vectors, maps and norms for
    that image (never uniform maps); the other images of the batch are
    unaffected. An empty batch gives empty outputs.

    Signed features (no ReLU before the layer): a negative cosine
    similarity is clamped to 0, i.e. a location pointing away from the
    representative is not part of that part (its weight is 0 and its score
    is not damped). Every attention map is therefore a distribution over
    the locations (non-negative, summing to 1) for any finite input. For
    non-negative features, the paper's case, similarities are never
    negative and the clamp changes nothing: the layer computes exactly the
    paper's algorithm.

    Degenerate inputs never produce NaN: when the similarities of a part sum
    to (almost) zero, e.g. an all-zero feature map from dead ReLUs or
    features far below ``epsilon``, that
    part's attention map falls back to the uniform map ``1 / (H * W)`` and
    its vector to the spatial mean of the features (zero for an all-zero
    map). With a single location every map is ``1``; with
    ``n_parts == H * W`` later parts may revisit locations already covered
    (their score is damped to zero, and the argmax then takes the first
    such location).

    Args:
        n_parts: int >= 1, number of parts (attention maps).
        refine: bool. If ``True`` (the paper), each part vector is the
            attention-weighted mean of all feature vectors; if ``False``
            (the "no refinement" ablation), it is the selected raw vector.
        selection: ``"norm"`` (the paper) picks each part's representative
            location by its damped norm; ``"random"`` (ablation) picks it
            uniformly at random, independently for each part.
        seed: int or ``None``, seed of the random selection.
        epsilon: finite float > 0 added to the feature norms.
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None``
            (``keras.config.image_data_format()``).
        return_attention_maps: bool, default of the call argument of the
            same name.
        grid: ``None`` or ``(h, w)``: the grid of transformer tokens
            ``(B, N, C)`` given to the layer (``h * w = N``); ``None``
            infers a square grid (``N`` a square). Unused for 4-D feature
            maps.
        **kwargs: base ``keras.layers.Layer`` arguments (``name``,
            ``dtype``, ...).

    Call arguments:
        features: 4-D feature map, ``(B, H, W, C)`` or ``(B, C, H, W)``,
            with ``C >= 1`` and ``H * W >= n_parts`` (else ``ValueError``);
            or transformer tokens ``(B, N, C)`` (a class token dropped
            first), laid on ``grid`` or a square grid; their maps are
            ``(B, h, w, n_parts)``.
        return_attention_maps: bool or ``None`` (use the constructor's).
        training: unused (the layer behaves identically).

    Returns:
        The part vectors ``(B, n_parts * C)``; with
        ``return_attention_maps=True`` a tuple ``(vectors, maps)`` where
        ``maps`` is ``(B, H, W, n_parts)`` (``channels_last``) or
        ``(B, n_parts, H, W)`` (``channels_first``); each map sums to 1.

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([
    ...     keras.Input((32, 32, 3)),
    ...     keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
    ...     keras_brnpa.BRNPAAttention(n_parts=3),
    ...     keras.layers.Dense(5),
    ... ])
    >>> model.output_shape
    (None, 5)
    >>> layer = keras_brnpa.BRNPAAttention(n_parts=2)
    >>> vectors, maps = layer(np.random.rand(1, 4, 4, 6).astype("float32"),
    ...                       return_attention_maps=True)
    >>> tuple(vectors.shape), tuple(maps.shape)
    ((1, 12), (1, 4, 4, 2))

    Reference:
        Gomez, Ling, Freour, Mouchere. "BR-NPA: A non-parametric
        high-resolution attention model to improve the interpretability of
        attention". Pattern Recognition, 2022. arXiv:2106.02566.
    """

    def __init__(
        self,
        n_parts=3,
        refine=True,
        selection="norm",
        seed=None,
        epsilon=1e-5,
        data_format=None,
        return_attention_maps=False,
        grid=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_parts = check_positive_int("n_parts", n_parts)
        refine = check_bool("refine", refine)
        self.refine = refine
        self.selection = check_choice("selection", selection, ("norm", "random"))
        seed = check_seed(seed, allow_none=True)
        self.seed = seed
        if (
            isinstance(epsilon, bool)
            or not isinstance(epsilon, numbers.Real)
            or not 0 < epsilon < math.inf
        ):
            raise invalid("epsilon", epsilon, "a finite float > 0")
        self.epsilon = float(epsilon)
        self.data_format = check_data_format(data_format)
        return_attention_maps = check_bool("return_attention_maps", return_attention_maps)
        self.return_attention_maps = return_attention_maps
        if grid is not None:
            if (
                not isinstance(grid, (tuple, list))
                or len(grid) != 2
                or any(isinstance(g, bool) or not isinstance(g, numbers.Integral) or g < 1
                       for g in grid)
            ):
                raise invalid("grid", grid, "None or a tuple (h, w) of two integers >= 1")
            grid = (int(grid[0]), int(grid[1]))
        self.grid = grid
        self.seed_generator = (
            keras.random.SeedGenerator(seed) if selection == "random" else None
        )
        self.supports_masking = False

    # ------------------------------------------------------------------ shapes
    def _check_locations(self, h, w, shape):
        if h is not None and w is not None and self.n_parts > h * w:
            raise invalid(
                "n_parts",
                self.n_parts,
                f"at most height * width = {h * w} locations of the "
                f"feature map of shape {shape}",
            )

    def _token_grid(self, shape):
        """``(h, w, c)`` of tokens ``(B, N, C)``: ``grid``, or a square ``N``."""
        n, c = shape[1], shape[2]
        if self.grid is not None:
            h, w = self.grid
            if n is not None and h * w != n:
                raise invalid("grid", self.grid,
                              f"h * w equal to the number of tokens N = {n} of the input "
                              f"of shape {shape}")
        elif n is None:
            h = w = None
        else:
            side = math.isqrt(n)
            if side * side != n:
                raise invalid(
                    "features", f"<tensor of shape {shape}>",
                    "a 4-D feature map (B, H, W, C), or tokens (B, N, C) with N a square (the "
                    "grid is inferred) or grid=(h, w) given to the layer (drop a class token "
                    "before the layer)",
                )
            h = w = side
        self._check_locations(h, w, shape)
        return h, w, c

    def _output_shapes(self, input_shape, with_maps):
        if len(tuple(input_shape)) != 3:
            return super()._output_shapes(input_shape, with_maps)
        b = input_shape[0]
        h, w, c = self._check_shape(input_shape)
        vectors = (b, None if c is None else self.n_parts * c)
        return (vectors, (b, h, w, self.n_parts)) if with_maps else vectors

    def _check_shape(self, shape):
        shape = tuple(shape)
        if len(shape) == 3:
            h, w, c = self._token_grid(shape)
        else:
            h, w, c = super()._check_shape(shape)
        if c == 0:
            raise invalid(
                "features",
                f"<tensor of shape {tuple(shape)}>",
                "a feature map with at least one channel (C >= 1)",
            )
        return h, w, c

    def build(self, input_shape):
        self._check_shape(input_shape)
        self.built = True

    # -------------------------------------------------------------------- call
    def call(self, features, return_attention_maps=None, training=None):
        if return_attention_maps is None:
            return_attention_maps = self.return_attention_maps
        vectors, maps, _ = self.group(features)
        vectors = ops.cast(vectors, self.compute_dtype)
        if not return_attention_maps:
            return vectors
        return vectors, ops.cast(maps, self.compute_dtype)

    def group(self, features):
        """Run the grouping and return every intermediate result.

        Args:
            features: 4-D feature map in the layer's ``data_format``.

        Returns:
            Tuple ``(vectors, maps, norm)`` in float32: ``vectors``
            ``(B, n_parts * C)``; ``maps`` the attention maps in the layer's
            data format; ``norm`` the feature-norm map ``n_i`` of shape
            ``(B, H, W)``, the map the paper multiplies part 1 by to get
            its explanation map.

        Example:

        >>> import numpy as np, keras_brnpa
        >>> layer = keras_brnpa.BRNPAAttention(n_parts=2)
        >>> v, maps, norm = layer.group(np.ones((1, 3, 3, 4), "float32"))
        >>> tuple(norm.shape)
        (1, 3, 3)
        """
        grid = self._check_shape(tuple(features.shape))
        x = ops.cast(features, "float32")
        tokens = len(features.shape) == 3
        if tokens:  # (B, N, C) tokens on an h x w grid, channels last
            x = ops.reshape(x, (-1, grid[0], grid[1], grid[2]))
        elif self.data_format == "channels_first":
            x = ops.transpose(x, (0, 2, 3, 1))
        if x.shape[0] == 0:  # an empty batch (ops.max refuses empty tensors)
            h, w, c = x.shape[1], x.shape[2], x.shape[3]
            maps = ops.zeros((0, h, w, self.n_parts), "float32")
            if self.data_format == "channels_first":
                maps = ops.transpose(maps, (0, 3, 1, 2))
            return (
                ops.zeros((0, self.n_parts * c), "float32"),
                maps,
                ops.zeros((0, h, w), "float32"),
            )
        shape = ops.shape(x)
        h, w, c = shape[1], shape[2], shape[3]
        n = h * w
        flat = ops.reshape(x, (-1, n, c))  # (B, N, C)
        # Non-finite images are computed as zeros, then set to NaN at the end.
        finite = ops.all(ops.isfinite(flat), axis=(1, 2))  # (B,)
        flat = ops.where(finite[:, None, None], flat, ops.zeros_like(flat))
        scale = _image_scale(flat)  # (B, 1, 1), a power of two, 1 for most inputs
        scaled = flat / scale
        norm = safe_norm(scaled, axis=-1) + self.epsilon  # (B, N), rescaled units
        unit = scaled / norm[..., None]  # f_i / n_i

        score = norm
        vectors, maps = [], []
        for _ in range(self.n_parts):
            if self.selection == "random":
                score = keras.random.uniform(
                    ops.shape(norm), seed=self.seed_generator
                )
            index = ops.argmax(score, axis=1)
            pick = ops.one_hot(index, n, dtype="float32")  # (B, N)
            pick = ops.stop_gradient(pick)
            rep = ops.einsum("bn,bnc->bc", pick, flat)  # raw representative
            # Cosine similarity <f_i, f_j> / (n_i n_j) of the unit vectors
            # (no overflow for huge features); negative ones are clamped to
            # 0 (they only occur for signed features, see the docstring).
            unit_rep = ops.einsum("bn,bnc->bc", pick, unit)
            sim = ops.relu(ops.einsum("bnc,bc->bn", unit, unit_rep))
            total = ops.sum(sim, axis=1, keepdims=True)
            ok = ops.abs(total) > _SUM_FLOOR
            safe_total = ops.where(ok, total, ops.ones_like(total))
            uniform = ops.ones_like(sim) / ops.cast(n, "float32")
            att = ops.where(ok, sim / safe_total, uniform)
            if self.refine:
                vectors.append(ops.einsum("bn,bnc->bc", att, flat))
            else:
                vectors.append(rep)
            maps.append(att)
            if self.selection == "norm":
                score = (1.0 - sim) * score

        vectors = ops.concatenate(vectors, axis=-1)
        maps = ops.stack(maps, axis=-1)  # (B, N, P)
        norm = _in_units(norm, scale[:, :, 0])
        nan = ops.full_like(vectors[:, :1], float("nan"))
        vectors = ops.where(finite[:, None], vectors, nan)
        maps = ops.where(finite[:, None, None], maps, nan[:, :, None])
        norm = ops.where(finite[:, None], norm, nan)
        maps = ops.reshape(maps, (-1, h, w, self.n_parts))
        if self.data_format == "channels_first" and not tokens:
            maps = ops.transpose(maps, (0, 3, 1, 2))
        norm = ops.reshape(norm, (-1, h, w))
        return vectors, maps, norm

    def feature_norm(self, features):
        """The feature-norm map ``||f_i|| + epsilon``, shape ``(B, H, W)``.

        As in ``group``: computed from rescaled values, capped at the
        largest float32, NaN where a feature vector is not finite.

        Example:

        >>> import numpy as np, keras_brnpa
        >>> layer = keras_brnpa.BRNPAAttention()
        >>> tuple(layer.feature_norm(np.ones((2, 4, 4, 3), "float32")).shape)
        (2, 4, 4)
        """
        x = ops.cast(features, "float32")
        if self.data_format == "channels_first":
            x = ops.transpose(x, (0, 2, 3, 1))
        if x.shape[0] == 0:
            return ops.zeros(tuple(x.shape[:3]), "float32")
        scale = _image_scale(ops.where(ops.isfinite(x), x, ops.zeros_like(x)))  # (B, 1, 1, 1)
        return _in_units(safe_norm(x / scale, axis=-1) + self.epsilon, scale[..., 0])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_parts": self.n_parts,
                "refine": self.refine,
                "selection": self.selection,
                "seed": self.seed,
                "epsilon": self.epsilon,
                "data_format": self.data_format,
                "return_attention_maps": self.return_attention_maps,
                "grid": None if self.grid is None else list(self.grid),
            }
        )
        return config
