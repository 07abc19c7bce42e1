"""Single-label classification: one class per clip; class-weighted cross-entropy; macro F1,
accuracy and the confusion matrix."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression

from mirformer.datasets.base import Track
from mirformer.errors import ConfigError
from mirformer.tasks.base import Task, metric_of, register_task


def class_weights(labels: list[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse class frequency divided by the number of classes (the thesis; sklearn's "balanced").

    ``w_c = N / (n_classes * count_c)``; a class absent from ``labels`` gets weight 0.
    Returns float32 [shape=(n_classes,)].
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.where(counts > 0, counts.sum() / (n_classes * counts), 0.0).astype(np.float32)


def predictions(outputs: np.ndarray) -> np.ndarray:
    """Predicted classes: the argmax of (N, C) outputs, or the (N,) class indices themselves."""
    return outputs.argmax(1) if outputs.ndim == 2 else outputs


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (C, C), rows true class, columns predicted."""
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def macro_f1(y: np.ndarray, outputs: np.ndarray) -> float:
    """Macro F1 of the predictions over the classes present in ``y`` or the predictions (as
    ``sklearn.metrics.f1_score(average="macro")``)."""
    pred = predictions(outputs)
    k = int(max(y.max(initial=0), pred.max(initial=0))) + 1
    counts = confusion(y, pred, k)
    tp, support, predicted = np.diag(counts), counts.sum(1), counts.sum(0)
    present = (support + predicted) > 0
    return float(np.mean(2 * tp[present] / (support[present] + predicted[present])))


def _macro_f1_rows(y: np.ndarray, outputs: np.ndarray, y_rows: np.ndarray, output_rows: np.ndarray) -> np.ndarray:
    """``macro_f1(y[y_rows[r]], outputs[output_rows[r]])`` for every row ``r`` of the index arrays
    [shape=(R, N)] at once [shape=(R,)]: one ``bincount`` gives every row's confusion counts, so
    the 2,000 resamples of an interval cost about as much as a few dozen single calls."""
    pred = predictions(outputs)
    k = int(max(y.max(initial=0), pred.max(initial=0))) + 1
    t, p = y[y_rows], pred[output_rows]
    rows = len(t)
    counts = np.bincount(((np.arange(rows)[:, None] * k + t) * k + p).ravel(), minlength=rows * k * k)
    counts = counts.reshape(rows, k, k)
    tp, support, predicted = counts[:, np.arange(k), np.arange(k)], counts.sum(2), counts.sum(1)
    present = (support + predicted) > 0  # classes in neither a row's targets nor its predictions drop out
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(present.shape), where=present)
    return f1.sum(1) / present.sum(1)


macro_f1.rows = _macro_f1_rows


def accuracy(y: np.ndarray, outputs: np.ndarray) -> float:
    return float(np.mean(predictions(outputs) == y))


def _accuracy_rows(y: np.ndarray, outputs: np.ndarray, y_rows: np.ndarray, output_rows: np.ndarray) -> np.ndarray:
    """``accuracy`` on every row of the index arrays [shape=(R, N)] at once [shape=(R,)]."""
    return np.mean(predictions(outputs)[output_rows] == y[y_rows], axis=1)


accuracy.rows = _accuracy_rows


