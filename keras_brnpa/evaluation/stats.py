"""Uncertainty of a comparison: bootstrap intervals and tests on per-image values.

A mean over a few dozen images moves by a few points from one sample of
images to the next, so every mean of ``compare_explanations`` comes with
``n`` and a 95 % interval, and two rows are compared by a test on their
per-image values:

- ``bootstrap_ci``: the percentile bootstrap over images (seeded);
- ``paired_test``: two explanations of the SAME images (Wilcoxon
  signed-rank test on the per-image differences, ``scipy.stats.wilcoxon``);
- ``welch_test``: two independent samples, e.g. two models scored on
  different images (Welch's t-test, ``scipy.stats.ttest_ind(...,
  equal_var=False)``, the test the BR-NPA authors used between models).

Non-finite values (an undefined score, e.g. the energy in an empty mask)
are left out; a pair is left out when either value is.
"""

import numpy as np

from keras_brnpa._checks import check_positive_int
from keras_brnpa._checks import invalid

#: Bootstrap resamples of the intervals.
N_RESAMPLES = 1000


def _values(name, values):
    try:
        values = np.asarray(values, "float64")
    except (TypeError, ValueError) as error:
        raise invalid(name, type(values).__name__, "a 1-D array of numbers") from error
    if values.ndim != 1:
        raise invalid(name, f"<array of shape {values.shape}>", "a 1-D array of numbers")
    return values


def _check_confidence(confidence):
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not (
        0 < confidence < 1
    ):
        raise invalid("confidence", confidence, "a number in (0, 1)")
    return float(confidence)


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise invalid("seed", seed, "an int >= 0")
    return int(seed)


