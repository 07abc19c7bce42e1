"""What a downstream task declares, and the registry of tasks.

A task (classification, tagging, regression) owns everything that depends on what a clip's
target is: the outputs' names, targets, the training loss and its class weights, the one
implementation of each metric (numpy kernels, used alike by training, the MFCC baseline and the
report's intervals; the tests check them against scikit-learn), how clips are stratified when
resampled, the report's columns and chance line, label counts, and the baseline's linear model.
A dataset names its task (``Dataset.task``); the pipeline asks the task and never branches on
its name. Adding a task is one file in this package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from mirformer.datasets.base import SPLITS, Dataset, Track
from mirformer.errors import ConfigError

Kernel = Callable[[np.ndarray, np.ndarray], float]


class Task(ABC):
    """A downstream task over output ``names`` (classes, tags or targets).

    Class attributes: ``name`` (what ``Dataset.task`` says), ``monitor`` (the validation metric,
    higher is better, that selects checkpoints, grid points and the best setup), ``kernels``
    (metric name -> ``f(targets, outputs) -> float``: the headline metrics in report order, each
    given an interval in reports; a kernel may also carry ``f.rows(targets, outputs, target_rows,
    output_rows) -> (R,)``, its value on R index rows at once, which ``mirformer.stats`` then uses
    for its thousands of resamples), ``outputs_are`` (what the names are, for reports), ``columns``
    (the report table: header -> (split, metric key, sub-key or None)), ``strengths`` (the
    baseline's regularisation grid, most regularised first) and ``strength_name``.
    """

    name: ClassVar[str]
    monitor: ClassVar[str]
    kernels: ClassVar[dict[str, Kernel]]
    outputs_are: ClassVar[str]
    strengths: ClassVar[tuple[float, ...]]
    strength_name: ClassVar[str]

    def __init__(self, names: list[str]):
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"{self.name}: output names must be non-empty and unique, got {names!r}")
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}  # output name -> its column

    @property
    def n_outputs(self) -> int:
        return len(self.names)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(self.kernels)

    # ---- data ---------------------------------------------------------------------------------
    @classmethod
    def output_names(cls, dataset: Dataset) -> list[str]:
        """The outputs of ``dataset`` under this task: those it fixes itself (``Dataset.classes``),
        else the sorted label keys of its tracks."""
        fixed = dataset.classes()
        if fixed is not None:
            return list(fixed)
        return sorted({key for t in dataset.tracks() for key in cls.label_keys(t)})

    @staticmethod
    @abstractmethod
    def label_keys(track: Track) -> list[str]:
        """What a track counts towards (its class, its tags), in ``mirformer validate``'s table."""

    def fit(self, train: list[Track]) -> None:
        """Statistics of the training split the loss needs (none by default)."""

    @abstractmethod
    def target(self, track: Track):
        """The training target of one track (an int class index, or a float32 vector)."""

    def targets(self, tracks: list[Track]) -> np.ndarray:
        """Targets of ``tracks`` stacked: (N,) int64 class indices or (N, n_outputs) float32."""
        return np.array([self.target(t) for t in tracks])

    # ---- training and metrics -----------------------------------------------------------------
    @abstractmethod
    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Training loss of (B, n_outputs) model outputs against a batch of targets."""

    @abstractmethod
    def metrics(self, outputs: np.ndarray, y: np.ndarray) -> dict:
        """Clip-level metrics of (N, n_outputs) outputs: ``loss``, every kernel's value, ``n``, and
        the task's details (confusion matrix, per-tag or per-target scores)."""

    def strata(self, y: np.ndarray) -> list[np.ndarray]:
        """Clip indices resampled together by the bootstrap (default: all clips as one group)."""
        return [np.arange(len(y))]

    # ---- text ---------------------------------------------------------------------------------
    def describe(self, track: Track) -> str:
        """A track's target as text (predictions.csv)."""
        return track.label

    def describe_output(self, output: np.ndarray) -> str:
        """A clip's prediction as text (predictions.csv)."""
        return self.names[int(np.argmax(output))]

    @staticmethod
    @abstractmethod
    def chance_line(results: dict) -> str:
        """The report's line under the table: what guessing would score, from a saved ``results``."""

    @staticmethod
    @abstractmethod
    def chance(results: dict) -> float:
        """The monitored metric of guessing, drawn as a line in the report's forest plot."""

    # ---- the MFCC baseline's linear model ----------------------------------------------------
    @abstractmethod
    def linear_model(self, strength: float, *, seed: int) -> Any:
        """A scikit-learn estimator for standardised features with regularisation ``strength``."""

    @abstractmethod
    def linear_outputs(self, model, X: np.ndarray) -> np.ndarray:
        """Per-clip outputs of a fitted ``linear_model`` as the neural setups save them: (N, n_outputs)."""


def label_counts(task: str | None, tracks: list[Track]) -> dict[str, dict[str, int]]:
    """Tracks per split and label key of ``task`` (``"clips"`` without one), splits in order."""
    counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for t in tracks:
        for key in task_class(task).label_keys(t) if task else ["clips"]:
            counts.setdefault(t.split, {})[key] = counts.setdefault(t.split, {}).get(key, 0) + 1
    return {s: dict(sorted(c.items())) for s, c in counts.items()}


def metric_of(setup: dict, split: str, key: str, sub: str | None = None):
    """A saved setup's metric ``key`` (and ``sub``-entry) on ``split``, or None."""
    value = setup.get("splits", {}).get(split, {}).get(key)
    return value.get(sub) if sub is not None and isinstance(value, dict) else value


TASKS: dict[str, type[Task]] = {}


def register_task(cls):
    """Class decorator: make a task available by its ``name``."""
    TASKS[cls.name] = cls
    return cls


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    return TASKS[name]


def make_task(name: str, names: list[str]) -> Task:
    """The task ``name`` over outputs ``names``."""
    return task_class(name)(names)
