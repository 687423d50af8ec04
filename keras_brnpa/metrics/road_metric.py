"""ROAD: RemOve And Debias (Rong et al., ICML 2022), batched.

Deletion and insertion fill removed pixels with a constant or a blur: the
perturbed images leave the data distribution, and the shape of the
removed region can itself tell the class. ROAD removes a fraction ``p``
of the pixels instead and fills them by **noisy linear imputation**
(``noisy_linear_impute``): each removed pixel equals the weighted mean of
its 8 neighbours (weight 1/6 for the 4 direct ones, 1/12 for the
diagonals, renormalised over the neighbours inside the image), removed
neighbours included, which is one sparse linear system per image with
``C`` right-hand sides, solved exactly (``scipy.sparse.linalg.spsolve``);
then Gaussian noise of standard deviation ``noise`` is added to the
imputed pixels.

``road`` removes the most (``order="morf"``) or least (``"lerf"``)
relevant fraction of pixels for each ``p`` of ``fractions`` and records
the probability of the explained class; its value is the mean over the
fractions. MoRF: lower is better; LeRF: higher is better.

Definitions made exact:

- the map is resized (bilinear, ``keras_brnpa._image.resize_maps``) to
  the image size when it is not already; pixels are ranked by decreasing
  (MoRF) or increasing (LeRF) saliency, ties by lower flat (row-major)
  index first (a stable sort); for fraction ``p`` the first
  ``round(p * H * W)`` pixels are removed, in every channel;
- the noise of fraction ``k`` (its index in ``fractions``) is one
  ``(H, W, C)`` field drawn from ``np.random.default_rng([seed, k])``:
  it depends on the seed, the fraction and the pixel, never on the other
  images of the call, so that an image's value is the same alone or in
  any batch;
- the class is ``class_index``, by default the class predicted on the
  intact image (one more forward pass per image), scored as in
  ``deletion_auc`` (``from_logits``).

The perturbed images of every image and fraction are built chunk by chunk
and evaluated in batches of ``batch_size`` by the same engine as
``deletion_auc`` (one compiled predict function, one trace).

Reference: Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", ICML 2022
(tleemann/road_evaluation).
"""

import numbers

import numpy as np

from keras_brnpa._checks import check_bool
from keras_brnpa._checks import check_class_index
from keras_brnpa._checks import check_from_logits
from keras_brnpa._checks import check_images
from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import check_saliency
from keras_brnpa._checks import describe
from keras_brnpa._checks import empty_batch_safe
from keras_brnpa._checks import invalid
from keras_brnpa._checks import to_numpy
from keras_brnpa._image import resize_maps
from keras_brnpa.metrics._curves import check_model
from keras_brnpa.metrics._curves import score_points
from keras_brnpa.models.inspection import check_input_scale

