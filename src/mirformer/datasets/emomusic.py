"""Emo Music, the "1000 songs" dataset (Soleymani et al. 2013): arousal and valence per clip.

The unpacked dataset under ``root``::

    clips_45seconds/<song_id>.mp3        45 s clips at 44.1 kHz; song_id 2-1000, not zero-padded
    annotations/static_annotations.csv   song_id, mean_arousal, std_arousal, mean_valence,
                                         std_valence (1-9 scale); 744 songs
    annotations/songs_info.csv           song_id, file_name, Artist, Song title, start / end of
                                         the segment (min.sec), Genre, Mediaeval 2013 set

Some copies keep the two CSVs in ``root`` itself. Keys and values in both are padded with spaces
(and tabs in songs_info), so every one is stripped.

Splits follow JukeMIR (Castellon et al. 2021, p-lambda/jukemir) as reused by MARBLE: the
"evaluation" songs of the MediaEval 2013 set are the test split (125); the "development" songs
go to train or validation by a hash of their normalized artist name (``artist_split``), so no
artist spans the two: 504 / 115 / 125. Targets (arousal, valence) are z-scored with the mean
and population std of the development songs (train + validation), as JukeMIR does.
"""

from __future__ import annotations

import csv
import hashlib
from functools import cached_property
from pathlib import Path

from mirformer.datasets.base import Dataset, Track, register_dataset, zscore
from mirformer.errors import ConfigError

STATIC = "static_annotations.csv"
INFO = "songs_info.csv"
AUDIO_DIR = "clips_45seconds"
TARGETS = {"arousal": "mean_arousal", "valence": "mean_valence"}  # target name -> column
SET_COLUMN = "Mediaeval 2013 set"
STATIC_COLUMNS = ("song_id", "mean_arousal", "std_arousal", "mean_valence", "std_valence")
INFO_COLUMNS = ("song_id", "Artist", "Song title", "Genre", SET_COLUMN)
ARTIST_SPLITS = ["train"] * 8 + ["validation"] * 2


