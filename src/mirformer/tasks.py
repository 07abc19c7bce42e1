"""Downstream tasks: what a model predicts per clip, its training loss and its metrics.

- ``classification``: one class per clip; class-weighted cross-entropy; macro F1, accuracy,
  confusion matrix.
- ``tagging``: any number of tags per clip; binary cross-entropy; macro ROC-AUC and PR-AUC
  (average precision) plus per-tag scores.
- ``regression``: real targets (z-scored by the dataset); MSE; R2 per target and their mean.

Metrics come from torchmetrics (the same code scores validation during training); tests check
every one against scikit-learn. The task is chosen by the dataset (``Dataset.task``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional import r2_score
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
)

from mirformer.datasets.base import Track
from mirformer.errors import ConfigError


def class_weights(labels: list[int] | np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse class frequency divided by the number of classes (the thesis; sklearn's "balanced").

    ``w_c = N / (n_classes * count_c)``; a class absent from ``labels`` gets weight 0.
    Returns float32 [shape=(n_classes,)].
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    with np.errstate(divide="ignore"):
        w = np.where(counts > 0, counts.sum() / (n_classes * counts), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, *, n_classes: int,
                           weights: torch.Tensor | None = None) -> dict:
    """Loss, macro F1, accuracy and confusion matrix of clip-level predictions.

    Parameters
    ----------
    logits : Tensor [shape=(N, C)]
    targets : int Tensor [shape=(N,)]
    n_classes : int
    weights : Tensor [shape=(C,)] or None
        Class weights of the loss (the training loss, so train and test losses compare).

    Returns
    -------
    dict with ``loss`` (weighted cross-entropy), ``macro_f1`` (mean over the classes present in
    targets or predictions, as ``sklearn.metrics.f1_score(average="macro")``), ``accuracy``, ``confusion`` (C x C list,
    rows true, columns predicted) and ``n``.
    """
    logits, targets = logits.float(), targets.long()
    preds = logits.argmax(-1)
    return {
        "loss": float(F.cross_entropy(logits, targets, weight=None if weights is None else weights.to(logits.device))),
        "macro_f1": float(multiclass_f1_score(preds, targets, num_classes=n_classes, average="macro")),
        "accuracy": float(multiclass_accuracy(preds, targets, num_classes=n_classes, average="micro")),
        "confusion": multiclass_confusion_matrix(preds, targets, num_classes=n_classes).tolist(),
        "n": int(len(targets)),
    }


def tagging_metrics(logits: torch.Tensor, targets: torch.Tensor, *, names: list[str]) -> dict:
    """Loss, macro ROC-AUC, macro PR-AUC and per-tag scores of clip-level tag predictions.

    Parameters
    ----------
    logits : Tensor [shape=(N, T)]
    targets : 0/1 Tensor [shape=(N, T)]
    names : list of str [len=T]

    Returns
    -------
    dict with ``loss`` (binary cross-entropy, mean over clips and tags), ``roc_auc`` and
    ``pr_auc`` (means over the tags that have both a positive and a negative clip: a score is
    undefined otherwise, and ``sklearn.metrics.roc_auc_score`` refuses such a tag),
    ``per_tag`` ({tag: {"roc_auc", "pr_auc", "positives"}}; scores None where undefined),
    ``tags_scored`` and ``n``.
    """
    logits, targets = logits.float(), targets.float()
    per_tag, aucs, aps = {}, [], []
    positives = targets.sum(0)
    for j, name in enumerate(names):
        entry = {"roc_auc": None, "pr_auc": None, "positives": int(positives[j])}
        if 0 < positives[j] < len(targets):
            t = targets[:, j].long()
            entry["roc_auc"] = float(binary_auroc(logits[:, j], t))
            entry["pr_auc"] = float(binary_average_precision(logits[:, j], t))
            aucs.append(entry["roc_auc"])
            aps.append(entry["pr_auc"])
        per_tag[name] = entry
    return {
        "loss": float(F.binary_cross_entropy_with_logits(logits, targets)),
        "roc_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "pr_auc": float(np.mean(aps)) if aps else float("nan"),
        "per_tag": per_tag,
        "tags_scored": len(aucs),
        "n": int(len(targets)),
    }


def regression_metrics(preds: torch.Tensor, targets: torch.Tensor, *, names: list[str]) -> dict:
    """MSE and R2 per target of clip-level predictions (z-scored units).

    Parameters
    ----------
    preds, targets : Tensor [shape=(N, K)]
    names : list of str [len=K]

    Returns
    -------
    dict with ``loss`` and ``mse`` (mean over clips and targets), ``r2`` (mean of the per-target
    R2, ``sklearn.metrics.r2_score(multioutput="uniform_average")``), ``r2_per_target``
    ({name: R2}) and ``n``.
    """
    preds, targets = preds.float(), targets.float()
    per = r2_score(preds, targets, multioutput="raw_values") if len(targets) > 1 else torch.full((len(names),), float("nan"))
    mse = float(F.mse_loss(preds, targets))
    return {"loss": mse, "mse": mse, "r2": float(per.mean()),
            "r2_per_target": {n: float(v) for n, v in zip(names, per.reshape(-1).tolist())}, "n": int(len(targets))}


class Task(ABC):
    """A downstream task over output ``names`` (classes, tags or targets).

    ``monitor`` is the validation metric (higher is better) that selects checkpoints and grid
    settings; ``fit`` sees the training split once (class weights).
    """

    kind: ClassVar[str]
    monitor: ClassVar[str]
    metric_names: ClassVar[tuple[str, ...]]  # the headline metrics, in report order

    def __init__(self, names: list[str]):
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"{self.kind}: output names must be non-empty and unique, got {names!r}")
        self.names = list(names)

    @property
    def n_outputs(self) -> int:
        return len(self.names)

    def fit(self, train: list[Track]) -> None:
        """Statistics of the training split the loss needs (none by default)."""

    @abstractmethod
    def target(self, track: Track):
        """The training target of one track (an int class index, or a float32 vector)."""

    def targets(self, tracks: list[Track]) -> torch.Tensor:
        return torch.as_tensor(np.array([self.target(t) for t in tracks]))

    @abstractmethod
    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training loss of (B, n_outputs) model outputs against a batch of targets."""

    @abstractmethod
    def metrics(self, outputs: torch.Tensor, y: torch.Tensor) -> dict:
        """Clip-level metrics (``loss`` included) of (N, n_outputs) outputs."""

    def describe(self, track: Track) -> str:
        """A track's target as text (predictions.csv)."""
        return track.label

    def describe_output(self, output: torch.Tensor) -> str:
        """A clip's prediction as text (predictions.csv)."""
        return self.names[int(output.argmax())]


