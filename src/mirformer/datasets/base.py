"""The one interface every dataset implements: track records, output names, validation.

A dataset knows files, labels and splits; it knows nothing of representations. Its ``task``
says what a track carries:

- ``"classification"``: ``Track.label``, one class name;
- ``"tagging"``: ``Track.labels``, a tuple of tag names (possibly empty);
- ``"regression"``: ``Track.targets``, a tuple of floats in ``target_names`` order, already
  z-scored by the loader (raw values stay in ``Track.meta["raw_targets"]``).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from mirformer.audio import MIN_SECONDS, load_audio
from mirformer.errors import AudioError, ConfigError

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Track:
    """One audio item: ``id`` unique within its dataset, ``split`` one of ``SPLITS``."""

    id: str
    path: Path
    split: str
    label: str | None = None  # classification
    labels: tuple[str, ...] | None = None  # tagging
    targets: tuple[float, ...] | None = None  # regression (z-scored)
    meta: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Problem:
    """Why a file is unusable: ``kind`` one of ``mirformer.errors.AUDIO_PROBLEMS`` (``"missing"``,
    ``"too short"``, ...), ``text`` the reason as reported; ``str()`` gives the text."""

    kind: str
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class ValidationReport:
    """What ``Dataset.validate`` found: bad files by track id, and the good ones (which the
    dataset's task counts per label and split: ``mirformer.tasks.label_counts``)."""

    n_tracks: int
    bad: dict[str, Problem]  # track id -> why it is unusable
    good: list[Track]
    # Usable files worth a look (far shorter than the dataset's clips, or on the maintainers'
    # list): track id -> note. They count as good and train unless ``min_seconds`` excludes them.
    flagged: dict[str, str] = field(default_factory=dict)


# A usable file shorter than this share of its dataset's nominal clip length is flagged.
SHORT_SHARE = 0.5


def _check_file(path: Path, sr: int, min_seconds: float) -> tuple[Problem | None, float]:
    """(why ``path`` is unusable or None, its decoded seconds) (runs in worker processes)."""
    try:
        return None, len(load_audio(path, sr=sr, min_seconds=min_seconds)) / sr
    except AudioError as exc:
        return Problem(exc.kind, exc.cause), 0.0


class Dataset(ABC):
    """A labelled audio collection rooted at ``root``.

    Subclasses set ``name`` and ``task`` and implement ``tracks``; ``prepare`` builds data that
    can be built locally (the rendered corpus), and is a no-op for user-supplied datasets.
    ``known_bad`` maps track ids the dataset's maintainers list as broken to that note, which
    ``validate`` adds to the decoder's reason. ``nominal_seconds`` is the clip length the dataset
    is distributed with; ``flag`` names usable files far shorter than it.
    """

    name: ClassVar[str]
    task: str | None = "classification"  # a registered task (``mirformer.tasks``); None: unlabelled
    target_names: list[str] | None = None  # regression: the targets, in ``Track.targets`` order
    known_bad: ClassVar[dict[str, str]] = {}
    nominal_seconds: ClassVar[float | None] = None

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    @property
    def identity(self) -> str:
        """Name plus a hash of the resolved root: two copies of a dataset never share features.

        Options (subset, split, labels) are left out: a track id names the same audio whatever
        the options, so FMA small and medium share the features of their common tracks.
        """
        return f"{self.name}-{hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:8]}"

    def prepare(self) -> None:
        """Make the dataset available under ``root`` (no-op unless it can be built here)."""

    @abstractmethod
    def tracks(self) -> list[Track]:
        """All tracks with their split and label(s) or targets."""

    def classes(self) -> list[str] | None:
        """The outputs the dataset fixes itself, in output order (its regression targets, or the top
        tags it keeps), or None: the task takes them from the tracks (``Task.output_names``)."""
        return self.target_names

    def require_labels(self) -> None:
        """Raise ``ConfigError`` if the dataset carries no labels, so cannot be a downstream set."""
        if self.task is None:
            raise ConfigError(f"{self.name} ({self.root}) has no labels: it can only be a pretraining set")

    def explain(self, track_id: str, reason: str) -> str:
        """Why a file is unusable: the decoder's ``reason``, plus the maintainers' note for a ``known_bad`` id."""
        note = self.known_bad.get(track_id)
        return f"{reason} ({note})" if note else reason

    def flag(self, track_id: str, seconds: float) -> str | None:
        """A note on a usable file of ``seconds`` worth a look, or None: far shorter than the
        dataset's clips (below ``SHORT_SHARE`` of ``nominal_seconds``), or a ``known_bad`` id."""
        notes = []
        if self.nominal_seconds and seconds < SHORT_SHARE * self.nominal_seconds:
            notes.append(f"{seconds:.1f} s, far shorter than {self.name}'s {self.nominal_seconds:g} s clips")
        if track_id in self.known_bad:
            notes.append(self.known_bad[track_id])
        return "; ".join(notes) or None

    def validate(self, *, sr: int = 22050, min_seconds: float = MIN_SECONDS, workers: int = 1,
                 progress: bool = True) -> ValidationReport:
        """Decode every file; report missing, undecodable, silent and too-short ones by id.

        The rule is the one training applies (``mirformer.audio.load_audio`` and ``too_short``
        with ``data.min_seconds``), so the files reported here are the files a comparison skips.
        Never raises for a bad file: each one is listed as a ``Problem``, its kind and its reason
        (plus the maintainers' note for a ``known_bad`` id). Good files that ``flag`` notes are
        listed in ``flagged``.
        ``workers`` decoding processes (joblib: -1 = all cores).
        """
        tracks = self.tracks()
        jobs = (delayed(_check_file)(t.path, sr, min_seconds) for t in tracks)
        checked = Parallel(n_jobs=workers, return_as="generator")(jobs)
        bad: dict[str, Problem] = {}
        flagged: dict[str, str] = {}
        good: list[Track] = []
        bar = tqdm(checked, total=len(tracks), desc=f"validate {self.name}", unit="file", disable=not progress)
        for t, (problem, seconds) in zip(tracks, bar):
            if problem is not None:
                bad[t.id] = Problem(problem.kind, self.explain(t.id, problem.text))
                continue
            note = self.flag(t.id, seconds)
            if note:
                flagged[t.id] = note
            good.append(t)
        return ValidationReport(len(tracks), bad, good, flagged)


def random_split(ids: list[str], strata: list[str] | None = None, *, seed: int = 0,
                 fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, str]:
    """Assign each id a split, ``fractions`` of each stratum (class) to train/validation/test.

    Deterministic given ``seed`` and the ids (order does not matter). Within a stratum of n
    items, ``round(n * f_val)`` go to validation, ``round(n * f_test)`` to test, the rest to train;
    strata too small for a share keep their items in train.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ConfigError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    strata = strata if strata is not None else [""] * len(ids)
    groups: dict[str, list[str]] = {}
    for i, s in sorted(zip(ids, strata)):
        groups.setdefault(s, []).append(i)
    out: dict[str, str] = {}
    for s, members in sorted(groups.items()):
        rng = np.random.default_rng([seed, int(hashlib.sha1(s.encode()).hexdigest()[:8], 16)])
        members = [members[k] for k in rng.permutation(len(members))]
        n_val, n_test = round(len(members) * fractions[1]), round(len(members) * fractions[2])
        for k, i in enumerate(members):
            out[i] = "validation" if k < n_val else "test" if k < n_val + n_test else "train"
    return out


def nested_share(ids: list[str], fraction: float, *, seed: int = 0) -> set[str]:
    """The ids whose seeded hash falls below ``fraction``: about that share of them, the share for
    a smaller fraction always inside a larger one's, and no id moved when others are added."""
    def position(i: str) -> float:  # uniform in [0, 1), fixed per id and seed
        return int(hashlib.sha1(f"{seed}:{i}".encode()).hexdigest()[:15], 16) / 16**15
    return {i for i in ids if position(i) < fraction}


def zscore(tracks: list[Track], *, fit_on: tuple[str, ...] = ("train",)) -> tuple[list[Track], dict]:
    """Z-score ``Track.targets`` with the mean and (population) std of the tracks in ``fit_on`` splits.

    Returns the new tracks (raw values kept in ``meta["raw_targets"]``) and ``{"mean", "std"}``.
    """
    fit = np.array([t.targets for t in tracks if t.split in fit_on], dtype=np.float64)
    if len(fit) < 2:
        raise ConfigError(f"need at least two tracks in {fit_on} to z-score targets, found {len(fit)}")
    mean, std = fit.mean(0), fit.std(0)
    if np.any(std == 0):
        raise ConfigError(f"a regression target is constant over {fit_on}; it cannot be z-scored")
    out = [Track(t.id, t.path, t.split, targets=tuple(float(v) for v in (np.asarray(t.targets) - mean) / std),
                 meta={**t.meta, "raw_targets": tuple(t.targets)}) for t in tracks]
    return out, {"mean": mean.tolist(), "std": std.tolist()}


DATASETS: dict[str, Callable[..., Dataset]] = {}


def register_dataset(cls):
    """Class decorator: make a dataset available by its ``name``."""
    DATASETS[cls.name] = cls
    return cls

