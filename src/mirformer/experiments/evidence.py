"""How sure a comparison is: 95% bootstrap intervals over the test clips for every setup's
metrics, and paired tests between setups on the same clips.

Everything is computed from the per-clip outputs each setup saves (``outputs.npz`` beside its
``predictions.csv``), so it can be recomputed from a run folder alone (``evidence_of_run``).

- Intervals: ``scipy.stats.bootstrap`` (percentile) over clips. For classification each class's
  clips are resampled on their own (every resample keeps the test split's class counts: a
  stratified bootstrap), passed to scipy as one sample per class.
- Paired comparisons: the difference of a metric between two setups on the same clips; its
  interval from the clips resampled together (stratified as above); a two-sided p-value from
  ``scipy.stats.permutation_test`` swapping the two setups' outputs clip by clip.

The metrics are those of ``mirformer.tasks`` (macro F1 over the classes present in targets or
predictions, accuracy; macro ROC-AUC and PR-AUC over the tags with both a positive and a negative
clip; mean R2 over targets, MSE), written in numpy to be fast enough for thousands of resamples;
the tests check them against scikit-learn.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score

from mirformer.atomic import atomic_path

CONFIDENCE = 0.95
N_BOOTSTRAP = 2000
N_PERMUTATIONS = 2000
OUTPUTS = "outputs.npz"


# ---- metrics of (targets, outputs) -------------------------------------------------------------
def macro_f1(y: np.ndarray, logits: np.ndarray) -> float:
    """Macro F1 of argmax predictions over the classes present in ``y`` or the predictions."""
    pred = logits.argmax(1) if logits.ndim == 2 else logits
    k = int(max(y.max(initial=0), pred.max(initial=0))) + 1
    confusion = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp, support, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    present = (support + predicted) > 0
    return float(np.mean(2 * tp[present] / (support[present] + predicted[present])))


def accuracy(y: np.ndarray, logits: np.ndarray) -> float:
    pred = logits.argmax(1) if logits.ndim == 2 else logits
    return float(np.mean(pred == y))


def _scorable(y: np.ndarray) -> np.ndarray:
    positives = y.sum(0)
    return (positives > 0) & (positives < len(y))


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Macro ROC-AUC over the tags with a positive and a negative clip (Mann-Whitney U, ties averaged)."""
    keep = _scorable(y)
    if not keep.any():
        return float("nan")
    y, scores = y[:, keep].astype(bool), scores[:, keep]
    ranks = stats.rankdata(scores, axis=0)
    pos = y.sum(0)
    u = (ranks * y).sum(0) - pos * (pos + 1) / 2
    return float(np.mean(u / (pos * (len(y) - pos))))


def pr_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Macro average precision over the tags with a positive and a negative clip."""
    keep = np.flatnonzero(_scorable(y))
    if not len(keep):
        return float("nan")
    return float(np.mean([average_precision_score(y[:, j], scores[:, j]) for j in keep]))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean over targets of 1 - SS_res / SS_tot; a constant target scores 1 if predicted exactly,
    else 0 (scikit-learn's ``force_finite``), as a resample of a small split may hold one."""
    res = ((y - pred) ** 2).sum(0)
    tot = ((y - y.mean(0)) ** 2).sum(0)
    per = np.where(tot > 0, 1 - res / np.where(tot > 0, tot, 1), np.where(res == 0, 1.0, 0.0))
    return float(np.mean(per))


def mse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean((y - pred) ** 2))


METRICS: dict[str, dict[str, Callable[[np.ndarray, np.ndarray], float]]] = {
    "classification": {"macro_f1": macro_f1, "accuracy": accuracy},
    "tagging": {"roc_auc": roc_auc, "pr_auc": pr_auc},
    "regression": {"r2": r2, "mse": mse},
}


# ---- intervals and paired tests ----------------------------------------------------------------
def strata(task: str, y: np.ndarray) -> list[np.ndarray]:
    """Clip indices resampled together: one group per class for classification (classes with a
    single clip pooled, scipy needs two per sample), else all clips."""
    if task != "classification":
        return [np.arange(len(y))]
    groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    big, single = [g for g in groups if len(g) > 1], np.concatenate([g for g in groups if len(g) == 1] or [[]])
    if len(single) == 1 and big:  # one lone clip joins the smallest class
        i = int(np.argmin([len(g) for g in big]))
        big[i] = np.concatenate([big[i], single])
    elif len(single):
        big.append(single)
    return [g.astype(np.int64) for g in big]


def _bootstrap(groups: list[np.ndarray], statistic: Callable[[np.ndarray], float], *, seed: int,
               n_resamples: int, confidence: float) -> tuple[float, float]:
    with warnings.catch_warnings():
        # A split so small that every resample scores the same: the interval is that one score.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(groups, lambda *idx: statistic(np.concatenate(idx)), vectorized=False, paired=False,
                                 n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                                 rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def interval(task: str, metric: str, y: np.ndarray, outputs: np.ndarray, *, seed: int = 0,
             n_resamples: int = N_BOOTSTRAP, confidence: float = CONFIDENCE) -> dict:
    """``{"value", "low", "high"}``: the metric on all clips and its bootstrap interval."""
    f = METRICS[task][metric]
    low, high = _bootstrap(strata(task, y), lambda i: f(y[i], outputs[i]), seed=seed, n_resamples=n_resamples,
                           confidence=confidence)
    return {"value": f(y, outputs), "low": low, "high": high}


