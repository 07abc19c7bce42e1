"""How sure a score is: bootstrap intervals over clips, paired permutation tests between two sets
of outputs on the same clips, and Holm's adjustment for a family of tests.

Generic over the metric: a kernel ``f(targets, outputs) -> float`` (``Task.kernels``) and the
groups of clips resampled together (``Task.strata``: one per class for a stratified bootstrap).
A kernel with a ``rows`` form (``f.rows(targets, outputs, target_rows, output_rows)``, its value
on many index rows at once) is given every resample in one call (scipy's ``vectorized=True``);
the resamples drawn are the same either way.

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


def _on_rows(kernel: Kernel, y: np.ndarray, outputs: np.ndarray, y_rows: np.ndarray,
             output_rows: np.ndarray) -> np.ndarray | float:
    """``kernel(y[y_rows], outputs[output_rows])`` for index rows [shape=(..., N)]: through
    ``kernel.rows`` where it has one (then rows may be stacked, [shape=(R, N)] -> (R,)), else one call."""
    rows = getattr(kernel, "rows", None)
    if rows is None:
        return kernel(y[y_rows], outputs[output_rows])
    if np.ndim(output_rows) == 1:
        return rows(y, outputs, y_rows[None], output_rows[None])[0]
    return rows(y, outputs, np.broadcast_to(y_rows, output_rows.shape), output_rows)


def _vectorized(*kernels: Kernel) -> bool:
    return all(hasattr(k, "rows") for k in kernels)


def _bootstrap(groups: list[np.ndarray], statistic: Callable[[np.ndarray], float], *, vectorized: bool, seed: int,
               n_resamples: int, confidence: float) -> tuple[float, float]:
    """Percentile interval of ``statistic(clip indices)``; ``vectorized``: it takes index rows (R, N)."""
    with warnings.catch_warnings():
        # A split so small that every resample scores the same: the interval is that one score.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(groups, lambda *idx, axis=-1: statistic(np.concatenate(idx, axis=-1)),
                                 vectorized=vectorized, paired=False, n_resamples=n_resamples,
                                 confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _permutation_p(n: int, statistic: Callable[[np.ndarray, np.ndarray], float], *, vectorized: bool, seed: int,
                   n_permutations: int) -> float:
    """Two-sided p of a paired permutation test: ``statistic(x, z)`` with x[i] (z[i]) = i or i + n,
    which of two conditions' outputs of clip i counts as the first (second)."""
    test = stats.permutation_test((np.arange(n), np.arange(n) + n), lambda x, z, axis=-1: statistic(x, z),
                                  permutation_type="samples", vectorized=vectorized, n_resamples=n_permutations,
                                  alternative="two-sided", rng=np.random.default_rng(seed))
    return float(test.pvalue)


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
    low, high = _bootstrap(groups, lambda i: _on_rows(kernel, y, outputs, i, i), vectorized=_vectorized(kernel),
                           seed=seed, n_resamples=n_resamples, confidence=confidence)
    return {"value": kernel(y, outputs), "low": low, "high": high}


def paired(kernel: Kernel, y: np.ndarray, a: np.ndarray, b: np.ndarray, *, groups: list[np.ndarray], seed: int = 0,
           n_resamples: int = N_BOOTSTRAP, n_permutations: int = N_PERMUTATIONS,
           confidence: float = CONFIDENCE) -> dict:
    """``{"difference", "low", "high", "p"}`` of kernel(a) - kernel(b) on the same clips (``y``):
    the difference, its bootstrap interval, and the two-sided p-value of a paired permutation test."""
    vectorized = _vectorized(kernel)
    low, high = _bootstrap(groups, lambda i: _on_rows(kernel, y, a, i, i) - _on_rows(kernel, y, b, i, i),
                           vectorized=vectorized, seed=seed, n_resamples=n_resamples, confidence=confidence)
    both, every = np.concatenate([a, b]), np.arange(len(y))

    def difference(x, z):  # x[i] (z[i]): which setup's output of clip i counts as a's (b's)
        return _on_rows(kernel, y, both, every, x) - _on_rows(kernel, y, both, every, z)

    p = _permutation_p(len(y), difference, vectorized=vectorized, seed=seed, n_permutations=n_permutations)
    return {"difference": kernel(y, a) - kernel(y, b), "low": low, "high": high, "p": p}


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
    vectorized = _vectorized(kernel)

    def gap(a, b, i, j):  # the setups' difference on target rows i, output rows j
        return _on_rows(kernel, y, a, i, j) - _on_rows(kernel, y, b, i, j)

    low, high = _bootstrap(groups, lambda i: gap(a2, b2, i, i) - gap(a1, b1, i, i), vectorized=vectorized,
                           seed=seed, n_resamples=n_resamples, confidence=confidence)
    a, b, every = np.concatenate([a1, a2]), np.concatenate([b1, b2]), np.arange(len(y))

    def change(x, z):  # x[i] (z[i]): which condition's outputs of clip i count as first (last)
        return gap(a, b, every, z) - gap(a, b, every, x)

    p = _permutation_p(len(y), change, vectorized=vectorized, seed=seed, n_permutations=n_permutations)
    first_gap, last_gap = gap(a1, b1, every, every), gap(a2, b2, every, every)
    return {"gap_first": first_gap, "gap_last": last_gap, "difference": last_gap - first_gap, "low": low,
            "high": high, "p": p}


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
