"""MagnaTagATune (Law et al. 2009): 25,863 clips of about 29 s with 188 crowd-sourced tags.

Expected layout under ``root`` (16 kHz mono MP3s)::

    annotations_final.csv   TAB-separated despite its name, fields possibly quoted: clip_id,
                            188 tag columns of 0/1 (tag names as headers), mp3_path
    0/ ... f/               the 16 hex folders of the clips; mp3_path is relative to root,
                            e.g. f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3

Tags are the ``n_tags`` most frequent tag columns over the whole file (the usual top 50).
The split is the standard one of JukeMIR / MARBLE, by the hex folder of each clip: 0-b train,
c validation, d-f test (18,706 / 1,825 / 5,329 clips).
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from mirformer.datasets.base import Dataset, Track, register_dataset
from mirformer.errors import ConfigError

logger = logging.getLogger(__name__)

SPLIT_OF_FOLDER = {**dict.fromkeys("0123456789ab", "train"), "c": "validation", **dict.fromkeys("def", "test")}
_EMPTY = "listed as empty in MagnaTagATune"


@register_dataset
class MagnaTagATune(Dataset):
    """MagnaTagATune multi-label tagging over its most frequent tags (see the module docstring).

    Parameters
    ----------
    root : str or Path
        Folder holding ``annotations_final.csv`` and the hex folders ``0`` to ``f``.
    n_tags : int >= 1
        Number of tags: the most frequent tag columns, ties broken by column order.
    audio_dir : str or Path or None
        Folder that ``mp3_path`` is relative to; None: ``root``.
    annotations : str or Path or None
        The annotations file; None: ``root / "annotations_final.csv"``.

    Every clip is kept, also one with none of the tags (``labels == ()``). A row without a
    usable ``mp3_path`` (none in the real file) has no split: it is left out with a warning.
    ``Track.meta`` holds ``mp3_path``.
    """

    name = "mtat"
    nominal_seconds = 29.0  # MagnaTagATune's clips are 29.1 s
    task = "tagging"
    known_bad = {"35644": _EMPTY, "55753": _EMPTY, "57881": _EMPTY}

    def __init__(self, root: str | Path, *, n_tags: int = 50, audio_dir: str | Path | None = None,
                 annotations: str | Path | None = None):
        super().__init__(root)
        if isinstance(n_tags, bool) or not isinstance(n_tags, int) or n_tags < 1:
            raise ConfigError(f"MagnaTagATune n_tags must be an integer >= 1, got {n_tags!r}")
        self.n_tags = n_tags
        root = self.root.absolute()
        self.audio_dir = Path(audio_dir).expanduser().absolute() if audio_dir else root
        self.annotations = Path(annotations).expanduser().absolute() if annotations else root / "annotations_final.csv"

    def tracks(self) -> list[Track]:
        """One track per clip, id = ``str(clip_id)``, sorted by id."""
        return list(self._parsed[1])

    def classes(self) -> list[str]:
        """The ``n_tags`` tags, most frequent first."""
        return list(self._parsed[0])

    @cached_property
    def _parsed(self) -> tuple[list[str], list[Track]]:
        """(top tags in frequency order, tracks)."""
        path = self.annotations
        expected = "a TAB-separated annotations_final.csv: clip_id, 0/1 tag columns, mp3_path"
        if not path.is_file():
            raise ConfigError(f"MagnaTagATune annotations file {path} not found; expected {expected}")
        try:
            df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
            df.columns = df.columns.str.strip()
            tags = list(df.columns[1:-1])
            if df.columns[0] != "clip_id" or df.columns[-1] != "mp3_path" or not tags:
                raise ValueError(f"columns are {df.columns[0]!r}, ..., {df.columns[-1]!r}")
            onehot = df[tags].astype("int64").to_numpy()
            if not np.isin(onehot, (0, 1)).all():
                raise ValueError("tag columns hold values other than 0 and 1")
            ids = df["clip_id"].str.strip().astype("int64").astype(str)
            if ids.duplicated().any():
                raise ValueError(f"clip ids {sorted(set(ids[ids.duplicated()]))[:5]} occur twice")
        except ValueError as exc:  # ParserError, EmptyDataError and UnicodeDecodeError are ValueErrors
            raise ConfigError(f"cannot parse MagnaTagATune annotations file {path} ({exc}); "
                              f"expected {expected}") from None
        if self.n_tags > len(tags):
            raise ConfigError(f"MagnaTagATune n_tags={self.n_tags} but {path} has only {len(tags)} tag columns")
        counts = onehot.sum(axis=0)
        top = sorted(range(len(tags)), key=lambda j: -counts[j])[:self.n_tags]  # stable: ties keep column order
        names = np.array([tags[j] for j in top], dtype=object)
        tracks, skipped = [], []
        for clip_id, rel, row in zip(ids, df["mp3_path"].str.strip(), onehot[:, top].astype(bool)):
            split = SPLIT_OF_FOLDER.get(rel[:1].lower())
            if split is None or rel[1:2] != "/":
                skipped.append(clip_id)
                continue
            tracks.append(Track(clip_id, self.audio_dir / rel, split, labels=tuple(names[row]),
                                meta={"mp3_path": rel}))
        if skipped:
            logger.warning("MagnaTagATune: left out %d clips of %s whose mp3_path is empty or not in a hex "
                           "folder 0-f: %s", len(skipped), path, ", ".join(skipped[:20]))
        return list(names), sorted(tracks, key=lambda t: t.id)
