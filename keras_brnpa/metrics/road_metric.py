"""ROAD: RemOve And Debias (Rong et al., ICML 2022), batched.

Deletion and insertion fill removed pixels with a constant or a blur: the
perturbed images leave the data distribution, and the shape of the
removed region can itself tell the class. ROAD removes a fraction ``p``
of the pixels instead and fills them by **noisy linear imputation**
(``noisy_linear_impute``): each removed pixel equals the weighted mean of
its 8 neighbours (weight 1/6 for the 4 direct ones, 1/12 for the
diagonals, renormalised over the neighbours inside the image), removed
neighbours included, which is one sparse linear system per image with
``C`` right-hand sides (symmetric positive definite), solved exactly:
with the unknowns in row-major order (column-major for a wide image) each
image's matrix is a band as wide as the image's shorter side, factored by
LAPACK's band Cholesky (``dpbsv`` from ``scipy.linalg.cython_lapack``,
called through ``ctypes`` so that it releases the GIL: the images are
solved on one thread per usable core, each on one BLAS thread;
``scipy.linalg.solveh_banded``, one image after another, where SciPy does
not export it) when that side is at most ``BANDED_MAX_SIDE`` (96) pixels and
``threadpoolctl`` (a dependency) finds SciPy's BLAS to hold it to one thread;
otherwise ``scipy.sparse.linalg.spsolve`` solves all the images of a
chunk at once. Both agree to about 1e-14. Then Gaussian noise of
standard deviation ``noise`` is added to the imputed pixels.

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

import concurrent.futures
import contextlib
import functools
import numbers
import os

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

#: The imputation noise's standard deviation of the ROAD paper.
NOISE = 0.01

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


#: Widest grid side (after a transpose, the shorter one) solved as a band.
#: The band Cholesky costs about ``n * side**2``, SciPy's sparse LU about
#: ``n**1.5``: measured on 64-px ROAD systems the band is 2.5-3x faster,
#: at 128 px they tie, at 224 px the band is 1.3-2.3x slower.
BANDED_MAX_SIDE = 96


@functools.cache
def _single_thread_blas():
    """SciPy's BLAS as a ``threadpoolctl`` selection, or ``None`` without it
    (found once per process: the scan of the loaded libraries takes ~20 ms).

    ``selection.limit(limits=1)`` runs BLAS/LAPACK on one thread until the
    ``with`` block ends.

    LAPACK's band Cholesky makes many small BLAS calls; on a multi-threaded
    OpenBLAS whose cores are busy (another process, a model's thread pool)
    they were measured 10-80x slower than on one thread. Where
    ``threadpoolctl`` (a dependency) is missing or finds no BLAS library,
    the thread count cannot be limited, and
    ``_impute_linear`` uses ``scipy.sparse.linalg.spsolve`` instead.
    """
    try:
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS before the scan)
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    blas = ThreadpoolController().select(user_api="blas")
    return blas if blas.lib_controllers else None


def _linear_system(images, removed):
    """The equations of the removed pixels of ``(n, H, W, C)`` images.

    Unknowns are the removed pixels in flat (image, row, column) order.
    Returns ``(flat, index, image_index, diagonal, rhs, couplings)``: the
    float64 ``(n*H*W, C)`` pixels, the flat indices of the unknowns, the
    image of each unknown, the diagonal ``sum_j w_j`` (over in-image
    neighbours), the right-hand sides ``sum_(kept j) w_j * v_j`` and the
    couplings ``(i, j, w)`` between unknowns ``i < j`` (entry ``-w`` at
    ``(i, j)`` and ``(j, i)``: the weights are symmetric).
    """
    count, height, width, channels = images.shape
    flat = images.reshape(-1, channels).astype(np.float64)
    index = np.flatnonzero(removed)
    n = len(index)
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
        neighbours = index[inside] + (dy * width + dx)
        variables = unknown[neighbours]
        free = variables >= 0
        if dy * width + dx > 0:  # each coupling once: the later neighbours
            rows.append(equations[free])
            cols.append(variables[free])
            values.append(np.full(int(free.sum()), weight))
        # Each equation has one neighbour per offset: plain indexing adds once.
        rhs[equations[~free]] += weight * flat[neighbours[~free]]
    couplings = (np.concatenate(rows), np.concatenate(cols), np.concatenate(values))
    return flat, index, image_index, diagonal, rhs, couplings


def _solve_sparse(diagonal, rhs, couplings):
    """The system in one ``scipy.sparse.linalg.spsolve`` call (every image)."""
    import scipy.sparse
    import scipy.sparse.linalg

    n = len(diagonal)
    rows, cols, weights = couplings
    matrix = scipy.sparse.csc_matrix(
        (
            np.concatenate([-weights, -weights, diagonal]),
            (np.concatenate([rows, cols, np.arange(n)]), np.concatenate([cols, rows, np.arange(n)])),
        ),
        shape=(n, n),
    )
    return np.asarray(scipy.sparse.linalg.spsolve(matrix, rhs)).reshape(rhs.shape)


@functools.cache
def _lapack_pbsv():
    """LAPACK's ``dpbsv`` as a ``ctypes`` function, or ``None``.

    Taken from ``scipy.linalg.cython_lapack`` (SciPy's public Cython
    interface to its own LAPACK, the route Numba uses too): a ``ctypes``
    call releases the GIL, so that threads solve several images' systems
    at once (``scipy.linalg.solveh_banded`` holds the GIL). ``None`` where
    SciPy does not export it; ``_solve_banded`` then falls back to
    ``solveh_banded``, one image after another.
    """
    try:
        import ctypes

        from scipy.linalg import cython_lapack

        capsule = cython_lapack.__pyx_capi__["dpbsv"]
        name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(
            ("PyCapsule_GetName", ctypes.pythonapi)
        )(capsule)
        address = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
            ("PyCapsule_GetPointer", ctypes.pythonapi)
        )(capsule, name)
    except Exception:  # noqa: BLE001 (any failure: use the GIL-holding path)
        return None
    if not address:
        return None
    return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 9)(address)


def _band_solve(pbsv, band, rhs):
    """Solve one band system in place with LAPACK ``dpbsv`` (``ctypes``).

    ``band``: C-contiguous float64 ``(n, kd + 1)``, which is LAPACK's upper
    band storage ``(kd + 1, n)`` in Fortran order; ``rhs``: C-contiguous
    float64 ``(nrhs, n)`` (Fortran ``(n, nrhs)``), overwritten by the
    solution.
    """
    import ctypes

    n, width = band.shape
    sizes = (ctypes.c_int * 5)(n, width - 1, rhs.shape[0], width, n)
    info = ctypes.c_int(0)
    pointer = ctypes.addressof(sizes)
    step = ctypes.sizeof(ctypes.c_int)
    pbsv(
        b"U",
        pointer,  # n
        pointer + step,  # kd
        pointer + 2 * step,  # nrhs
        band.ctypes.data,
        pointer + 3 * step,  # ldab
        rhs.ctypes.data,
        pointer + 4 * step,  # ldb
        ctypes.addressof(info),
    )
    if info.value != 0:  # the systems are positive definite: not expected
        raise RuntimeError(f"LAPACK dpbsv failed (info={info.value}) in ROAD's imputation")


def _workers(jobs):
    """Threads for ``jobs`` independent solves: at most the usable cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(jobs, cores))