def artist_split(artist: str) -> str:
    """JukeMIR's train / validation split of a development song, from its artist's name.

    The name is lower-cased, stripped of everything but ASCII letters and whitespace, its
    whitespace collapsed; the SHA-1 of that, as an integer, modulo 10 picks from 8 x train and
    2 x validation.
    """
    normalized = "".join(c for c in artist.lower() if ord(c) < 128 and (c.isalpha() or c.isspace()))
    normalized = " ".join(normalized.split())
    return ARTIST_SPLITS[int(hashlib.sha1(normalized.encode("utf-8")).hexdigest(), 16) % len(ARTIST_SPLITS)]


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows of ``path`` as ``(line number, {column: value})``, keys and values stripped."""
    # errors="replace": a stray non-UTF-8 byte only touches names, and the artist hash drops
    # every non-ASCII character anyway.
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        header = [key.strip() for key in next(reader, [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise ConfigError(f"{path}, line 1: missing column(s) {missing}; expected a header with "
                              f"{list(columns)}, found {header}")
        rows = []
        for row in reader:
            if not any(value.strip() for value in row):
                continue
            if len(row) != len(header):
                raise ConfigError(f"{path}, line {reader.line_num}: {len(row)} fields, expected "
                                  f"{len(header)} as in the header")
            rows.append((reader.line_num, {k: v.strip() for k, v in zip(header, row)}))
    return rows


def _number(row: dict[str, str], column: str, path: Path, line: int, kind=float):
    try:
        return kind(row[column])
    except ValueError:
        raise ConfigError(f"{path}, line {line}: {column} must be {'an integer' if kind is int else 'a number'}, "
                          f"got {row[column]!r}") from None


@register_dataset
class EmoMusic(Dataset):
    """Emo Music: regression of each clip's mean arousal and valence (see the module docstring).

    Parameters
    ----------
    root : str or Path
        The unpacked dataset: ``clips_45seconds/`` and the annotation CSVs.
    annotations_dir : str or Path or None
        Folder of ``static_annotations.csv`` and ``songs_info.csv``; None: ``root / "annotations"``
        where it holds them, else ``root``.
    audio_dir : str or Path or None
        Folder of the ``<song_id>.mp3`` clips; None: ``root / "clips_45seconds"``.

    Tracks are the songs of ``static_annotations.csv``, id ``str(song_id)``, targets
    ``target_names = ["arousal", "valence"]`` z-scored (stats in ``target_stats``, raw 1-9 values in
    ``meta["raw_targets"]``). ``Track.meta`` also holds ``artist``, ``title``, ``genre``,
    ``std_arousal`` and ``std_valence`` (the annotators' spread, raw scale).
    """

    name = "emomusic"
    nominal_seconds = 45.0  # Emo Music's clips are 45 s
    task = "regression"

    def __init__(self, root: str | Path, *, annotations_dir: str | Path | None = None,
                 audio_dir: str | Path | None = None):
        super().__init__(root)
        root = self.root.absolute()
        self.annotations_dir = Path(annotations_dir).expanduser().absolute() if annotations_dir else None
        self.audio_dir = Path(audio_dir).expanduser().absolute() if audio_dir else root / AUDIO_DIR
        self.target_names = list(TARGETS)

    def tracks(self) -> list[Track]:
        """The annotated songs sorted by id, each at ``audio_dir / f"{song_id}.mp3"``."""
        return list(self._loaded[0])

    @property
    def target_stats(self) -> dict:
        """``{"mean", "std"}`` of (arousal, valence) on the 1-9 scale, over train + validation."""
        return self._loaded[1]

    def _annotation(self, filename: str) -> Path:
        """Where ``filename`` is: ``annotations_dir``, else root/annotations, else root."""
        root = self.root.absolute()
        folders = [self.annotations_dir] if self.annotations_dir else [root / "annotations", root]
        for folder in folders:
            if (folder / filename).is_file():
                return folder / filename
        raise ConfigError(f"Emo Music annotation file not found: looked for "
                          f"{' and '.join(str(f / filename) for f in folders)}")

    @cached_property
    def _loaded(self) -> tuple[list[Track], dict]:
        static_path, info_path = self._annotation(STATIC), self._annotation(INFO)
        info = {}
        for line, row in _read_csv(info_path, INFO_COLUMNS):
            song = _number(row, "song_id", info_path, line, int)
            if song in info:
                raise ConfigError(f"{info_path}, line {line}: song_id {song} appears twice")
            info[song] = (line, row)
        tracks, seen = [], set()
        for line, row in _read_csv(static_path, STATIC_COLUMNS):
            song = _number(row, "song_id", static_path, line, int)
            if song in seen:
                raise ConfigError(f"{static_path}, line {line}: song_id {song} appears twice")
            seen.add(song)
            if song not in info:
                raise ConfigError(f"{info_path} has no row for song_id {song} (line {line} of {static_path}); "
                                  "expected every annotated song to be listed there")
            info_line, song_info = info[song]
            subset = song_info[SET_COLUMN].lower()
            if subset not in ("development", "evaluation"):
                raise ConfigError(f"{info_path}, line {info_line}: {SET_COLUMN} is {song_info[SET_COLUMN]!r}; "
                                  "expected 'development' or 'evaluation'")
            split = "test" if subset == "evaluation" else artist_split(song_info["Artist"])
            targets = tuple(_number(row, column, static_path, line) for column in TARGETS.values())
            meta = {"artist": song_info["Artist"], "title": song_info["Song title"], "genre": song_info["Genre"],
                    "std_arousal": _number(row, "std_arousal", static_path, line),
                    "std_valence": _number(row, "std_valence", static_path, line)}
            tracks.append(Track(str(song), self.audio_dir / f"{song}.mp3", split, targets=targets, meta=meta))
        try:
            tracks, stats = zscore(tracks, fit_on=("train", "validation"))
        except ConfigError as exc:
            raise ConfigError(f"{static_path}: {exc}") from None
        return sorted(tracks, key=lambda t: t.id), stats
