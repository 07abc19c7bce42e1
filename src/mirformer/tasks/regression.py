"""Regression: real targets per clip (z-scored by the dataset); MSE; R2 per target and their mean."""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from sklearn.linear_model import Ridge

from mirformer.datasets.base import Dataset, Track
from mirformer.errors import ConfigError
from mirformer.tasks.base import Task, register_task


def r2_per_target(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """1 - SS_res / SS_tot of each column; a constant target scores 1 if predicted exactly, else 0
    (scikit-learn's ``force_finite``), as a resample of a small split may hold one."""
    res = ((y - pred) ** 2).sum(0)
    tot = ((y - y.mean(0)) ** 2).sum(0)
    return np.where(tot > 0, 1 - res / np.where(tot > 0, tot, 1), np.where(res == 0, 1.0, 0.0))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean R2 over targets (``sklearn.metrics.r2_score(multioutput="uniform_average")``)."""
    return float(np.mean(r2_per_target(y, pred)))


def mse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean((np.asarray(y, np.float64) - pred) ** 2))


@register_task
class Regression(Task):
    name, monitor, outputs_are = "regression", "r2", "regression targets"
    kernels = {"r2": r2, "mse": mse}
    # Ridge penalties of the baseline, strongest first: ties go to the more regularised model.
    strengths, strength_name = (1000.0, 100.0, 10.0, 1.0, 0.1), "alpha"

    @property
    def columns(self) -> dict:
        return {"R2 train": ("train", "r2", None), "R2 test": ("test", "r2", None),
                **{f"R2 {n} test": ("test", "r2_per_target", n) for n in self.names}, "MSE test": ("test", "mse", None)}

    @classmethod
    def output_names(cls, dataset: Dataset) -> list[str]:
        if dataset.classes() is None:
            raise ConfigError(f"{dataset.name}: a regression dataset names its targets (target_names)")
        return list(dataset.classes())

    @staticmethod
    def label_keys(track: Track) -> list[str]:
        return ["clips"]

    def target(self, track: Track) -> np.ndarray:
        if track.targets is None or len(track.targets) != self.n_outputs:
            raise ConfigError(f"track {track.id!r}: expected {self.n_outputs} targets {self.names}, "
                              f"got {track.targets!r}")
        return np.asarray(track.targets, np.float32)

    def targets(self, tracks: list[Track]) -> np.ndarray:
        return np.array([self.target(t) for t in tracks], dtype=np.float32).reshape(len(tracks), self.n_outputs)

    def loss(self, outputs, y):
        return F.mse_loss(outputs.float(), y.float())

    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict:
        """``loss`` and ``mse`` (mean over clips and targets), ``r2`` (mean of the per-target R2),
        ``r2_per_target`` ({name: R2}; NaN with fewer than two clips) and ``n``."""
        y = np.asarray(y, np.float64)
        per = r2_per_target(y, outputs) if len(y) > 1 else np.full(self.n_outputs, np.nan)
        loss = mse(y, outputs)
        return {"loss": loss, "mse": loss, "r2": float(np.mean(per)),
                "r2_per_target": {n: float(v) for n, v in zip(self.names, per)}, "n": int(len(y))}

    def describe(self, track: Track) -> str:
        return ";".join(f"{v:.4f}" for v in track.targets)

    def describe_output(self, output: np.ndarray) -> str:
        return ";".join(f"{v:.4f}" for v in output.tolist())

    @staticmethod
    def chance_line(results: dict) -> str:
        return "Chance (always predicting the training mean): R2 about 0.00, MSE about 1.00 (z-scored targets)."

    @staticmethod
    def chance(results: dict) -> float:
        return 0.0

    def linear_model(self, strength, *, seed):
        return Ridge(alpha=strength)

    def linear_outputs(self, model, X):
        """Predicted targets; scikit-learn returns one target as a vector."""
        return np.asarray(model.predict(X)).reshape(len(X), self.n_outputs)
