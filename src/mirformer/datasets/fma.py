"""FMA, the Free Music Archive dataset (Defferrard et al. 2017; github mdeff/fma).

The metadata archive and one audio archive unzipped side by side under ``root``::

    fma_metadata/tracks.csv       one row per track; written by pandas with two-level columns,
                                  so it has three header lines (group, column, ``track_id``)
    fma_metadata/genres.csv       genre_id,#tracks,parent,title,top_level (163 genres)
    fma_<subset>/NNN/NNNNNN.mp3   the 6-digit zero-padded track id; NNN = its first 3 digits

Subsets nest: small (8,000 clips of 30 s, 8 balanced genres) < medium (25,000, 16 unbalanced
top genres) < large (106,574); full holds the same 106,574 tracks untrimmed. Splits are the
dataset's own artist-filtered ``("set", "split")`` column, about 80/10/10 (medium: 19,922 /
2,505 / 2,573).
"""

from __future__ import annotations

import ast
from functools import cached_property
from pathlib import Path

import pandas as pd

from mirformer.datasets.base import Dataset, Track, register_dataset
from mirformer.errors import ConfigError

SUBSETS = ("small", "medium", "large", "full")
LABELS = ("genre_top", "genres_all")
NESTED = ("small", "medium", "large")  # the ordered ("set", "subset") categories
SPLIT_NAMES = {"training": "train", "validation": "validation", "test": "test"}
COLUMNS = [("set", "split"), ("set", "subset"), ("track", "genre_top"), ("track", "genres"),
           ("track", "genres_all"), ("track", "duration"), ("artist", "name"), ("album", "id")]

_NO_AUDIO = "listed as holding no audio in FMA"
_TRIMMED = "listed as badly trimmed in mdeff/fma#8"
_TRIMMED_IDS = (1486, 5574, 65753, 80391, 98558, 98559, 98560, 98565, 98566, 98567, 98568, 98569,
                98571, 99134, 105247, 108924, 108925, 126981, 127336, 133297, 143992)
_NO_AUDIO_IDS = (99134, 108925, 133297)  # also in the trimmed list; their note is the stronger one


def track_id(number: int) -> str:
    """FMA's 6-digit zero-padded id: 2 -> ``"000002"``."""
    return f"{int(number):06d}"


def _read_csv(path: Path, expected: str, **kwargs) -> pd.DataFrame:
    """``pd.read_csv`` that turns a missing or unparsable file into a ConfigError naming it."""
    if not path.is_file():
        raise ConfigError(f"FMA metadata file {path} not found; expected {expected}")
    try:
        return pd.read_csv(path, low_memory=False, **kwargs)  # one dtype per column, no DtypeWarning
    except ValueError as exc:  # ParserError, EmptyDataError and UnicodeDecodeError are ValueErrors
        raise ConfigError(f"cannot parse FMA metadata file {path} ({exc}); expected {expected}") from None


def _genre_ids(cell, path: Path) -> tuple[int, ...]:
    """A genre-list cell of ``path`` (a Python list repr such as ``[17, 10, 76]``) as a tuple of ids."""
    try:
        return tuple(int(i) for i in ast.literal_eval(cell))
    except (ValueError, TypeError, SyntaxError):
        raise ConfigError(f"FMA metadata file {path} has genre list {cell!r}; expected a Python list "
                          "of genre ids such as [17, 10, 76]") from None


def _scalar(value, kind):
    """A cell as a plain ``kind`` (int, float, str), or None where it is empty."""
    return None if pd.isna(value) else kind(value)


