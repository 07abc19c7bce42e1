"""Reading random training windows from a feature store that the page cache cannot keep warm,
against the thesis code's way (one ``torch.load`` of a per-track tensor file per window), and the
rounding of a float16 store, in one run.

A store of synthetic thesis-size tracks (30 s: 10,336 frames x 86 bands) is built in float16,
and the same tracks as per-track float32 ``.pt`` files. Before each case every file is evicted
from the page cache (``posix_fadvise(DONTNEED)``), so reads come from the disk as they would for
a store larger than memory. Each case reads ``--windows`` random 1,344-frame windows (random
track, random start) in batches of 64 through a ``DataLoader`` with 0, 2 and 4 workers and
prints windows per second. Then the float16 store's worst rounding error, in dB, against float32
log-mel of the built-in corpus' clips when they are rendered, or of synthetic notes otherwise.

    python benchmarks/bench_store.py --tracks 400 --windows 1500
"""

from __future__ import annotations

import argparse
import warnings
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mirformer.representations.mel import THESIS, LogMel

FRAMES, BANDS, WINDOW = 10336, 86, 1344


def evict(path: Path) -> None:
    """Drop ``path``'s pages from the page cache: the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class StoreWindows(Dataset):
    """Random windows from one memory-mapped (total_frames, bands) array, as ``RandomSnippets`` reads."""

    def __init__(self, path: Path, n_tracks: int, n: int):
        self.path, self.n_tracks, self.n, self.data = path, n_tracks, n, None

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.data is None:  # opened in each worker
            self.data = np.load(self.path, mmap_mode="r")
        g = np.random.default_rng(i)
        track, start = g.integers(self.n_tracks), g.integers(FRAMES - WINDOW)
        return torch.from_numpy(np.array(self.data[track * FRAMES + start : track * FRAMES + start + WINDOW],
                                         dtype=np.float32))


class ThesisWindows(StoreWindows):
    """The thesis code's way: ``torch.load`` the whole per-track file, crop a window."""

    def __getitem__(self, i):
        g = np.random.default_rng(i)
        track, start = g.integers(self.n_tracks), g.integers(FRAMES - WINDOW)
        return torch.load(self.path / f"{track}.pt")[start : start + WINDOW]


def windows_per_second(dataset: Dataset, files: list[Path], workers: int) -> float:
    for f in files:
        evict(f)
    loader = DataLoader(dataset, batch_size=64, num_workers=workers, shuffle=False)
    t0 = time.perf_counter()
    n = sum(len(batch) for batch in loader)
    return n / (time.perf_counter() - t0)


def float16_error(seconds: float = 30.0) -> tuple[float, str]:
    """Worst |float16 - float32| in dB of thesis-setting log-mel (ref 1.0, as the thesis preset)."""
    from mirformer import paths
    from mirformer.audio import load_audio

    clips = sorted((paths.datasets_dir() / "music21-styles").glob("*/audio/**/*.flac"))[:40]
    if clips:
        signals, source = [load_audio(c, sr=44100) for c in clips], f"{len(clips)} clips of the built-in corpus"
    else:
        rng, t = np.random.default_rng(0), np.arange(int(seconds * 44100)) / 44100
        signals = [sum(0.1 * np.sin(2 * np.pi * 110 * 2 ** (rng.integers(36) / 12) * t) for _ in range(3))
                   .astype(np.float32) for _ in range(5)]
        source = "5 synthetic chords (no built-in corpus rendered)"
    rep = LogMel(THESIS)
    worst = max(float(np.abs(m - m.astype(np.float16).astype(np.float32)).max()) for m in map(rep.encode, signals))
    return worst, source


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracks", type=int, default=400)
    p.add_argument("--windows", type=int, default=1500)
    p.add_argument("--dir", type=Path, help="where to build the stores (default: a temporary folder)")
    args = p.parse_args()
    warnings.filterwarnings("ignore", message=".*worker processes in total.*")  # 4 workers on 2 cores: on purpose
    work = Path(tempfile.mkdtemp(prefix="mirformer-store-", dir=args.dir))
    try:
        store = work / "features.npy"
        data = np.lib.format.open_memmap(store, mode="w+", dtype=np.float16, shape=(args.tracks * FRAMES, BANDS))
        (work / "thesis").mkdir()
        rng = np.random.default_rng(0)
        for track in range(args.tracks):
            x = (rng.standard_normal((FRAMES, BANDS)) * 10 - 40).astype(np.float32)
            data[track * FRAMES : (track + 1) * FRAMES] = x
            torch.save(torch.from_numpy(x), work / "thesis" / f"{track}.pt")
        data.flush()
        del data
        thesis_files = sorted((work / "thesis").glob("*.pt"))
        print(f"{args.tracks} tracks of {FRAMES} x {BANDS}: store {store.stat().st_size / 1e9:.2f} GB (float16), "
              f"thesis files {sum(f.stat().st_size for f in thesis_files) / 1e9:.2f} GB (float32); "
              f"{args.windows} random windows of {WINDOW} frames from a cold page cache")
        for workers in (0, 2, 4):
            ours = windows_per_second(StoreWindows(store, args.tracks, args.windows), [store], workers)
            theirs = windows_per_second(ThesisWindows(work / "thesis", args.tracks, args.windows), thesis_files,
                                        workers)
            print(f"{workers} loader workers: memory-mapped store {ours:8.0f} windows/s, torch.load per window "
                  f"{theirs:7.0f} windows/s ({ours / theirs:.1f}x)")
        worst, source = float16_error()
        print(f"float16 store: worst rounding {worst:.4f} dB against float32 on {source}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
