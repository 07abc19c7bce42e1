"""Multi-label tagging: any number of tags per clip; binary cross-entropy; macro ROC-AUC and PR-AUC
(average precision) over the tags that can be scored, plus per-tag scores."""

from __future__ import annotations

import warnings

import numpy as np
import torch.nn.functional as F
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.multiclass import OneVsRestClassifier

from mirformer.datasets.base import Track
from mirformer.tasks.base import Task, metric_of, register_task


def scorable(y: np.ndarray) -> np.ndarray:
    """Tags (columns of (N, T) 0/1 ``y``) with both a positive and a negative clip: a score is
    undefined otherwise, and ``sklearn.metrics.roc_auc_score`` refuses such a tag."""
    positives = y.sum(0)
    return (positives > 0) & (positives < len(y))


def roc_aucs(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC of every column by the Mann-Whitney U statistic (ties averaged); columns need a
    positive and a negative clip."""
    y = y.astype(bool)
    ranks = stats.rankdata(scores, axis=0)
    pos = y.sum(0)
    u = (ranks * y).sum(0) - pos * (pos + 1) / 2
    return u / (pos * (len(y) - pos))


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Macro ROC-AUC over the tags that can be scored (NaN when none can)."""
    keep = scorable(y)
    return float(np.mean(roc_aucs(y[:, keep], scores[:, keep]))) if keep.any() else float("nan")


def pr_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Macro average precision over the tags that can be scored (NaN when none can)."""
    keep = np.flatnonzero(scorable(y))
    if not len(keep):
        return float("nan")
    return float(np.mean([average_precision_score(y[:, j], scores[:, j]) for j in keep]))


def binary_cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean over clips and tags of ``-y log sigmoid(x) - (1 - y) log(1 - sigmoid(x))``, computed stably."""
    x = logits.astype(np.float64)
    return float(np.mean(np.logaddexp(0.0, x) - y * x))


def test_positive_rates(results: dict) -> list[float]:
    """Positive rate of each scored test tag (per-tag counts of the first setup that has them)."""
    for setup in results["setups"].values():
        per_tag, n = metric_of(setup, "test", "per_tag"), metric_of(setup, "test", "n")
        if per_tag and n:
            return [t["positives"] / n for t in per_tag.values() if t["roc_auc"] is not None]
    return []


@register_task
class Tagging(Task):
    name, monitor, outputs_are = "tagging", "roc_auc", "tags"
    kernels = {"roc_auc": roc_auc, "pr_auc": pr_auc}
    columns = {"ROC-AUC train": ("train", "roc_auc", None), "ROC-AUC test": ("test", "roc_auc", None),
               "PR-AUC test": ("test", "pr_auc", None), "loss train": ("train", "loss", None),
               "loss test": ("test", "loss", None)}
    strengths, strength_name = (0.01, 0.1, 1.0, 10.0), "C"

    @staticmethod
    def label_keys(track: Track) -> list[str]:
        return list(track.labels or ())

    def target(self, track: Track) -> np.ndarray:
        y = np.zeros(self.n_outputs, np.float32)
        # Tags outside ``names`` (beyond a top-50 cut) are ignored, as the published setups do.
        y[[self.index[tag] for tag in track.labels or () if tag in self.index]] = 1.0
        return y

    def targets(self, tracks: list[Track]) -> np.ndarray:
        return np.array([self.target(t) for t in tracks], dtype=np.float32).reshape(len(tracks), self.n_outputs)

    def loss(self, outputs, y):
        return F.binary_cross_entropy_with_logits(outputs.float(), y.float())

    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict:
        """``loss`` (binary cross-entropy), ``roc_auc`` and ``pr_auc`` (means over the tags with both a
        positive and a negative clip), ``per_tag`` ({tag: {"roc_auc", "pr_auc", "positives"}}, scores
        None where undefined), ``tags_scored`` and ``n``."""
        y = np.asarray(y)
        keep = scorable(y)
        aucs = dict(zip(np.flatnonzero(keep), roc_aucs(y[:, keep], outputs[:, keep]))) if keep.any() else {}
        per_tag = {}
        for j, name in enumerate(self.names):
            scored = j in aucs
            per_tag[name] = {"roc_auc": float(aucs[j]) if scored else None,
                             "pr_auc": float(average_precision_score(y[:, j], outputs[:, j])) if scored else None,
                             "positives": int(y[:, j].sum())}
        scored = [v for v in per_tag.values() if v["roc_auc"] is not None]
        return {"loss": binary_cross_entropy(outputs, y),
                "roc_auc": float(np.mean([v["roc_auc"] for v in scored])) if scored else float("nan"),
                "pr_auc": float(np.mean([v["pr_auc"] for v in scored])) if scored else float("nan"),
                "per_tag": per_tag, "tags_scored": len(scored), "n": int(len(y))}

    def describe(self, track: Track) -> str:
        return ";".join(track.labels or ())

    def describe_output(self, output: np.ndarray) -> str:
        return ";".join(n for n, v in zip(self.names, output.tolist()) if v > 0)  # sigmoid > 0.5

    @staticmethod
    def chance_line(results: dict) -> str:
        rates = test_positive_rates(results)
        pr = f"{np.mean(rates):.2f} (mean positive rate of the scored test tags)" if rates else "n/a"
        return f"Chance (random scores over {len(results['classes'])} tags): ROC-AUC 0.50, PR-AUC {pr}."

    @staticmethod
    def chance(results: dict) -> float:
        return 0.5

    def linear_model(self, strength, *, seed):
        return _QuietOneVsRest(LogisticRegression(C=strength, max_iter=5000, random_state=seed))

    def linear_outputs(self, model, X):
        """Decision values per tag (logits); scikit-learn returns one column as a vector."""
        return np.asarray(model.decision_function(X)).reshape(len(X), self.n_outputs)


class _QuietOneVsRest(OneVsRestClassifier):
    """A tag without positives in the training split gets a constant predictor, scored as
    undefined; scikit-learn's warning about it says nothing the report does not."""

    def fit(self, X, y, **params):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not present in all training examples.*")
            return super().fit(X, y, **params)
