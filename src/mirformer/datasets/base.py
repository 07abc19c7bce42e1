"""The one interface every dataset implements: track records, classes, validation.

A dataset knows files, labels and splits; it knows nothing of representations.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

from tqdm.auto import tqdm

from mirformer.audio import load_audio
from mirformer.errors import AudioError, ConfigError

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Track:
    """One audio item: ``id`` unique within its dataset, ``split`` one of ``SPLITS``."""

    id: str
    path: Path
    split: str
    label: str | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class ValidationReport:
    """What ``Dataset.validate`` found: bad files by track id and class counts per split."""

    n_tracks: int
    bad: dict[str, str]  # track id -> reason
    counts: dict[str, dict[str, int]]  # split -> label -> count (good files only)

    @property
    def ok(self) -> bool:
        return not self.bad


class Dataset(ABC):
    """A labelled audio collection rooted at ``root``.

    Subclasses set ``name`` and ``task`` and implement ``tracks``; ``prepare`` builds data that
    can be built locally (the rendered corpus), and is a no-op for user-supplied datasets.
    """

    name: ClassVar[str]
    task: ClassVar[str] = "classification"

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def identity(self) -> str:
        """Name plus a hash of the resolved root: two copies of a dataset never share features."""
        return f"{self.name}-{hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:8]}"

    def prepare(self) -> None:
        """Make the dataset available under ``root`` (no-op unless it can be built here)."""

    @abstractmethod
    def tracks(self) -> list[Track]:
        """All tracks with their split and label."""

    def classes(self) -> list[str]:
        """Sorted class names."""
        return sorted({t.label for t in self.tracks() if t.label is not None})

    def validate(self, *, sr: int = 22050, min_seconds: float = 0.0, progress: bool = True) -> ValidationReport:
        """Decode every file; report missing, undecodable, silent and too-short ones by id."""
        tracks = self.tracks()
        bad: dict[str, str] = {}
        counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
        for t in tqdm(tracks, desc=f"validate {self.name}", unit="file", disable=not progress):
            try:
                load_audio(t.path, sr=sr, min_seconds=min_seconds)
            except AudioError as exc:
                bad[t.id] = exc.cause
                continue
            counts.setdefault(t.split, Counter())[t.label] += 1
        return ValidationReport(len(tracks), bad, {s: dict(sorted(c.items())) for s, c in counts.items()})


DATASETS: dict[str, Callable[..., Dataset]] = {}


def register_dataset(cls):
    """Class decorator: make a dataset available by its ``name``."""
    DATASETS[cls.name] = cls
    return cls


def get_dataset(name: str, root: str | Path) -> Dataset:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name](root)