def _solve_banded(diagonal, rhs, couplings, image_index, count):
    """The system by a band Cholesky per image (LAPACK ``pbsv``).

    Unknowns in row-major order couple only within ``width + 1`` of each
    other: each image's matrix (symmetric positive definite, diagonally
    dominant) is a band of half-width ``kd`` (its farthest coupling), stored
    in LAPACK's upper form ``ab[kd + i - j, j] = A[i, j]`` in Fortran order
    (C order ``(n, kd + 1)``). The images are solved by ``dpbsv`` through
    ``ctypes`` on as many threads as there are usable cores (the call
    releases the GIL; one BLAS thread each), largest systems first; without
    that function, by ``scipy.linalg.solveh_banded`` one after another.
    """
    import scipy.linalg

    rows, cols, weights = couplings
    starts = np.searchsorted(image_index, np.arange(count + 1))
    sizes = np.diff(starts)
    # The couplings grouped by image (row order; a stable sort of a few runs).
    by_row = np.argsort(rows, kind="stable")
    rows, cols, weights = rows[by_row], cols[by_row], weights[by_row]
    distance = cols - rows
    bounds = np.searchsorted(rows, starts)
    kd = np.zeros(count, np.int64)
    np.maximum.at(kd, image_index[rows], distance)
    solution = np.empty_like(rhs)
    pbsv = _lapack_pbsv()

    def solve(k):
        # Image k's band, (n_k, kd_k + 1) in C order, built in its own thread.
        first, last = starts[k], starts[k + 1]
        band = np.zeros((sizes[k], kd[k] + 1))
        band[:, kd[k]] = diagonal[first:last]
        pairs = slice(bounds[k], bounds[k + 1])
        band[cols[pairs] - first, kd[k] - distance[pairs]] = -weights[pairs]
        if pbsv is None:
            solution[first:last] = scipy.linalg.solveh_banded(
                band.T, rhs[first:last], overwrite_ab=True, check_finite=False
            )
            return
        values = np.ascontiguousarray(rhs[first:last].T)
        _band_solve(pbsv, band, values)
        solution[first:last] = values.T

    # Largest first (cost about n * kd**2), so that the threads end together.
    jobs = sorted(np.flatnonzero(sizes), key=lambda k: -sizes[k] * (kd[k] + 1) ** 2)
    workers = 1 if pbsv is None else _workers(len(jobs))
    if workers == 1:
        for k in jobs:
            solve(k)
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(solve, jobs))  # re-raises a worker's error
    return solution