@register_dataset
class FMA(Dataset):
    """The Free Music Archive: top genre (classification) or all genres (tagging) of each track.

    Parameters
    ----------
    root : str or Path
        Folder holding ``fma_metadata`` and the ``fma_<subset>`` audio folder.
    subset : {"small", "medium", "large", "full"}
        Tracks to use; subsets nest, so "medium" includes small. "large" and "full" are the
        same 106,574 tracks, as 30 s clips and untrimmed respectively.
    labels : {"genre_top", "genres_all"}
        "genre_top": one class per track, its top-level genre; tracks without a single top
        genre (only in large/full) are left out. "genres_all": tagging over every genre of the
        track and their ancestors, named by their titles in ``genres.csv`` (sorted).
    audio_dir : str or Path or None
        Folder of the ``NNN/NNNNNN.mp3`` files; None: ``root / f"fma_{subset}"``.
    metadata_dir : str or Path or None
        Folder of ``tracks.csv`` and ``genres.csv``; None: ``root / "fma_metadata"``.

    ``Track.meta`` holds ``artist`` (name or None), ``album_id``, ``duration`` (seconds, of the
    full track), ``genres`` (the track's own genre ids) and ``genres_all`` (with ancestors).
    """

    name = "fma"
    nominal_seconds = 30.0  # small, medium and large are 30 s clips (full: whole tracks, see __init__)
    known_bad = {**{track_id(i): _TRIMMED for i in _TRIMMED_IDS}, **{track_id(i): _NO_AUDIO for i in _NO_AUDIO_IDS}}

    def __init__(self, root: str | Path, *, subset: str = "medium", labels: str = "genre_top",
                 audio_dir: str | Path | None = None, metadata_dir: str | Path | None = None):
        super().__init__(root)
        if subset not in SUBSETS:
            raise ConfigError(f"unknown FMA subset {subset!r}; known: {list(SUBSETS)}")
        if labels not in LABELS:
            raise ConfigError(f"unknown FMA labels {labels!r}; known: {list(LABELS)}")
        self.subset, self.labels = subset, labels
        if subset == "full":
            self.nominal_seconds = None
        self.task = "classification" if labels == "genre_top" else "tagging"
        root = self.root.absolute()
        self.audio_dir = Path(audio_dir).expanduser().absolute() if audio_dir else root / f"fma_{subset}"
        self.metadata_dir = Path(metadata_dir).expanduser().absolute() if metadata_dir else root / "fma_metadata"

    def tracks(self) -> list[Track]:
        """Tracks of the subset sorted by id, each at ``audio_dir / NNN / NNNNNN.mp3``."""
        return list(self._tracks)

    @cached_property
    def _tracks(self) -> list[Track]:
        df = self._read_tracks()
        if self.labels == "genre_top":
            df = df[df["genre_top"].notna()]
        else:
            titles = self._read_genre_titles()
            unknown = sorted({g for ids in df["genres_all"] for g in ids} - set(titles))
            if unknown:
                raise ConfigError(f"FMA metadata file {self.metadata_dir / 'tracks.csv'} has genre ids {unknown} "
                                  f"that {self.metadata_dir / 'genres.csv'} does not list")
        out = []
        for number, row in zip(df.index, df.itertuples(index=False)):
            tid = track_id(number)
            path = self.audio_dir / f"{tid[:3]}/{tid}.mp3"
            meta = {"artist": _scalar(row.artist, str), "album_id": _scalar(row.album_id, int),
                    "duration": _scalar(row.duration, float), "genres": row.genres, "genres_all": row.genres_all}
            if self.labels == "genre_top":
                out.append(Track(tid, path, row.split, label=row.genre_top, meta=meta))
            else:
                out.append(Track(tid, path, row.split, labels=tuple(sorted(titles[g] for g in row.genres_all)),
                                 meta=meta))
        return sorted(out, key=lambda t: t.id)

    def _read_tracks(self) -> pd.DataFrame:
        """The subset's rows of tracks.csv, COLUMNS flattened to their second-level names
        (``artist``, ``album_id`` for the two that clash), splits renamed to ``SPLITS`` and genre
        lists parsed to tuples of ids."""
        path = self.metadata_dir / "tracks.csv"
        expected = ("FMA's tracks.csv: three header lines (column group, column name, track_id) "
                    f"and columns {COLUMNS}")
        df = _read_csv(path, expected, index_col=0, header=[0, 1])
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise ConfigError(f"FMA metadata file {path} lacks columns {missing}; expected {expected}")
        if not pd.api.types.is_integer_dtype(df.index):
            raise ConfigError(f"FMA metadata file {path} has non-integer track ids; expected {expected}")
        df = df[COLUMNS].set_axis(["split", "subset", "genre_top", "genres", "genres_all", "duration",
                                   "artist", "album_id"], axis=1)
        if self.subset in ("small", "medium"):
            subset = pd.Categorical(df["subset"], categories=NESTED, ordered=True)
            df = df[subset <= self.subset]
        unknown = sorted(set(df["split"]) - set(SPLIT_NAMES), key=str)
        if unknown:
            raise ConfigError(f"FMA metadata file {path} has ('set', 'split') values {unknown}; "
                              f"expected {sorted(SPLIT_NAMES)}")
        # Parse each distinct list once: 106,574 rows share a few thousand genre lists.
        lists = {column: {cell: _genre_ids(cell, path) for cell in df[column].unique()}
                 for column in ("genres", "genres_all")}
        return df.assign(split=df["split"].map(SPLIT_NAMES), genres=df["genres"].map(lists["genres"]),
                         genres_all=df["genres_all"].map(lists["genres_all"]))

    def _read_genre_titles(self) -> dict[int, str]:
        path = self.metadata_dir / "genres.csv"
        expected = "FMA's genres.csv with columns genre_id,#tracks,parent,title,top_level"
        df = _read_csv(path, expected)
        if not {"genre_id", "title"} <= set(df.columns) or not pd.api.types.is_integer_dtype(df["genre_id"]):
            raise ConfigError(f"FMA metadata file {path} lacks integer genre_id or title columns; expected {expected}")
        return dict(zip(df["genre_id"].tolist(), df["title"].tolist()))