class Classification(Task):
    kind, monitor, metric_names = "classification", "macro_f1", ("macro_f1", "accuracy")

    def __init__(self, names: list[str]):
        super().__init__(names)
        self.index = {c: i for i, c in enumerate(self.names)}
        self.weights = torch.ones(self.n_outputs)

    def fit(self, train: list[Track]) -> None:
        self.weights = class_weights([self.target(t) for t in train], self.n_outputs)

    def target(self, track: Track) -> int:
        if track.label not in self.index:
            raise ConfigError(f"track {track.id!r}: label {track.label!r} is not one of {self.names}")
        return self.index[track.label]

    def loss(self, outputs, y):
        return F.cross_entropy(outputs.float(), y, weight=self.weights.to(outputs.device))

    def metrics(self, outputs, y):
        return classification_metrics(outputs, y, n_classes=self.n_outputs, weights=self.weights)


class Tagging(Task):
    kind, monitor, metric_names = "tagging", "roc_auc", ("roc_auc", "pr_auc")

    def __init__(self, names: list[str]):
        super().__init__(names)
        self.index = {c: i for i, c in enumerate(self.names)}

    def target(self, track: Track) -> np.ndarray:
        y = np.zeros(self.n_outputs, np.float32)
        # Tags outside ``names`` (beyond a top-50 cut) are ignored, as the published setups do.
        y[[self.index[tag] for tag in track.labels or () if tag in self.index]] = 1.0
        return y

    def loss(self, outputs, y):
        return F.binary_cross_entropy_with_logits(outputs.float(), y.float())

    def metrics(self, outputs, y):
        return tagging_metrics(outputs, y, names=self.names)

    def describe(self, track: Track) -> str:
        return ";".join(track.labels or ())

    def describe_output(self, output: torch.Tensor) -> str:
        return ";".join(n for n, v in zip(self.names, output.tolist()) if v > 0)  # sigmoid > 0.5


class Regression(Task):
    kind, monitor, metric_names = "regression", "r2", ("r2", "mse")

    def target(self, track: Track) -> np.ndarray:
        if track.targets is None or len(track.targets) != self.n_outputs:
            raise ConfigError(f"track {track.id!r}: expected {self.n_outputs} targets {self.names}, "
                              f"got {track.targets!r}")
        return np.asarray(track.targets, np.float32)

    def loss(self, outputs, y):
        return F.mse_loss(outputs.float(), y.float())

    def metrics(self, outputs, y):
        return regression_metrics(outputs, y, names=self.names)

    def describe(self, track: Track) -> str:
        return ";".join(f"{v:.4f}" for v in track.targets)

    def describe_output(self, output: torch.Tensor) -> str:
        return ";".join(f"{v:.4f}" for v in output.tolist())


TASKS = {cls.kind: cls for cls in (Classification, Tagging, Regression)}


def make_task(kind: str, names: list[str]) -> Task:
    if kind not in TASKS:
        raise ConfigError(f"unknown task {kind!r}; known: {sorted(TASKS)}")
    return TASKS[kind](names)
