"""Single-label classification: class weights and clip-level metrics.

Metrics come from torchmetrics (the same code logs them during training); tests check them
against scikit-learn.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
)


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
        "loss": float(F.cross_entropy(logits, targets, weight=weights)),
        "macro_f1": float(multiclass_f1_score(preds, targets, num_classes=n_classes, average="macro")),
        "accuracy": float(multiclass_accuracy(preds, targets, num_classes=n_classes, average="micro")),
        "confusion": multiclass_confusion_matrix(preds, targets, num_classes=n_classes).tolist(),
        "n": int(len(targets)),
    }