def weighted_cross_entropy(logits: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """``sum_i w[y_i] (-log softmax(logits_i)[y_i]) / sum_i w[y_i]`` in nats (``F.cross_entropy(weight=w)``);
    NaN when every clip's class has weight 0 (none of them occurs in the training split)."""
    logits = logits.astype(np.float64)
    nll = logsumexp(logits, axis=1) - logits[np.arange(len(y)), y]
    w = weights.astype(np.float64)[y]
    with np.errstate(invalid="ignore"):
        return float((w * nll).sum() / w.sum())


def chance_macro_f1(priors) -> float:
    """Expected macro F1 of guessing uniformly at random among K classes.

    A uniform guess has recall ``1/K`` for every class and precision ``p_k`` (the class's share
    of the data), so ``F1_k = 2 p_k / (K p_k + 1)``; the result is the mean over classes
    (``1/K`` when classes are balanced). It treats the expected precision as the precision of
    the expected counts, hence approximate for small splits.

    Parameters
    ----------
    priors : array-like [shape=(K,)]
        Class counts or shares (normalised here).

    Returns
    -------
    f1 : float in [0, 1]
    """
    p = np.asarray(priors, dtype=float)
    p = p / p.sum()
    return float(np.mean(2 * p / (len(p) * p + 1)))


def test_priors(results: dict) -> np.ndarray:
    """Class counts of the test split (confusion row sums of the first setup that has one)."""
    for setup in results["setups"].values():
        cm = metric_of(setup, "test", "confusion")
        if cm is not None and np.sum(cm) > 0:
            return np.asarray(cm).sum(axis=1)
    return np.ones(len(results["classes"]))


@register_task
class Classification(Task):
    name, monitor, outputs_are = "classification", "macro_f1", "classes"
    kernels = {"macro_f1": macro_f1, "accuracy": accuracy}
    columns = {"F1 train": ("train", "macro_f1", None), "F1 test": ("test", "macro_f1", None),
               "loss train": ("train", "loss", None), "loss test": ("test", "loss", None),
               "accuracy test": ("test", "accuracy", None)}
    # Inverse regularisation strengths of the baseline's logistic regression, smallest first:
    # ties go to the more regularised model.
    strengths, strength_name = (0.01, 0.1, 1.0, 10.0), "C"

    def __init__(self, names: list[str]):
        super().__init__(names)
        self.weights = np.ones(self.n_outputs, np.float32)

    @staticmethod
    def label_keys(track: Track) -> list[str]:
        return [] if track.label is None else [track.label]

    def fit(self, train: list[Track]) -> None:
        self.weights = class_weights([self.target(t) for t in train], self.n_outputs)

    def target(self, track: Track) -> int:
        if track.label not in self.index:
            raise ConfigError(f"track {track.id!r}: label {track.label!r} is not one of {self.names}")
        return self.index[track.label]

    def targets(self, tracks: list[Track]) -> np.ndarray:
        return np.array([self.target(t) for t in tracks], dtype=np.int64)

    def loss(self, outputs, y):
        return F.cross_entropy(outputs.float(), y, weight=torch.as_tensor(self.weights, device=outputs.device))

    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict:
        """``loss`` (class-weighted cross-entropy in nats, the training loss, so train and test
        losses compare), ``macro_f1``, ``accuracy``, ``confusion`` (C x C list, rows true) and ``n``."""
        y = np.asarray(y, np.int64)
        return {"loss": weighted_cross_entropy(outputs, y, self.weights), "macro_f1": macro_f1(y, outputs),
                "accuracy": accuracy(y, outputs),
                "confusion": confusion(y, predictions(outputs), self.n_outputs).tolist(), "n": int(len(y))}

    def strata(self, y: np.ndarray) -> list[np.ndarray]:
        """One group per class, so every resample keeps the split's class counts (a stratified
        bootstrap); classes with a single clip are pooled, as scipy needs two per sample."""
        groups = [np.flatnonzero(y == c) for c in np.unique(y)]
        big, single = [g for g in groups if len(g) > 1], np.concatenate([g for g in groups if len(g) == 1] or [[]])
        if len(single) == 1 and big:  # one lone clip joins the smallest class
            i = int(np.argmin([len(g) for g in big]))
            big[i] = np.concatenate([big[i], single])
        elif len(single):
            big.append(single)
        return [g.astype(np.int64) for g in big]

    @staticmethod
    def chance_line(results: dict) -> str:
        k = len(results["classes"])
        return (f"Chance (uniform random guessing over K = {k} classes): macro F1 ≈ "
                f"{chance_macro_f1(test_priors(results)):.2f} (mean of 2p/(Kp+1) over test class shares p), "
                f"accuracy {1 / k:.2f} (1/K), loss {math.log(k):.2f} (ln K).")

    @staticmethod
    def chance(results: dict) -> float:
        return chance_macro_f1(test_priors(results))

    def linear_model(self, strength, *, seed):
        return LogisticRegression(C=strength, max_iter=5000, class_weight="balanced", random_state=seed)

    def linear_outputs(self, model, X):
        """Log-probabilities per class (a class missing from the training split: the float32 minimum)."""
        logp = np.full((len(X), self.n_outputs), -np.inf)
        logp[:, model.classes_] = model.predict_log_proba(X)
        return np.maximum(logp, np.finfo(np.float32).min)
