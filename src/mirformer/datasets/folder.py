"""A folder of class folders: single-label classification of the user's own audio.

Either of two layouts under ``root``::

    <class>/<any depth>/<file>.<ext>                   split at random, stratified by class
    train/<class>/.../<file>.<ext>                     the split the user already made
    validation/<class>/...  (or valid/, or val/)
    test/<class>/...

``<ext>`` is one that libsndfile decodes: wav, flac, mp3, ogg, au, aiff, aif (any case). Hidden
files and folders (name starting with ".") and other files are ignored. A track's id is its path
relative to ``root`` in POSIX form (``dog/bark1.wav``, ``train/dog/bark1.wav``).

Without the split folders, each class's files go to train / validation / test by
``random_split`` (seeded, ``fractions`` of each class, default 80/10/10).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from mirformer.datasets.base import Dataset, Track, random_split, register_dataset
from mirformer.errors import ConfigError

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".au", ".aiff", ".aif"})
SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "valid", "val"), "test": ("test",)}


def _audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder`` at any depth, hidden files and folders skipped."""
    files = []
    # followlinks: class folders are often assembled from symlinks to the user's collection.
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS]
    return files


def _labelled_files(folder: Path, root: Path) -> dict[str, str]:
    """Id (path relative to ``root``) -> class, for the audio in each non-hidden subfolder of ``folder``."""
    labels = {}
    for sub in sorted(folder.iterdir()):
        if sub.is_dir() and not sub.name.startswith("."):
            labels.update((f.relative_to(root).as_posix(), sub.name) for f in _audio_files(sub))
    return labels


@register_dataset
class ClassFolder(Dataset):
    """Classification by folder name (see the module docstring for the two layouts).

    Parameters
    ----------
    root : str or Path
        Folder holding one folder per class, or ``train``, ``validation`` (``valid``, ``val``) and
        ``test`` folders that each hold class folders.
    seed : int
        Seeds the random split; ignored with split folders.
    fractions : (float, float, float)
        Train / validation / test share of each class in the random split; ignored with split
        folders.
    """

    name = "folder"
    task = "classification"

    def __init__(self, root: str | Path, *, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)):
        super().__init__(root)
        self.seed, self.fractions = seed, tuple(fractions)

    def split_folders(self) -> dict[str, Path] | None:
        """Split -> its folder when ``root`` holds all three split folders, else None."""
        root = self.root.absolute()
        folders = {}
        for split, names in SPLIT_FOLDERS.items():
            present = [root / n for n in names if (root / n).is_dir()]
            if not present:
                return None
            if len(present) > 1:
                raise ConfigError(f"{root} holds {len(present)} validation folders {[p.name for p in present]}; "
                                  "keep one")
            folders[split] = present[0]
        return folders

    def tracks(self) -> list[Track]:
        """One track per audio file, sorted by id."""
        return list(self._tracks)

    @cached_property
    def _tracks(self) -> list[Track]:
        root = self.root.absolute()
        if not root.is_dir():
            raise ConfigError(f"dataset folder {root} not found; expected a folder holding one folder per class")
        folders = self.split_folders()
        if folders is None:
            labels = _labelled_files(root, root)
            splits = random_split(list(labels), list(labels.values()), seed=self.seed, fractions=self.fractions)
        else:
            labels, splits = {}, {}
            for split, folder in folders.items():
                in_split = _labelled_files(folder, root)
                if not in_split:
                    raise ConfigError(f"split folder {folder} holds no class folder with audio files "
                                      f"(extensions {sorted(AUDIO_EXTENSIONS)})")
                labels.update(in_split)
                splits.update(dict.fromkeys(in_split, split))
        classes = sorted(set(labels.values()))
        if len(classes) < 2:
            raise ConfigError(f"{root} holds {len(classes)} class folder(s) with audio files {classes}; expected "
                              f"at least two, each holding files with an extension in {sorted(AUDIO_EXTENSIONS)}")
        return [Track(i, root / i, splits[i], label=labels[i]) for i in sorted(labels)]
