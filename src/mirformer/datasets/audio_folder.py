"""``audio``: a user's own collection of unlabelled audio, for pretraining.

``root`` is a folder, searched recursively for audio files, or a text file listing one path per
line (relative to the file's folder, or absolute; ``#`` starts a comment). Files of any length
are used through random windows; unreadable or too-short files are reported and skipped like
every dataset's. There are no labels: the dataset can only be a pretraining set
(``pretrain.data``). Tracks are dealt to train and validation by a hash of their path, so adding
files never moves the others.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mirformer.datasets.base import Dataset, Track, register_dataset
from mirformer.errors import ConfigError

EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".au", ".aif", ".aiff")


@register_dataset
class AudioFolder(Dataset):
    """Unlabelled audio files under a folder or listed in a text file.

    Parameters
    ----------
    root : str or Path
        A folder (searched recursively for ``EXTENSIONS``, any case) or a text file of paths.
    validation : float in (0, 1)
        Share of the files dealt to the validation split (at least one file).
    """

    name = "audio"
    task = None

    def __init__(self, root: str | Path, *, validation: float = 0.05):
        super().__init__(root)
        if not 0 < validation < 1:
            raise ConfigError(f"audio: validation must be a share in (0, 1), got {validation!r}")
        self.validation = validation

    def _paths(self) -> dict[str, Path]:
        """Track id (the path as listed, or relative to the folder) -> file."""
        if self.root.is_dir():
            return {str(p.relative_to(self.root)): p for p in sorted(self.root.rglob("*"))
                    if p.suffix.lower() in EXTENSIONS and p.is_file()}
        if self.root.is_file():
            paths = {}
            for line in self.root.read_text().splitlines():
                entry = line.split("#", 1)[0].strip()
                if entry:
                    path = Path(entry).expanduser()
                    paths[entry] = path if path.is_absolute() else self.root.parent / path
            return paths
        raise ConfigError(f"audio: {self.root} is neither a folder of audio nor a text file listing audio files")

    def tracks(self) -> list[Track]:
        paths = self._paths()
        if not paths:
            raise ConfigError(f"audio: no audio files ({', '.join(EXTENSIONS)}) in {self.root}")

        def share(track_id: str) -> float:
            return int(hashlib.sha1(track_id.encode()).hexdigest()[:8], 16) / 16**8

        ids = sorted(paths)
        validation = {i for i in ids if share(i) < self.validation} or {min(ids, key=share)}
        if len(validation) == len(ids) > 1:
            validation.discard(max(ids, key=share))
        return [Track(i, paths[i], "validation" if i in validation else "train") for i in ids]

    def require_labels(self) -> None:
        raise ConfigError(f"audio ({self.root}) has no labels: it can be a pretraining set (--set pretrain.data="
                          "{name: audio, root: DIR}), not a downstream one")