def bootstrap_means(values, seed=0, n_resamples=N_RESAMPLES):
    """The means of ``n_resamples`` bootstrap resamples of ``values``.

    Resample ``i`` draws ``len(values)`` indices with replacement, row ``i``
    of ``np.random.default_rng(seed).integers(0, n, (n_resamples, n))``
    (drawn in blocks to bound the memory; the stream is the same).

    Args:
        values: 1-D array of finite numbers.
        seed: int >= 0.
        n_resamples: int >= 1.

    Returns:
        ``(n_resamples,)`` float64 array (empty values: all NaN).

    Example:

    >>> import numpy as np, keras_brnpa
    >>> keras_brnpa.evaluation.bootstrap_means(np.ones(5), n_resamples=3).tolist()
    [1.0, 1.0, 1.0]
    """
    values = _values("values", values)
    seed = _check_seed(seed)
    n_resamples = check_positive_int("n_resamples", n_resamples)
    n = values.size
    if n == 0:
        return np.full(n_resamples, np.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    block = max(1, 2**20 // n)  # at most ~1M indices at a time
    for start in range(0, n_resamples, block):
        stop = min(n_resamples, start + block)
        means[start:stop] = values[rng.integers(0, n, (stop - start, n))].mean(axis=1)
    return means


def bootstrap_ci(values, confidence=0.95, seed=0, n_resamples=N_RESAMPLES):
    """Percentile bootstrap interval of the mean of ``values``, over images.

    The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
    (``np.quantile``, linear) of the means of ``bootstrap_means``. Seeded:
    the same values and seed give the same interval. Non-finite values are
    left out.

    Args:
        values: 1-D array, one value per image.
        confidence: in (0, 1); 0.95 gives the 95 % interval.
        seed: int >= 0, seed of the resampling.
        n_resamples: number of resamples.

    Returns:
        ``[low, high]`` floats (``[nan, nan]`` without a finite value).

    Example:

    >>> import numpy as np, keras_brnpa
    >>> low, high = keras_brnpa.evaluation.bootstrap_ci(np.arange(100.0))
    >>> bool(low < 49.5 < high), bool(high - low < 15)
    (True, True)
    """
    values = _values("values", values)
    confidence = _check_confidence(confidence)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [float("nan"), float("nan")]
    means = bootstrap_means(values, seed, n_resamples)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return [float(low), float(high)]


def _pairs(a, b):
    a, b = _values("a", a), _values("b", b)
    if a.shape != b.shape:
        raise invalid(
            "b", f"<array of shape {b.shape}>", f"as many values as a ({a.size}), one per image"
        )
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def paired_test(a, b, confidence=0.95, seed=0, n_resamples=N_RESAMPLES):
    """Compare two explanations scored on the same images, image by image.

    The mean of the per-image differences ``a - b``, its bootstrap interval
    (``bootstrap_ci`` of the differences) and the two-sided Wilcoxon
    signed-rank test of ``scipy.stats.wilcoxon(a, b)`` (its defaults: zero
    differences dropped, exact p-value for small samples). When every
    difference is 0 the p-value is 1.0 (SciPy would give NaN with a
    warning); with no pair it is NaN.

    Args:
        a: 1-D array, one value per image (e.g. DAUC of explanation A).
        b: 1-D array of the same images' values for explanation B.
        confidence: level of the interval.
        seed: seed of the bootstrap.
        n_resamples: bootstrap resamples.

    Returns:
        dict ``{"difference": mean(a - b), "ci95": [low, high],
        "p_value": float, "test": "wilcoxon signed-rank (paired)", "n":
        pairs}``.

    Example:

    >>> import numpy as np, keras_brnpa
    >>> result = keras_brnpa.evaluation.paired_test(
    ...     np.arange(10.0), np.arange(10.0) - 1)
    >>> result["difference"], result["p_value"] < 0.01
    (1.0, True)
    """
    from scipy import stats

    a, b = _pairs(a, b)
    differences = a - b
    n = int(differences.size)
    if n == 0:
        p_value = float("nan")
    elif not np.any(differences):
        p_value = 1.0
    else:
        p_value = float(stats.wilcoxon(a, b).pvalue)
    return {
        "difference": float(differences.mean()) if n else float("nan"),
        "ci95": bootstrap_ci(differences, confidence, seed, n_resamples),
        "p_value": p_value,
        "test": "wilcoxon signed-rank (paired)",
        "n": n,
    }


def welch_test(a, b, confidence=0.95):
    """Compare two independent samples (e.g. two models on different images).

    Welch's t-test (``scipy.stats.ttest_ind(a, b, equal_var=False)``, the
    test the BR-NPA authors used to compare models), with the difference of
    the means and its Welch confidence interval. For explanations of the
    same images prefer ``paired_test``: it uses the pairing.

    Args:
        a: 1-D array of values (non-finite ones left out).
        b: 1-D array of values, any length.
        confidence: level of the interval.

    Returns:
        dict ``{"difference": mean(a) - mean(b), "ci95": [low, high],
        "p_value": float, "test": "welch t-test", "n": [len a, len b]}``
        (NaN where a sample has fewer than 2 values).

    Example:

    >>> import numpy as np, keras_brnpa
    >>> result = keras_brnpa.evaluation.welch_test([1.0, 2.0, 3.0], [2.0, 3.0, 4.0, 5.0])
    >>> result["difference"], round(result["p_value"], 3)
    (-1.5, 0.144)
    """
    from scipy import stats

    confidence = _check_confidence(confidence)
    a, b = _values("a", a), _values("b", b)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n = [int(a.size), int(b.size)]
    if min(n) < 2:
        nan = float("nan")
        difference = float(a.mean() - b.mean()) if min(n) else nan
        return {"difference": difference, "ci95": [nan, nan], "p_value": nan,
                "test": "welch t-test", "n": n}
    result = stats.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(confidence)
    p_value = float(result.pvalue)
    return {"difference": float(a.mean() - b.mean()), "ci95": [float(low), float(high)],
            "p_value": p_value, "test": "welch t-test", "n": n}