def _impute_linear(images, removed, solver=None):
    """Linear imputation of the ``removed`` ``(n, H, W)`` pixels of ``(n, H, W, C)``.

    For every removed pixel ``i`` with in-image neighbours ``j``
    (weights ``w_j``): ``sum_j w_j * x_i - sum_(removed j) w_j * x_j =
    sum_(kept j) w_j * v_j``. The systems of the ``n`` images are
    independent (no term between images). ``solver``: ``"banded"`` (a band
    Cholesky per image, LAPACK ``dpbsv``, on one thread per core, each on
    one BLAS thread: ``_solve_banded``),
    ``"sparse"`` (one ``scipy.sparse.linalg.spsolve`` over all images) or
    ``None``: banded when the shorter image side is at most
    ``BANDED_MAX_SIDE`` and ``threadpoolctl`` can hold BLAS to one thread,
    sparse otherwise. Both are exact (they agree to about 1e-14).
    """
    if images.shape[1] < images.shape[2]:  # the band's width is the row length
        out = _impute_linear(
            np.swapaxes(images, 1, 2), np.swapaxes(removed, 1, 2), solver=solver
        )
        return np.swapaxes(out, 1, 2)
    count, height, width, channels = images.shape
    flat, index, image_index, diagonal, rhs, couplings = _linear_system(images, removed)
    if len(index) == 0:
        return flat.reshape(images.shape)
    if solver is None:
        solver = (
            "banded"
            if width <= BANDED_MAX_SIDE and _single_thread_blas() is not None
            else "sparse"
        )
    if solver == "banded":
        blas = _single_thread_blas()
        with contextlib.nullcontext() if blas is None else blas.limit(limits=1):
            solution = _solve_banded(diagonal, rhs, couplings, image_index, count)
    else:
        solution = _solve_sparse(diagonal, rhs, couplings)
    flat[index] = solution
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


def noisy_linear_impute(images, mask, noise=NOISE, seed=0):
    """Fill removed pixels by noisy linear imputation (ROAD's imputation).

    Each removed pixel becomes the weighted mean of its 8 neighbours
    (1/6 for the 4 direct ones, 1/12 for the diagonals, the weights
    renormalised over the neighbours inside the image), removed
    neighbours included: one sparse linear system per image, all channels
    at once, solved exactly (a band Cholesky, LAPACK ``dpbsv``, or
    ``scipy.sparse.linalg.spsolve``: see the module). Then Gaussian noise of
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
    noise=NOISE,
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