#: The 8 neighbours of a pixel and their weights (Rong et al. 2022).
NEIGHBOURS = (
    ((-1, 0), 1 / 6),
    ((1, 0), 1 / 6),
    ((0, -1), 1 / 6),
    ((0, 1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((1, 1), 1 / 12),
)

#: The fractions of removed pixels of the ROAD paper.
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

ORDERS = ("morf", "lerf")


def _check_noise(noise):
    if (
        isinstance(noise, (bool, np.bool_))
        or not isinstance(noise, numbers.Real)
        or not np.isfinite(noise)
        or noise < 0
    ):
        raise invalid("noise", noise, "a finite float >= 0")
    return float(noise)


def _check_seed(seed):
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise invalid("seed", seed, "an integer >= 0")
    return int(seed)


def _noise_field(shape, noise, seed, index=None):
    """``noise`` times a standard normal ``(H, W, C)`` field (zeros for 0)."""
    if noise == 0:
        return np.zeros(shape)
    key = [seed] if index is None else [seed, int(index)]
    return noise * np.random.default_rng(key).standard_normal(shape)


def _impute_linear(images, removed):
    """Linear imputation of the ``removed`` ``(n, H, W)`` pixels of ``(n, H, W, C)``.

    For every removed pixel ``i`` with in-image neighbours ``j``
    (weights ``w_j``): ``sum_j w_j * x_i - sum_(removed j) w_j * x_j =
    sum_(kept j) w_j * v_j``. The systems of the ``n`` images are
    independent (a block-diagonal matrix): they are solved in one sparse
    call, all channels at once, without any term between images.
    """
    import scipy.sparse
    import scipy.sparse.linalg

    count, height, width, channels = images.shape
    flat = images.reshape(-1, channels).astype(np.float64)
    index = np.flatnonzero(removed)
    n = len(index)
    if n == 0:
        return flat.reshape(images.shape)
    unknown = np.full(flat.shape[0], -1)
    unknown[index] = np.arange(n)
    image_index, within = np.divmod(index, height * width)
    ys, xs = np.divmod(within, width)
    diagonal = np.zeros(n)
    rhs = np.zeros((n, channels))
    rows, cols, values = [], [], []
    for (dy, dx), weight in NEIGHBOURS:
        y, x = ys + dy, xs + dx
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        diagonal[inside] += weight
        equations = np.flatnonzero(inside)
        neighbours = (image_index * height * width + y * width + x)[inside]
        variables = unknown[neighbours]
        free = variables >= 0
        rows.append(equations[free])
        cols.append(variables[free])
        values.append(np.full(int(free.sum()), -weight))
        # Each equation has one neighbour per offset: plain indexing adds once.
        rhs[equations[~free]] += weight * flat[neighbours[~free]]
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    values.append(diagonal)
    matrix = scipy.sparse.csc_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    solution = scipy.sparse.linalg.spsolve(matrix, rhs)
    flat[index] = np.asarray(solution).reshape(n, channels)
    return flat.reshape(images.shape)


def _check_mask(mask, images):
    batch, height, width = images.shape[:3]
    mask = to_numpy("mask", mask)
    if mask.ndim == 2:
        mask = np.broadcast_to(mask, (batch,) + mask.shape)
    if mask.shape != (batch, height, width) or not (
        mask.dtype == bool or np.issubdtype(mask.dtype, np.number)
    ):
        raise invalid(
            "mask",
            describe(mask),
            f"a boolean array (batch, height, width) = {(batch, height, width)} or "
            f"(height, width) = {(height, width)}, True where a pixel is removed",
        )
    if mask.dtype != bool:
        if not np.all((mask == 0) | (mask == 1)):
            raise invalid("mask", describe(mask), "boolean values (or 0/1)")
        mask = mask.astype(bool)
    full = mask.reshape(batch, -1).all(axis=1)
    if np.any(full):
        raise invalid(
            "mask",
            describe(mask),
            f"at least one kept pixel per image (images {np.flatnonzero(full).tolist()} "
            "have every pixel removed: nothing to impute from)",
        )
    return mask


def _impute(images, removed, noise_fields):
    """Noisy linear imputation; ``noise_fields`` broadcast to ``images``."""
    out = _impute_linear(images, removed)
    out += np.where(removed[..., None], noise_fields, 0.0)
    return out.astype(images.dtype)


def noisy_linear_impute(images, mask, noise=0.01, seed=0):
    """Fill removed pixels by noisy linear imputation (ROAD's imputation).

    Each removed pixel becomes the weighted mean of its 8 neighbours
    (1/6 for the 4 direct ones, 1/12 for the diagonals, the weights
    renormalised over the neighbours inside the image), removed
    neighbours included: one sparse linear system per image, all channels
    at once (``scipy.sparse.linalg.spsolve``). Then Gaussian noise of
    standard deviation ``noise`` (in the images' units) is added to the
    imputed pixels; kept pixels are returned unchanged. With ``noise=0`` a
    linear ramp is reproduced exactly inside a mask that leaves the
    border kept (the weights are symmetric).

    Args:
        images: ``(B, H, W, C)`` images.
        mask: boolean ``(B, H, W)`` (or ``(H, W)`` for every image), True
            where a pixel is removed; each image keeps at least one pixel.
        noise: float >= 0, standard deviation of the noise.
        seed: int >= 0: the noise is one ``(H, W, C)`` field drawn from
            ``np.random.default_rng(seed)``, the same for every image of
            the call (an image's result does not depend on the others).

    Returns:
        NumPy array of the images' shape and (floating) dtype.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> ramp = np.broadcast_to(np.arange(5.0)[None, :, None], (1, 5, 5, 1))
    >>> mask = np.zeros((5, 5), bool); mask[1:4, 1:4] = True
    >>> filled = keras_brnpa.metrics.noisy_linear_impute(ramp, mask, noise=0.0)
    >>> bool(np.allclose(filled, ramp))
    True
    """
    images = check_images(images, dtype=None)
    mask = _check_mask(mask, images)
    noise = _check_noise(noise)
    seed = _check_seed(seed)
    return _impute(images, mask, _noise_field(images.shape[1:], noise, seed))


def _check_fractions(fractions):
    try:
        values = np.asarray(fractions, np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise invalid("fractions", fractions, "a sequence of floats in [0, 1)") from error
    if (
        isinstance(fractions, (str, bytes))
        or values.size == 0
        or not np.all(np.isfinite(values))
        or np.any(values < 0)
        or np.any(values >= 1)
    ):
        raise invalid("fractions", fractions, "a non-empty sequence of floats in [0, 1)")
    return values


@empty_batch_safe
def road(
    model,
    images,
    saliency,
    order="morf",
    fractions=FRACTIONS,
    noise=0.01,
    seed=0,
    return_curves=False,
    class_index=None,
    from_logits=None,
    batch_size=64,
):
    """ROAD (RemOve And Debias): the class probability after noisy linear imputation.

    For each fraction ``p`` of ``fractions``, removes the ``p`` most
    (``order="morf"``) or least (``"lerf"``) salient pixels and fills them
    with ``noisy_linear_impute``, then records the probability of the
    explained class; the value is its mean over the fractions. MoRF: lower
    is better (removing what the map calls important should hurt); LeRF:
    higher is better. See the module docstring for the exact definition.

    Args:
        model: any ``keras.Model`` or a callable from ``(n, H, W, C)``
            images to ``(n, num_classes)`` scores.
        images: ``(B, H, W, C)`` images, as the model takes them.
        saliency: ``(B, h, w)`` maps of any size (resized bilinearly to the
            image size).
        order: ``"morf"`` (most relevant first) or ``"lerf"`` (least
            relevant first).
        fractions: fractions of pixels removed, each in ``[0, 1)``
            (default 10 % to 90 %).
        noise: float >= 0, standard deviation of the imputation noise in
            the images' units (0.01 as in the paper, for ``[0, 1]`` or
            normalised inputs).
        seed: int >= 0, seed of the noise.
        return_curves: also return the ``(B, len(fractions))`` scores.
        class_index: ``None`` (the class predicted on the intact image), an
            int, or one int per image.
        from_logits: ``None`` (read from the model), ``True`` (softmax the
            outputs) or ``False``, as in ``deletion_auc``.
        batch_size: int >= 1, images per forward pass (and imputed at once).

    Returns:
        NumPy ``(B,)`` mean scores; with ``return_curves=True`` a tuple
        ``(scores, curves)``.

    Example:

    >>> import numpy as np, keras, keras_brnpa
    >>> model = keras.Sequential([keras.Input((16, 16, 3)),
    ...     keras.layers.Conv2D(4, 3, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    >>> images = np.random.default_rng(0).random((2, 16, 16, 3), "float32")
    >>> saliency = np.random.default_rng(1).random((2, 4, 4))
    >>> score, curves = keras_brnpa.metrics.road(
    ...     model, images, saliency, fractions=(0.2, 0.5), return_curves=True)
    >>> score.shape, curves.shape
    ((2,), (2, 2))
    """
    model = check_model(model)
    images = check_images(images, dtype=None, model=model)
    check_input_scale(model, images)
    batch, height, width, channels = images.shape
    saliency = check_saliency(saliency, batch=batch)
    if order not in ORDERS:
        raise invalid("order", order, f"one of {ORDERS}")
    fractions = _check_fractions(fractions)
    noise = _check_noise(noise)
    seed = _check_seed(seed)
    return_curves = check_bool("return_curves", return_curves)
    class_index = check_class_index(class_index, batch)
    from_logits = check_from_logits(from_logits)
    batch_size = check_positive_int("batch_size", batch_size)

    if saliency.shape[1:] != (height, width):
        saliency = resize_maps(saliency, (height, width)).astype(np.float64)
    flat = saliency.reshape(batch, -1)
    sorted_order = np.argsort(-flat if order == "morf" else flat, axis=1, kind="stable")
    ranks = np.empty_like(sorted_order)
    np.put_along_axis(ranks, sorted_order, np.arange(height * width)[None, :], axis=1)
    ranks = ranks.reshape(batch, height, width)
    counts = np.rint(fractions * height * width).astype(np.int64)
    fields = [_noise_field((height, width, channels), noise, seed, k) for k in range(len(counts))]

    fields = np.stack(fields)

    def perturb(owner, point):
        removed = ranks[owner] < counts[point][:, None, None]
        return _impute(images[owner], removed, fields[point])

    curves = score_points(
        model, images, len(counts), perturb, batch_size, from_logits, class_index
    )
    scores = curves.mean(axis=1)
    return (scores, curves) if return_curves else scores
