"""MTG-Jamendo (Bogdanov et al. 2019; github MTG/mtg-jamendo-dataset): multi-label auto-tagging.

``root`` is a clone of the dataset's repository, with the audio downloaded into ``root/audio``::

    data/splits/split-<n>/autotagging[_<subset>]-{train,validation,test}.tsv
    audio/NN/<number>.mp3        (the low-quality download: NN/<number>.low.mp3)

Each TSV has the header ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS`` and one row per track
with a variable number of trailing ``category---tag`` fields (``genre---rock``,
``mood/theme---happy``), tab-separated, lines ending in CRLF. The un-suffixed ``autotagging``
files hold all tags; ``_genre``, ``_instrument``, ``_moodtheme`` and ``_top50tags`` one category
or the 50 most frequent tags.

Splits are the dataset's own: five random artist-disjoint train / validation / test splits
(``split-0`` .. ``split-4``), split-0 being the one papers report. Split-0 sizes: genre
32,572 / 11,043 / 11,479 tracks (87 tags), moodtheme 9,949 / 3,802 / 4,231 (56), top50tags
32,136 / 10,888 / 11,356 (50), instrument 14,395 / 5,466 / 5,115 (40).
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from mirformer.datasets.base import SPLITS, Dataset, Track, register_dataset
from mirformer.errors import ConfigError

SUBSETS = {"all": "autotagging", "genre": "autotagging_genre", "instrument": "autotagging_instrument",
           "moodtheme": "autotagging_moodtheme", "top50tags": "autotagging_top50tags"}
HEADER = ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS"]


@register_dataset
class MTGJamendo(Dataset):
    """MTG-Jamendo: tagging with the ``category---tag`` tags of a subset (see the module docstring).

    Parameters
    ----------
    root : str or Path
        A clone of the mtg-jamendo-dataset repository.
    subset : {"all", "genre", "instrument", "moodtheme", "top50tags"}
        Which tag files: all tags, one category, or the 50 most frequent tags.
    split : int
        Split number: ``data/splits/split-<split>`` must exist (0-4 in the repository).
    audio_dir : str or Path or None
        Folder of the ``NN/<number>.mp3`` files; None: ``root / "audio"``.
    low_quality : bool
        Use the low-quality download, whose files are named ``NN/<number>.low.mp3``.
    splits_dir : str or Path or None
        Folder of the ``split-<n>`` folders; None: ``root / "data" / "splits"``.

    Track ids are the TSV's ``TRACK_ID`` (``track_0000241``), labels the full tag strings;
    ``Track.meta`` holds ``artist_id``, ``album_id`` and ``duration`` (seconds, of the full track).
    """

    name = "jamendo"
    task = "tagging"

    def __init__(self, root: str | Path, *, subset: str = "top50tags", split: int = 0,
                 audio_dir: str | Path | None = None, low_quality: bool = False,
                 splits_dir: str | Path | None = None):
        super().__init__(root)
        if subset not in SUBSETS:
            raise ConfigError(f"unknown MTG-Jamendo subset {subset!r}; known: {list(SUBSETS)}")
        if isinstance(split, bool) or not isinstance(split, int):
            raise ConfigError(f"MTG-Jamendo split must be an integer such as 0, got {split!r}")
        self.subset, self.split, self.low_quality = subset, split, low_quality
        root = self.root.absolute()
        self.audio_dir = Path(audio_dir).expanduser().absolute() if audio_dir else root / "audio"
        self.splits_dir = Path(splits_dir).expanduser().absolute() if splits_dir else root / "data" / "splits"

    def split_files(self) -> dict[str, Path]:
        """The TSV of each of train, validation and test for the chosen subset and split."""
        folder = self.splits_dir / f"split-{self.split}"
        if not folder.is_dir():
            found = sorted(int(m[1]) for p in self.splits_dir.glob("split-*")
                           if p.is_dir() and (m := re.fullmatch(r"split-(\d+)", p.name)))
            raise ConfigError(f"MTG-Jamendo split folder {folder} not found; split numbers found in "
                              f"{self.splits_dir}: {found if found else 'none'}")
        return {split: folder / f"{SUBSETS[self.subset]}-{split}.tsv" for split in SPLITS}

    def tracks(self) -> list[Track]:
        """The tracks of the three files sorted by id, each at ``audio_dir / PATH``."""
        return list(self._tracks)

    @cached_property
    def _tracks(self) -> list[Track]:
        tracks: dict[str, Track] = {}
        for split, path in self.split_files().items():
            for line, fields in self._rows(path):
                track_id, artist_id, album_id, rel, duration, *tags = fields
                if track_id in tracks:
                    raise ConfigError(f"{path}, line {line}: {track_id} is listed twice "
                                      f"(also in the {tracks[track_id].split} file)")
                try:
                    duration = float(duration)
                except ValueError:
                    raise ConfigError(f"{path}, line {line}: DURATION must be a number, got {duration!r}") from None
                if self.low_quality and rel.endswith(".mp3"):
                    rel = rel[: -len(".mp3")] + ".low.mp3"
                # An empty field (a trailing tab) is no tag.
                tracks[track_id] = Track(track_id, self.audio_dir / rel, split, labels=tuple(t for t in tags if t),
                                         meta={"artist_id": artist_id, "album_id": album_id, "duration": duration})
        return sorted(tracks.values(), key=lambda t: t.id)

    @staticmethod
    def _rows(path: Path) -> list[tuple[int, list[str]]]:
        """``(line number, fields)`` of the data lines of ``path``, header checked."""
        # Split by hand: rows have different numbers of fields, which pandas refuses.
        if not path.is_file():
            raise ConfigError(f"MTG-Jamendo split file {path} not found; expected a TSV with the header "
                              f"{' '.join(HEADER)} (tab-separated)")
        lines = path.read_text(encoding="utf-8").split("\n")  # read_text turns the CRLF ends into "\n"
        if lines[0].split("\t") != HEADER:
            raise ConfigError(f"{path}, line 1: expected the header {' '.join(HEADER)} (tab-separated), "
                              f"got {lines[0]!r}")
        rows = []
        for number, line in enumerate(lines[1:], start=2):
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) < len(HEADER):
                raise ConfigError(f"{path}, line {number}: {len(fields)} tab-separated field(s); expected "
                                  "TRACK_ID, ARTIST_ID, ALBUM_ID, PATH, DURATION and one or more tags")
            rows.append((number, fields))
        return rows
