"""How sure a score is: bootstrap intervals over clips, paired permutation tests between two sets
of outputs on the same clips, and Holm's adjustment for a family of tests.

Generic over the metric: a kernel ``f(targets, outputs) -> float`` (``Task.kernels``) and the
groups of clips resampled together (``Task.strata``: one per class for a stratified bootstrap).

- Intervals: ``scipy.stats.bootstrap`` (percentile) over clips, the groups passed to scipy as one
  sample each, so every resample keeps each group's size.
- Paired comparisons: the difference of a metric between two setups on the same clips; its
  interval from the clips resampled together (grouped as above); a two-sided p-value from
  ``scipy.stats.permutation_test`` swapping the two setups' outputs clip by clip.
- ``holm``: Holm's step-down adjusted p-values, which control the family-wise error rate.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_BOOTSTRAP = 2000
N_PERMUTATIONS = 2000

Kernel = Callable[[np.ndarray, np.ndarray], float]


def _bootstrap(groups: list[np.ndarray], statistic: Callable[[np.ndarray], float], *, seed: int,
               n_resamples: int, confidence: float) -> tuple[float, float]:
    with warnings.catch_warnings():
        # A split so small that every resample scores the same: the interval is that one score.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(groups, lambda *idx: statistic(np.concatenate(idx)), vectorized=False, paired=False,
                                 n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                                 rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def interval(kernel: Kernel, y: np.ndarray, outputs: np.ndarray, *, groups: list[np.ndarray], seed: int = 0,
             n_resamples: int = N_BOOTSTRAP, confidence: float = CONFIDENCE) -> dict:
    """``{"value", "low", "high"}``: ``kernel`` on all clips and its bootstrap interval.

    Parameters
    ----------
    kernel : callable
        ``f(targets, outputs) -> float``.
    y : np.ndarray [shape=(N,) or (N, K)]
        Targets of the clips.
    outputs : np.ndarray [shape=(N, C)]
        Outputs of the clips.
    groups : list of int np.ndarray
        Clip indices resampled together; together, every clip once.
    seed : int
    n_resamples : int
    confidence : float in (0, 1)
    """
    low, high = _bootstrap(groups, lambda i: kernel(y[i], outputs[i]), seed=seed, n_resamples=n_resamples,
                           confidence=confidence)
    return {"value": kernel(y, outputs), "low": low, "high": high}


def paired(kernel: Kernel, y: np.ndarray, a: np.ndarray, b: np.ndarray, *, groups: list[np.ndarray], seed: int = 0,
           n_resamples: int = N_BOOTSTRAP, n_permutations: int = N_PERMUTATIONS,
           confidence: float = CONFIDENCE) -> dict:
    """``{"difference", "low", "high", "p"}`` of kernel(a) - kernel(b) on the same clips (``y``):
    the difference, its bootstrap interval, and the two-sided p-value of a paired permutation test."""
    low, high = _bootstrap(groups, lambda i: kernel(y[i], a[i]) - kernel(y[i], b[i]), seed=seed,
                           n_resamples=n_resamples, confidence=confidence)
    both, n = np.concatenate([a, b]), len(y)

    def difference(x, z):  # x[i] (z[i]): which setup's output of clip i counts as a's (b's)
        return kernel(y, both[x]) - kernel(y, both[z])

    test = stats.permutation_test((np.arange(n), np.arange(n) + n), difference, permutation_type="samples",
                                  vectorized=False, n_resamples=n_permutations, alternative="two-sided",
                                  rng=np.random.default_rng(seed))
    return {"difference": kernel(y, a) - kernel(y, b), "low": low, "high": high, "p": float(test.pvalue)}


def gap_change(kernel: Kernel, y: np.ndarray, first: tuple[np.ndarray, np.ndarray], last: tuple[np.ndarray, np.ndarray],
               *, groups: list[np.ndarray], seed: int = 0, n_resamples: int = N_BOOTSTRAP,
               n_permutations: int = N_PERMUTATIONS, confidence: float = CONFIDENCE) -> dict:
    """How a paired gap moves between two conditions on the same clips: ``first`` and ``last`` are
    the outputs (a, b) of two setups under each condition, and the change is
    ``[kernel(a_last) - kernel(b_last)] - [kernel(a_first) - kernel(b_first)]`` (a difference of
    paired differences). ``{"gap_first", "gap_last", "difference", "low", "high", "p"}``: both gaps, the
    change, its bootstrap interval, and the two-sided p-value of a permutation test that exchanges,
    clip by clip, which condition's pair of outputs counts as first."""
    (a1, b1), (a2, b2) = first, last

    def gap(a, b, i):
        return kernel(y[i], a[i]) - kernel(y[i], b[i])

    low, high = _bootstrap(groups, lambda i: gap(a2, b2, i) - gap(a1, b1, i), seed=seed, n_resamples=n_resamples,
                           confidence=confidence)
    a, b, n, every = np.concatenate([a1, a2]), np.concatenate([b1, b2]), len(y), np.arange(len(y))

    def change(x, z):  # x[i] (z[i]): which condition's outputs of clip i count as first (last)
        return (kernel(y, a[z]) - kernel(y, b[z])) - (kernel(y, a[x]) - kernel(y, b[x]))

    test = stats.permutation_test((every, every + n), change, permutation_type="samples", vectorized=False,
                                  n_resamples=n_permutations, alternative="two-sided", rng=np.random.default_rng(seed))
    first_gap, last_gap = gap(a1, b1, every), gap(a2, b2, every)
    return {"gap_first": first_gap, "gap_last": last_gap, "difference": last_gap - first_gap, "low": low,
            "high": high, "p": float(test.pvalue)}


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values of a family of tests, in the given order.

    The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``: rejecting
    where the adjusted value is below alpha keeps the chance of any false rejection in the family
    at most alpha (``statsmodels.stats.multitest.multipletests(method="holm")``).
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()
