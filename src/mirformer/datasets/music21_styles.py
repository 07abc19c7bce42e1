"""The built-in dataset ``music21-styles``: styles of the music21 corpus rendered to audio clips.

Scores of the corpus that ships with music21 are rendered at first use through a General MIDI
SoundFont (``midi_render``), so the default job runs anywhere with nothing to download. Each
score's parts get instruments from one pool shared by all classes and its tempo is jittered, so
timbre and tempo alone do not give the class away.

Class sizes keep the corpus's imbalance: a class takes ``score_fraction`` of its candidate scores
(at least ``MIN_SCORES``, at most ``max_scores_per_class``): the first that give a clip, in a
seeded order. Splits (about 80/10/10 of each class's clips) are dealt by score, so no score has
clips in two splits. A root (one per ``StylesConfig``, see ``default_root``) holds::

    config.json                  the config that built it; a root never mixes two configs
    manifest.csv                 one row per clip (``COLUMNS``), written last
    audio/<label>/<id>.flac      mono clips of exactly clip_seconds at sample_rate
    scores/<label>/<slug>.json   sidecar of each rendered score: its clips, or why it has none

Licensing: the corpus is public domain or licensed for use, some encodings for non-commercial
use only; the Essen folk songs are distributed for non-commercial use.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import json
import logging
import math
import multiprocessing
import os
import re
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf
from music21 import converter
from tqdm.auto import tqdm

from mirformer.atomic import atomic_path, write_json, write_text
from mirformer.datasets.base import Dataset, Track, register_dataset
from mirformer.datasets.music21_corpus import CLASSES, CORPUS
from mirformer.datasets.midi_render import load_soundfont, render_score
from mirformer.errors import ConfigError, MirformerError
from mirformer.paths import datasets_dir

logger = logging.getLogger(__name__)

NAME = "music21-styles"
FORMAT = 1  # bump when rendering changes: it is part of the root key, so old roots are not reused
MANIFEST = "manifest.csv"
COLUMNS = ("id", "path", "label", "split", "source", "instruments", "tempo_factor", "start_seconds")
TEMPO_RANGE = (0.94, 1.06)  # tempo factor per score, uniform
MIN_SCORES = 3  # a class needs a score in each split
FIRST_SPLITS = ("test", "validation", "train")  # where a class's first three scores go


@dataclass(frozen=True)
class StylesConfig:
    """What to render. Every field changes the clips, so each config gets its own root.

    Parameters
    ----------
    clip_seconds : float > 0
        Clip length in seconds; a performance too short for one clip is skipped, never padded.
    sample_rate : int > 0
        Sample rate of the FLAC clips in Hz.
    seed : int
        Seeds score order, instruments, tempo factors and splits: same seed, same files.
    max_scores_per_class : int >= MIN_SCORES
        Most scores a class takes.
    score_fraction : float in (0, 1]
        Fraction of a class's candidate scores it takes (before the cap); below 1 a small
        build keeps the corpus's class imbalance.
    max_clips_per_score : int >= 1
        Most clips cut from one score, spread evenly over it.
    classes : tuple of str
        Labels to build, from ``CLASSES``.
    validation_share, test_share : float in (0, 1)
        Share of each class's clips dealt (by score) to validation and test; train takes the rest.
    """

    clip_seconds: float = 30.0
    sample_rate: int = 22050
    seed: int = 0
    max_scores_per_class: int = 150
    score_fraction: float = 1.0
    max_clips_per_score: int = 2
    classes: tuple[str, ...] = tuple(CLASSES)
    validation_share: float = 0.1
    test_share: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(self.classes))
        for key in ("clip_seconds", "score_fraction", "validation_share", "test_share"):  # 10 and 10.0: one root
            if isinstance(getattr(self, key), int) and not isinstance(getattr(self, key), bool):
                object.__setattr__(self, key, float(getattr(self, key)))
        checks = {
            "clip_seconds": self.clip_seconds > 0,
            "sample_rate": isinstance(self.sample_rate, int) and self.sample_rate > 0,
            "max_scores_per_class": self.max_scores_per_class >= MIN_SCORES,
            "score_fraction": 0 < self.score_fraction <= 1,
            "max_clips_per_score": self.max_clips_per_score >= 1,
            "classes": 0 < len(set(self.classes)) == len(self.classes) and set(self.classes) <= set(CLASSES),
            "validation_share": 0 < self.validation_share < 1,
            "test_share": 0 < self.test_share < 1 and self.validation_share + self.test_share < 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"StylesConfig.{key}={getattr(self, key)!r} is invalid "
                                  f"(see its docstring; classes: distinct names from {sorted(CLASSES)})")

    def to_dict(self) -> dict:
        return {**asdict(self), "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, values: dict) -> StylesConfig:
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown StylesConfig keys {sorted(unknown)}")
        return cls(**values)


# With seed 0, built by two processes on 2 cores: FULL gives 1,417 clips of 30 s (80-292 per
# class) in about 12 minutes. QUICKSTART gives 784 clips of 5 s in about 35 s, dealt 272 / 179 /
# 333 to train / validation / test (by score): evaluation sets large enough for intervals of
# about +-0.05 macro F1, a training set no larger than before.
FULL = StylesConfig()
QUICKSTART = replace(FULL, clip_seconds=5.0, max_scores_per_class=25, score_fraction=0.15, max_clips_per_score=6,
                     validation_share=0.2, test_share=0.4)
PRESETS = {"quickstart": QUICKSTART, "full": FULL}


def default_root(config: StylesConfig) -> Path:
    """``datasets_dir() / "music21-styles" / <key>``, the key naming and hashing the config."""
    digest = hashlib.sha1(json.dumps({"format": FORMAT, **config.to_dict()}, sort_keys=True).encode())
    key = f"{config.clip_seconds:g}s-{config.sample_rate}hz-seed{config.seed}-{digest.hexdigest()[:8]}"
    return datasets_dir() / NAME / key


def scores_per_class(config: StylesConfig, n_candidates: int) -> int:
    """How many scores a class with ``n_candidates`` candidate scores takes."""
    wanted = max(MIN_SCORES, math.ceil(config.score_fraction * n_candidates))
    return min(n_candidates, config.max_scores_per_class, wanted)


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator that depends on ``seed`` and ``keys`` only, not on call order or process."""
    digest = hashlib.sha256(":".join([str(seed), *keys]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _slug(source: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", source)


_SOUNDFONT = b""  # loaded once per rendering process


def _init_worker() -> None:
    global _SOUNDFONT
    _SOUNDFONT = load_soundfont()


def _render(task: tuple[str, str, dict, str]) -> dict:
    """Render one score's clips to FLAC, then write and return its sidecar record."""
    source, label, config, root = task
    config, root = StylesConfig.from_dict(config), Path(root)
    rng = _rng(config.seed, "render", source)
    tempo_factor = round(float(rng.uniform(*TEMPO_RANGE)), 4)
    record = {"source": source, "label": label, "status": "ok", "reason": "", "instruments": [],
              "tempo_factor": tempo_factor, "clips": []}
    rel, _, number = source.partition("#")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # music21 warns on harmless encoding quirks
            score = converter.parse(CORPUS / rel, number=int(number) if number else None, forceSource=True)
            programs, duration, clips = render_score(
                score, rng=rng, tempo_factor=tempo_factor, clip_seconds=config.clip_seconds,
                max_clips=config.max_clips_per_score, sample_rate=config.sample_rate, soundfont=_SOUNDFONT)
    except Exception as exc:  # any parse or render failure skips the score; build() reports it
        record.update(status="failed", reason=f"{type(exc).__name__}: {exc}"[:300])
        clips = []
    else:
        record["instruments"] = [pretty_midi.program_to_instrument_name(p) for p in programs]
        if not clips:
            record.update(status="short",
                          reason=f"{duration:.1f} s performance, no {config.clip_seconds:g} s clip")
    for k, start, audio in clips:
        clip_id = f"{_slug(source)}-{k}"
        path = f"audio/{label}/{clip_id}.flac"
        with atomic_path(root / path) as tmp:
            sf.write(tmp, audio, config.sample_rate, format="FLAC", subtype="PCM_16")
        record["clips"].append({"id": clip_id, "path": path, "start_seconds": start})
    # Written after the clips: a sidecar on disk means the score is finished.
    write_json(root / "scores" / label / f"{_slug(source)}.json", record)
    return record


def _load_sidecars(root: Path, label: str) -> dict[str, dict]:
    """Finished scores of a class by source: sidecars whose clips are all on disk."""
    done = {}
    for path in sorted((root / "scores" / label).glob("*.json")):
        record = json.loads(path.read_text())
        if all((root / clip["path"]).is_file() for clip in record["clips"]):
            done[record["source"]] = record
    return done


def _chosen(order: list[str], done: dict[str, dict], target: int) -> list[str] | None:
    """The first ``target`` scores in ``order`` that gave clips; None while that is unknown."""
    chosen = []
    for source in order:
        if source not in done:
            return None
        if done[source]["clips"]:
            chosen.append(source)
            if len(chosen) == target:
                break
    return chosen


def _pending(order: list[str], done: dict[str, dict], target: int) -> list[str]:
    """Scores to render next: enough to settle ``_chosen`` at the class's success rate so far."""
    if _chosen(order, done, target) is not None:
        return []
    processed = [done[s] for s in order if s in done]
    rate = max(sum(bool(r["clips"]) for r in processed) / len(processed), 0.2) if processed else 1.0
    expected, batch = 0.0, []
    for source in order:
        if source not in done:
            batch.append(source)
        expected += rate if source not in done else bool(done[source]["clips"])
        if expected >= target:
            break
    return batch


def assign_splits(scores: dict[str, list[tuple[str, int]]], *, seed: int,
                  shares: dict[str, float] | None = None) -> dict[str, str]:
    """Deal each class's scores to splits, about ``shares`` of its clips each (default: 10% to
    test, 10% to validation); train takes the rest.

    Parameters
    ----------
    scores : dict of str to list of (str, int)
        Label -> ``(source, number of clips)`` of each of its scores.
    seed : int
        Seeds the order in which a class's scores are dealt; its first three go to
        ``FIRST_SPLITS``, so every class has a score in every split.

    Returns
    -------
    splits : dict of str to str
        Source -> split.
    """
    splits = {}
    for label, items in scores.items():
        if len(items) < MIN_SCORES:
            raise ConfigError(f"class {label!r} has {len(items)} scores with clips, needs {MIN_SCORES} "
                              "for three splits: raise max_scores_per_class or score_fraction")
        total = sum(n for _, n in items)
        quota = {s: max(1, round(f * total)) for s, f in (shares or {"test": 0.1, "validation": 0.1}).items()}
        filled = dict.fromkeys(FIRST_SPLITS, 0)
        for i, index in enumerate(_rng(seed, "split", label).permutation(len(items))):
            source, n = items[index]
            split = FIRST_SPLITS[i] if i < len(FIRST_SPLITS) else next(
                (s for s in quota if filled[s] < quota[s]), "train")
            splits[source] = split
            filled[split] += n
    return splits


def build(config: StylesConfig, root: str | Path | None = None, *, workers: int | None = None,
          progress: bool = True) -> Path:
    """Render the dataset under ``root`` unless its manifest exists; resumes a partial build.

    Parameters
    ----------
    config : StylesConfig
        What to render.
    root : str or Path or None
        Dataset root; None: ``default_root(config)``. A root built with another config is refused.
    workers : int >= 1 or None
        Rendering processes; None: ``os.cpu_count()``.
    progress : bool
        Show a progress bar of the scores rendered.

    Returns
    -------
    manifest : Path
        ``root / "manifest.csv"``.
    """
    root = Path(root) if root is not None else default_root(config)
    stored = _stored_config(root)
    if stored is None:
        versions = {name: importlib.metadata.version(name) for name in ("music21", "pretty_midi", "midirenderer")}
        write_json(root / "config.json",
                   {"dataset": NAME, "format": FORMAT, "config": config.to_dict(), "versions": versions})
    elif stored != config:
        raise ConfigError(f"{root} holds {NAME} built with {stored}, not {config}: use another root")
    manifest = root / MANIFEST
    if manifest.is_file():
        return manifest
    orders, targets = {}, {}
    for label in config.classes:
        orders[label] = _order(config, label)
        targets[label] = scores_per_class(config, len(orders[label]))
    done, chosen = _render_until_chosen(config, root, orders, targets, workers=workers, progress=progress)
    _report_and_prune(root, done, chosen)
    _write_manifest(root, config, done, chosen, assign_splits(
        {label: [(s, len(done[label][s]["clips"])) for s in sources] for label, sources in chosen.items()},
        seed=config.seed, shares={"test": config.test_share, "validation": config.validation_share}))
    return manifest


def _order(config: StylesConfig, label: str) -> list[str]:
    """A class's candidate scores in the seeded order in which they are taken."""
    candidates = CLASSES[label]()
    return [candidates[i] for i in _rng(config.seed, "order", label).permutation(len(candidates))]


def _render_until_chosen(config: StylesConfig, root: Path, orders: dict[str, list[str]], targets: dict[str, int], *,
                         workers: int | None, progress: bool) -> tuple[dict, dict]:
    """Render scores in each class's order until its first ``targets[label]`` scores with clips are
    known (resuming from the sidecars on disk); return (records by class and source, chosen sources)."""
    done = {label: _load_sidecars(root, label) for label in orders}

    def pending() -> list[tuple[str, str, dict, str]]:
        return [(source, label, config.to_dict(), str(root)) for label in orders
                for source in _pending(orders[label], done[label], targets[label])]

    batch, workers, pool = pending(), workers or os.cpu_count() or 1, None
    with ExitStack() as stack:
        if batch and workers > 1:
            # fork where there is one: spawn would re-run a caller's script that lacks a main guard.
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            pool = ProcessPoolExecutor(workers, multiprocessing.get_context(method), _init_worker)
            stack.callback(pool.shutdown, cancel_futures=True)
            pool.submit(int).result()  # forks the workers now, before the progress bar starts a thread
        elif batch:
            _init_worker()
        bar = stack.enter_context(tqdm(total=0, desc=f"render {NAME}", unit="score", disable=not progress))
        while batch:
            bar.total += len(batch)
            results = (f.result() for f in as_completed([pool.submit(_render, t) for t in batch])) if pool \
                else map(_render, batch)
            for record in results:
                done[record["label"]][record["source"]] = record
                bar.update()
            batch = pending()
    return done, {label: _chosen(orders[label], done[label], targets[label]) for label in orders}


def build_unlabelled(config: StylesConfig, scores_per_class: int, root: str | Path | None = None, *,
                     workers: int | None = None, progress: bool = True) -> Path:
    """Render, without labels, up to ``scores_per_class`` scores of each class that the labelled
    dataset of ``config`` does not use (its split is dealt by score too): a pretraining corpus
    disjoint from every labelled clip. Builds the labelled dataset first to know its scores.

    Returns ``root / "manifest.csv"`` (``root``: ``unlabelled_root(config, scores_per_class)``).
    """
    labelled = build(config, workers=workers, progress=progress)
    with labelled.open(newline="") as f:
        used = {row["source"] for row in csv.DictReader(f)}
    root = Path(root) if root is not None else unlabelled_root(config, scores_per_class)
    manifest = root / MANIFEST
    if manifest.is_file():
        return manifest
    write_json(root / "config.json", {"dataset": f"{NAME}-unlabelled", "format": FORMAT, "config": config.to_dict(),
                                      "scores_per_class": scores_per_class})
    orders = {label: [s for s in _order(config, label) if s not in used] for label in config.classes}
    targets = {label: min(scores_per_class, len(order)) for label, order in orders.items()}
    done, chosen = _render_until_chosen(config, root, orders, targets, workers=workers, progress=progress)
    _report_and_prune(root, done, chosen)
    splits = {source: "validation" if _rng(config.seed, "unlabelled-split", source).random() < 0.1 else "train"
              for sources in chosen.values() for source in sources}
    _write_manifest(root, config, done, chosen, splits)
    return manifest


def unlabelled_root(config: StylesConfig, scores_per_class: int) -> Path:
    """Beside the labelled root of ``config``: ``<its key>-unlabelled<scores_per_class>``."""
    labelled = default_root(config)
    return labelled.parent / f"{labelled.name}-unlabelled{scores_per_class}"


def _report_and_prune(root: Path, done: dict[str, dict[str, dict]], chosen: dict[str, list[str]]) -> None:
    """Log the scores that failed; delete the clips of scores rendered beyond a class's quota."""
    failed = [r for records in done.values() for r in records.values() if r["status"] == "failed"]
    if failed:
        logger.warning("%s: skipped %d scores that failed to parse or render:\n%s", NAME, len(failed),
                       "\n".join(f"  {r['source']}: {r['reason']}" for r in failed))
    for label, records in done.items():
        for source in set(records) - set(chosen[label]):
            for clip in records[source]["clips"]:
                (root / clip["path"]).unlink(missing_ok=True)
            if records[source]["clips"]:
                (root / "scores" / label / f"{_slug(source)}.json").unlink()


def _write_manifest(root: Path, config: StylesConfig, done: dict[str, dict[str, dict]],
                    chosen: dict[str, list[str]], splits: dict[str, str]) -> None:
    rows = sorted(
        ({"id": clip["id"], "path": clip["path"], "label": label, "split": splits[source],
          "source": source, "instruments": ";".join(done[label][source]["instruments"]),
          "tempo_factor": done[label][source]["tempo_factor"], "start_seconds": clip["start_seconds"]}
         for label, sources in chosen.items() for source in sources for clip in done[label][source]["clips"]),
        key=lambda row: (row["label"], row["id"]))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(root / MANIFEST, text.getvalue())


def _stored_config(root: Path) -> StylesConfig | None:
    path = root / "config.json"
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    if stored.get("format") != FORMAT:
        raise ConfigError(f"{root} holds {NAME} format {stored.get('format')}, this code writes {FORMAT}")
    return StylesConfig.from_dict(stored["config"])


def resolve_config(config: StylesConfig | dict | None = None,
                   preset: str | None = None) -> StylesConfig | None:
    """``config`` as a StylesConfig: a dict is a diff of ``PRESETS[preset]`` (or of the defaults).

    Returns None when neither is given.
    """
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown {NAME} preset {preset!r}; known: {sorted(PRESETS)}")
    if isinstance(config, StylesConfig):
        if preset is not None:
            raise ConfigError(f"give {NAME} a preset or a StylesConfig, not both")
        return config
    if config is None and preset is None:
        return None
    return StylesConfig.from_dict({**(PRESETS[preset].to_dict() if preset else {}), **(config or {})})


@register_dataset
class Music21Styles(Dataset):
    """Musical styles of the music21 corpus rendered to labelled clips (see the module docstring).

    Parameters
    ----------
    root : str or Path or None
        Dataset root; None: ``default_root`` of the config.
    config : StylesConfig or dict or None
        What to render; a dict is a diff of the preset's config (see ``resolve_config``). With
        neither config nor preset: the config stored in ``root``, else ``FULL``.
    preset : str or None
        A name from ``PRESETS`` ("quickstart", "full").
    workers : int >= 1 or None
        Rendering processes for ``prepare``; None: ``os.cpu_count()``.
    progress : bool
        Show a progress bar while rendering.
    """

    name = NAME
    task = "classification"

    def __init__(self, root: str | Path | None = None, *, config: StylesConfig | dict | None = None,
                 preset: str | None = None, workers: int | None = None, progress: bool = True):
        config = resolve_config(config, preset)
        if config is None:
            config = (_stored_config(Path(root)) if root is not None else None) or FULL
        super().__init__(root if root is not None else default_root(config))
        self.config, self.workers, self.progress = config, workers, progress

    def prepare(self) -> None:
        """Render the clips and write the manifest unless it exists; resumes a partial build."""
        build(self.config, self.root, workers=self.workers, progress=self.progress)

    def tracks(self) -> list[Track]:
        """One track per clip; ``meta`` holds source, instruments, tempo_factor, start_seconds."""
        manifest = self.root / MANIFEST
        if not manifest.is_file():
            raise MirformerError(f"{NAME} is not prepared under {self.root} (no {MANIFEST}): call prepare()")
        root = self.root.absolute()
        with manifest.open(newline="") as f:
            return [Track(row["id"], root / row["path"], row["split"], row["label"],
                          meta={"source": row["source"], "instruments": tuple(row["instruments"].split(";")),
                                "tempo_factor": float(row["tempo_factor"]),
                                "start_seconds": float(row["start_seconds"])})
                    for row in csv.DictReader(f)]


@register_dataset
class Music21StylesUnlabelled(Dataset):
    """Scores of the corpus's style classes that no labelled split of ``music21-styles`` uses,
    rendered the same way and given without labels: the built-in pretraining corpus.

    Parameters
    ----------
    root : str or Path or None
        Dataset root; None: ``unlabelled_root`` of the config.
    config, preset, workers, progress
        As ``Music21Styles``: the labelled dataset whose scores are left out.
    scores_per_class : int >= 1
        Most scores of each class rendered (fewer where the corpus has no more unused ones).
    """

    name = f"{NAME}-unlabelled"
    task = None

    def __init__(self, root: str | Path | None = None, *, config: StylesConfig | dict | None = None,
                 preset: str | None = None, scores_per_class: int = 40, workers: int | None = None,
                 progress: bool = True):
        config = resolve_config(config, preset) or FULL
        if scores_per_class < 1:
            raise ConfigError(f"{self.name}: scores_per_class must be >= 1, got {scores_per_class!r}")
        super().__init__(root if root is not None else unlabelled_root(config, scores_per_class))
        self.config, self.scores_per_class, self.workers, self.progress = config, scores_per_class, workers, progress

    def prepare(self) -> None:
        """Render the labelled dataset (to know its scores), then the unused scores; resumes."""
        build_unlabelled(self.config, self.scores_per_class, self.root, workers=self.workers, progress=self.progress)

    def tracks(self) -> list[Track]:
        """One track per clip, without its style: pretraining never reads a label."""
        manifest = self.root / MANIFEST
        if not manifest.is_file():
            raise MirformerError(f"{self.name} is not prepared under {self.root} (no {MANIFEST}): call prepare()")
        root = self.root.absolute()
        with manifest.open(newline="") as f:
            return [Track(row["id"], root / row["path"], row["split"]) for row in csv.DictReader(f)]

    def require_labels(self) -> None:
        raise ConfigError(f"{self.name} has no labels: it is a pretraining set (--set pretrain.data="
                          f"{{name: {self.name}, options: {{preset: quickstart}}}})")
