"""Torch datasets that read fixed-length snippets straight from a feature store's memory map.

Training draws one random crop per track per epoch; evaluation tiles each clip with windows
whose logits are averaged per clip. Tracks shorter than a window are padded and the padding is
marked (``pad: True = padding``) so the encoder never attends to it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from mirformer.representations.store import FeatureStore


def window_starts(n_frames: int, length: int) -> list[int]:
    """Starts of windows of ``length`` covering ``n_frames``; the last one ends at the clip's end."""
    if n_frames <= length:
        return [0]
    starts = list(range(0, n_frames - length + 1, length))
    if starts[-1] + length < n_frames:
        starts.append(n_frames - length)
    return starts


class _StoreSnippets(Dataset):
    def __init__(self, store: FeatureStore, track_ids: list[str], targets: list[int] | None, *,
                 length: int, mean: np.ndarray | None = None, std: np.ndarray | None = None):
        self.store = store
        self.ids = list(track_ids)
        self.targets = targets
        self.length = length
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.inv_std = None if std is None else (1.0 / np.asarray(std, np.float32))
        self.entries = [store.entry(i) for i in self.ids]
        # Token ids stay integers (embedding lookups); features become float32.
        self.dtype = np.int64 if np.issubdtype(store.representation.dtype, np.integer) else np.float32

    def _read(self, track: int, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.entries[track]
        x = np.array(self.store.data[e.offset + start : e.offset + min(e.n_frames, start + self.length)],
                     dtype=self.dtype)
        if self.mean is not None:
            x = (x - self.mean) * self.inv_std
        pad = torch.zeros(self.length, dtype=torch.bool)
        if len(x) < self.length:
            pad[len(x):] = True
            x = np.concatenate([x, np.zeros((self.length - len(x),) + x.shape[1:], self.dtype)])
        return torch.from_numpy(x), pad

    def _item(self, track: int, start: int) -> dict:
        x, pad = self._read(track, start)
        item = {"x": x, "pad": pad, "track": track}
        if self.targets is not None:
            item["y"] = self.targets[track]
        return item


class RandomSnippets(_StoreSnippets):
    """One random crop of ``length`` frames per track per epoch.

    Items: ``x`` (length, dim) float32 normalised features or (length,) int64 token ids,
    ``pad`` (length,) bool, ``y`` int, ``track`` int.
    """

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        n = self.entries[i].n_frames
        # torch's generator: seeded by Lightning's seed_everything and distinct per loader worker.
        start = int(torch.randint(0, n - self.length + 1, ())) if n > self.length else 0
        return self._item(i, start)


class TiledSnippets(_StoreSnippets):
    """Every window of every track (see ``window_starts``); ``track`` groups windows by clip."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.windows = [(t, s) for t, e in enumerate(self.entries) for s in window_starts(e.n_frames, self.length)]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        return self._item(*self.windows[i])


class CentredSnippets(_StoreSnippets):
    """One window per track, centred on the clip: a cheaper per-epoch validation than every
    window (``TiledSnippets``), which the final scores always read."""

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict:
        return self._item(i, max(0, (self.entries[i].n_frames - self.length) // 2))
