"""GTZAN genre collection (Tzanetakis & Cook 2002): 1,000 clips of 30 s, 100 per genre.

Any of these layouts under ``root`` (22,050 Hz mono 16-bit files, ``.au`` or ``.wav``)::

    genres/<genre>/<genre>.000NN.au                   the original archive
    Data/genres_original/<genre>/<genre>.000NN.wav    the Kaggle copy
    <genre>/<genre>.000NN.wav                         ``root`` is the genres folder itself

The default split is the fault-filtered one of Kereliuk, Sturm & Larsen (2015), 443 / 197 /
290 files, shipped as package data in ``splits/gtzan`` (see its README); ``split="random"``
deals the files found on disk 80/10/10 within each genre instead.
"""

from __future__ import annotations

import re
from functools import cached_property
from importlib.resources import files
from pathlib import Path

from mirformer.datasets.base import Dataset, Track, random_split, register_dataset
from mirformer.errors import ConfigError

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
LAYOUTS = ("genres", "Data/genres_original", ".")  # genres folders looked for under root, in order
EXTENSIONS = (".wav", ".au")
SPLIT_FILES = {"train": "train_filtered.txt", "validation": "valid_filtered.txt", "test": "test_filtered.txt"}
SPLIT_OPTIONS = ("filtered", "random")


def filtered_split() -> dict[str, str]:
    """The fault-filtered split: listed path (``blues/blues.00029.wav``) -> split."""
    lists = files("mirformer.datasets") / "splits" / "gtzan"
    return {line.strip(): split for split, name in SPLIT_FILES.items()
            for line in (lists / name).read_text().splitlines() if line.strip()}


@register_dataset
class GTZAN(Dataset):
    """GTZAN music genres, ten classes (see the module docstring).

    Parameters
    ----------
    root : str or Path
        Folder holding ``genres``, ``Data/genres_original`` or the ten genre folders.
    split : {"filtered", "random"}
        "filtered": the 930 files of the fault-filtered split, listed ones absent from disk
        included (``validate`` reports them missing). "random": every ``<genre>.NNNNN`` file
        found on disk, split 80/10/10 within each genre by ``random_split``.
    seed : int
        Seed of the random split (unused by "filtered").
    """

    name = "gtzan"
    nominal_seconds = 30.0  # GTZAN's clips are 30 s
    task = "classification"
    known_bad = {"jazz.00054": "listed as corrupt in the Kaggle copy of GTZAN"}

    def __init__(self, root: str | Path, *, split: str = "filtered", seed: int = 0):
        super().__init__(root)
        if split not in SPLIT_OPTIONS:
            raise ConfigError(f"unknown GTZAN split {split!r}; known: {list(SPLIT_OPTIONS)}")
        self.split, self.seed = split, seed
        root = self.root.absolute()
        found = [root / layout for layout in LAYOUTS
                 if any((root / layout / genre).is_dir() for genre in GENRES)]
        if not found:
            raise ConfigError(f"no GTZAN genre folders ({', '.join(GENRES)}) under {root}; looked for "
                              + ", ".join(f"{layout}/<genre>/<genre>.000NN.wav|au" for layout in LAYOUTS))
        self.genres_dir = found[0]  # root / "." is root itself

    def tracks(self) -> list[Track]:
        """One track per clip, id = file stem (``jazz.00054``), label = genre, sorted by id."""
        return list(self._tracks)

    @cached_property
    def _tracks(self) -> list[Track]:
        if self.split == "filtered":
            tracks = [Track(Path(rel).stem, self._find(rel), split, label=rel.split("/")[0])
                      for rel, split in filtered_split().items()]
        else:
            paths = self._on_disk()
            if not paths:
                raise ConfigError(f"no GTZAN audio files (<genre>/<genre>.NNNNN.wav|au) in {self.genres_dir}")
            stems = sorted(paths)
            genres = [stem.split(".")[0] for stem in stems]
            splits = random_split(stems, genres, seed=self.seed)
            tracks = [Track(stem, paths[stem], splits[stem], label=genre) for stem, genre in zip(stems, genres)]
        return sorted(tracks, key=lambda t: t.id)

    def _find(self, rel: str) -> Path:
        """The listed file with whichever extension exists; as listed when none does."""
        listed = self.genres_dir / rel
        for ext in EXTENSIONS:
            if listed.with_suffix(ext).is_file():
                return listed.with_suffix(ext)
        return listed

    def _on_disk(self) -> dict[str, Path]:
        """Stem -> file of every clip on disk; a stem with both a .wav and an .au takes the .wav."""
        paths = {}
        for genre in GENRES:
            for ext in EXTENSIONS:
                pattern = re.compile(rf"{genre}\.\d{{5}}{re.escape(ext)}")  # not macOS "._" files or notes
                for path in sorted((self.genres_dir / genre).glob(f"*{ext}")):
                    if pattern.fullmatch(path.name) and path.is_file():
                        paths.setdefault(path.stem, path)
        return paths