def paired(task: str, metric: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, *, seed: int = 0,
           n_resamples: int = N_BOOTSTRAP, n_permutations: int = N_PERMUTATIONS,
           confidence: float = CONFIDENCE) -> dict:
    """``{"difference", "low", "high", "p"}`` of metric(a) - metric(b) on the same clips."""
    f = METRICS[task][metric]
    low, high = _bootstrap(strata(task, y), lambda i: f(y[i], a[i]) - f(y[i], b[i]), seed=seed,
                           n_resamples=n_resamples, confidence=confidence)
    both, n = np.concatenate([a, b]), len(y)

    def difference(x, z):  # x[i] (z[i]): which setup's output of clip i counts as a's (b's)
        return f(y, both[x]) - f(y, both[z])

    test = stats.permutation_test((np.arange(n), np.arange(n) + n), difference, permutation_type="samples",
                                  vectorized=False, n_resamples=n_permutations, alternative="two-sided",
                                  rng=np.random.default_rng(seed))
    return {"difference": f(y, a) - f(y, b), "low": low, "high": high, "p": float(test.pvalue)}


# ---- saved outputs -----------------------------------------------------------------------------
def save_outputs(path: Path, splits: dict[str, tuple[list[str], np.ndarray, np.ndarray]]) -> None:
    """Write ``{split: (track ids, targets, outputs)}`` as one ``.npz``, atomically."""
    arrays = {}
    for split, (ids, targets, outputs) in splits.items():
        arrays |= {f"{split}_ids": np.asarray(ids, dtype=str), f"{split}_targets": np.asarray(targets),
                   f"{split}_outputs": np.asarray(outputs, dtype=np.float32)}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_outputs(path: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track ids, targets, outputs) of one split of a saved ``outputs.npz``."""
    with np.load(path) as z:
        return z[f"{split}_ids"], z[f"{split}_targets"], z[f"{split}_outputs"]


# ---- a run's evidence --------------------------------------------------------------------------
BASELINE = "mfcc-linear"
MEL, TOKENS = ("mel",), ("vq-tokens", "vq-codebooks")


def _representation(results: dict, setup: dict) -> str | None:
    reps, key = results.get("representations", {}), setup.get("input")
    rep = reps.get(key) or reps.get(f"encoder:{key}") or {}
    return rep.get("name")


def questions(results: dict) -> list[tuple[str, str, str]]:
    """The paired comparisons a report answers, as (a, b, question): each setup against the
    baseline; each pretrained setup against its model from scratch; SpectroFormer (log-mel)
    against each token model in the same mode; every setup against the best one (by the test
    value of the monitored metric)."""
    setups, monitor = results["setups"], results["monitor"]
    neural = [n for n in setups if n != BASELINE]
    out = []
    if BASELINE in setups:
        out += [(n, BASELINE, "against the MFCC baseline") for n in neural]
    for n in neural:
        s = setups[n]
        if s.get("pretrained"):
            out += [(n, m, "does pretraining help?") for m in neural
                    if setups[m].get("model") == s.get("model") and not setups[m].get("pretrained")]
    for n in neural:
        s = setups[n]
        if s.get("model") == "spectroformer" and _representation(results, s) in MEL:
            out += [(n, m, "does the log-mel model beat the token models?") for m in neural
                    if _representation(results, setups[m]) in TOKENS and setups[m].get("pretrained") == s.get("pretrained")
                    and setups[m].get("strategy") == s.get("strategy")]
    scored = {n: setups[n]["splits"]["test"].get(monitor) for n in setups}
    scored = {n: v for n, v in scored.items() if v is not None and np.isfinite(v)}
    if scored:
        best = max(scored, key=scored.get)
        out += [(best, n, "is the best setup ahead of the others?") for n in setups if n != best]
    return out


def _aligned(a: tuple, b: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets and both setups' outputs on the test clips they share, in a's order."""
    (ids_a, y, out_a), (ids_b, _, out_b) = a, b
    where = {i: k for k, i in enumerate(ids_b)}
    keep = [k for k, i in enumerate(ids_a) if i in where]
    return y[keep], out_a[keep], out_b[[where[ids_a[k]] for k in keep]]


def evidence_of_run(results: dict, run_dir: Path, *, seed: int = 0, n_resamples: int = N_BOOTSTRAP,
                    n_permutations: int = N_PERMUTATIONS, progress: bool = False) -> dict:
    """Intervals of every test metric of every setup that saved its outputs, and the paired
    tests of ``questions`` on the monitored metric; from the run folder's ``outputs.npz`` files."""
    from tqdm.auto import tqdm

    task, monitor = results["task"], results["monitor"]
    loaded = {n: load_outputs(Path(run_dir) / s["outputs"]) for n, s in results["setups"].items() if s.get("outputs")}
    asked = [(a, b, q) for a, b, q in questions(results) if a in loaded and b in loaded]
    bar = tqdm(total=len(loaded) + len(asked), desc="confidence intervals", unit="setup", disable=not progress)
    intervals = {}
    for name, (_, y, outputs) in loaded.items():
        intervals[name] = {m: interval(task, m, y, outputs, seed=seed, n_resamples=n_resamples) for m in METRICS[task]}
        bar.update()
    tests = []
    for a, b, question in asked:
        y, out_a, out_b = _aligned(loaded[a], loaded[b])
        tests.append({"a": a, "b": b, "question": question, "metric": monitor, "n": int(len(y)),
                      **paired(task, monitor, y, out_a, out_b, seed=seed, n_resamples=n_resamples,
                               n_permutations=n_permutations)})
        bar.update()
    bar.close()
    return {"split": "test", "confidence": CONFIDENCE, "n_resamples": n_resamples, "n_permutations": n_permutations,
            "seed": seed, "method": "percentile bootstrap over clips (stratified by class for classification); "
                                    "paired permutation test, two-sided",
            "intervals": intervals, "paired": tests}
