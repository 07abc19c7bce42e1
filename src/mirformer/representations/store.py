"""The feature store: each (dataset, representation config) computed once, memory-mapped.

Layout of one store (``<features_dir>/<dataset>/<representation>-<key>/``)::

    parts/<track id>.npz      one file per track while extracting (resumable, atomic): the
                              features and the decoded length in samples
    parts/<track id>.failed   instead, for a file that cannot be decoded: the reason
    features.npy              all tracks concatenated along frames, shape (total_frames, dim)
    index.json                {"config": ..., "tracks": {id: [offset, n_frames]},
                               "seconds": {id: decoded duration}, "failed": {id: reason}}

A track fails only when it cannot be decoded (missing, empty, corrupt, silent); whether it is
long enough is the caller's rule, applied to ``seconds`` (``mirformer.audio.too_short``).

``key`` hashes the dataset identity and the representation's ``config_dict``, so a changed
parameter never reuses stale features. Extraction writes parts in parallel, possibly from
several processes or cluster jobs each taking a shard of the tracks; then one atomic
consolidation turns them into ``features.npy`` + ``index.json`` and removes the parts.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from mirformer.atomic import atomic_path, write_json, write_text
from mirformer.errors import AudioError, MirformerError
from mirformer.representations.base import Representation


class Item(Protocol):
    """What the store needs of a track: its id and its audio file (labels are never read)."""

    id: str
    path: Path


# Bumped when the layout changes, so an older store is rebuilt rather than misread.
STORE_VERSION = 2


def store_key(dataset_id: str, representation: Representation) -> str:
    """Short hash of everything that determines the stored features."""
    blob = json.dumps(
        {"dataset": dataset_id, "representation": representation.name, "config": representation.config_dict(),
         "version": STORE_VERSION},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _part_name(track_id: str) -> str:
    # Track ids may contain path separators (e.g. "blues/blues.00001"); keep part names flat.
    return track_id.replace(os.sep, "__").replace("/", "__") + ".npz"


def _failed_name(track_id: str) -> str:
    return _part_name(track_id)[: -len(".npz")] + ".failed"


def _note_failure(parts: Path, track_id: str, reason: str | None) -> None:
    """A failed track's reason as a part of its own, so the shard that consolidates knows it."""
    if reason is not None:
        write_text(parts / _failed_name(track_id), reason)


def _encode_one(representation: Representation, track: Item, part: Path) -> tuple[str, str | None]:
    """Worker: read (decode + encode) one track into its part file; return (id, failure reason or None)."""
    t0 = time.perf_counter()
    try:
        feats, samples = representation.read(track)
    except AudioError as exc:
        return track.id, exc.cause
    with atomic_path(part) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, features=feats.astype(representation.dtype, copy=False), samples=samples,
                     encode_seconds=time.perf_counter() - t0)
    return track.id, None


@dataclass
class Entry:
    offset: int
    n_frames: int


class FeatureStore:
    """Memory-mapped features of one dataset under one representation config.

    Parameters
    ----------
    root : Path
        Parent directory; the store lives in ``root / dataset_id / f"{name}-{key}"``.
    dataset_id : str
        Identity of the dataset (name plus anything that changes its audio, e.g. its root).
    representation : Representation
        The representation whose ``config_dict`` keys the store.
    """

    def __init__(self, root: str | Path, dataset_id: str, representation: Representation):
        self.representation = representation
        self.key = store_key(dataset_id, representation)
        safe_id = dataset_id.replace("/", "_").replace(os.sep, "_")[:80]
        self.dir = Path(root) / safe_id / f"{representation.name}-{self.key}"
        self.dataset_id = dataset_id
        self._data: np.ndarray | None = None
        self._index: dict | None = None

    # ---- reading -------------------------------------------------------------------------
    @property
    def index(self) -> dict:
        if self._index is None:
            path = self.dir / "index.json"
            self._index = json.loads(path.read_text()) if path.exists() else {"tracks": {}, "seconds": {},
                                                                              "failed": {}}
        return self._index

    @property
    def data(self) -> np.ndarray:
        """All frames, memory-mapped read-only [shape=(total_frames, dim)]."""
        if self._data is None:
            path = self.dir / "features.npy"
            if not path.exists():
                raise MirformerError(f"feature store {self.dir} has no features yet: run extract() first")
            self._data = np.load(path, mmap_mode="r")
        return self._data

    @property
    def failed(self) -> dict[str, str]:
        return dict(self.index["failed"])

    def __contains__(self, track_id: str) -> bool:
        return track_id in self.index["tracks"]

    def seconds(self, track_id: str) -> float:
        """Decoded duration of a stored track in seconds (at the representation's sample rate)."""
        return self.index["seconds"][track_id]

    def entry(self, track_id: str) -> Entry:
        offset, n = self.index["tracks"][track_id]
        return Entry(offset, n)

    def get(self, track_id: str, start: int = 0, length: int | None = None) -> np.ndarray:
        """Frames ``[start, start + length)`` of one track, a view into the memory map."""
        e = self.entry(track_id)
        stop = e.n_frames if length is None else min(e.n_frames, start + length)
        return self.data[e.offset + start : e.offset + stop]

    # ---- writing -------------------------------------------------------------------------
    def extract(
        self,
        tracks: list[Item],
        *,
        workers: int = 1,
        progress: bool = True,
        shard: tuple[int, int] | None = None,
    ) -> dict[str, str] | None:
        """Make sure every track is stored or recorded as undecodable; return ``{id: reason}`` of failures.

        Resumes: tracks already consolidated or already written as parts are not recomputed.
        With ``shard=(k, n)`` only every n-th track still to do, from the k-th, is encoded: n
        processes or cluster jobs fill one store with disjoint parts, and whichever finds every
        part written consolidates the store. Returns None while other shards' parts are missing.
        """
        todo = self._todo(tracks)
        if todo:
            self._encode(todo if shard is None else todo[shard[0]::shard[1]], workers=workers, progress=progress)
            if not self.consolidate(tracks):
                return None
        return self.failures(tracks)

    def failures(self, tracks: list[Item]) -> dict[str, str]:
        """``{id: reason}`` of the ``tracks`` the store could not decode."""
        return {t.id: self.index["failed"][t.id] for t in tracks if t.id in self.index["failed"]}

    def reload(self) -> None:
        """Forget the cached index and memory map (another process may have consolidated)."""
        self._index, self._data = None, None

    def _todo(self, tracks: list[Item]) -> list[Item]:
        return [t for t in tracks if t.id not in self.index["tracks"] and t.id not in self.index["failed"]]

    def _encode(self, tracks: list[Item], *, workers: int, progress: bool) -> None:
        """Write the part (or failure note) of each track that has neither, in ``workers`` threads."""
        parts = self.dir / "parts"
        parts.mkdir(parents=True, exist_ok=True)
        pending = [t for t in tracks if not (parts / _part_name(t.id)).exists()
                   and not (parts / _failed_name(t.id)).exists()]
        bar = tqdm(total=len(tracks), initial=len(tracks) - len(pending), desc=f"extract {self.representation.name}",
                   unit="file", disable=not progress)
        if workers > 1 and len(pending) > 1:
            # Threads, not processes: decoding, resampling and torch release the GIL (two threads
            # run 1.7x one), and a process pool would first spend seconds importing torch per worker.
            with ThreadPoolExecutor(workers) as pool:
                futures = [pool.submit(_encode_one, self.representation, t, parts / _part_name(t.id))
                           for t in pending]
                for t, fut in zip(pending, futures):
                    _note_failure(parts, t.id, fut.result()[1])
                    bar.update()
        else:
            for t in pending:
                _note_failure(parts, t.id, _encode_one(self.representation, t, parts / _part_name(t.id))[1])
                bar.update()
        bar.close()

    def consolidate(self, tracks: list[Item]) -> bool:
        """Fold the parts of ``tracks`` into the memory-mapped store once every one is written.

        Returns True when the store holds every track (stored or failed), False while some part
        is missing. Processes that get here together take turns (a file lock, released if a
        process dies): the later ones find the work done.
        """
        if not self._todo(tracks):
            return True
        parts = self.dir / "parts"
        if any(not (parts / _part_name(t.id)).exists() and not (parts / _failed_name(t.id)).exists()
               for t in self._todo(tracks)):
            return False
        with open(self.dir / "consolidate.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.reload()
                todo = self._todo(tracks)
                if todo:
                    failed = dict(self.index["failed"])
                    failed.update({t.id: (parts / _failed_name(t.id)).read_text() for t in todo
                                   if (parts / _failed_name(t.id)).exists()})
                    self._consolidate([t for t in todo if t.id not in failed], failed)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return True

    def _consolidate(self, new: list[Item], failed: dict[str, str]) -> None:
        """Append the new parts to ``features.npy`` and rewrite the index, atomically.

        Old tracks keep their offsets (they are copied first, in index order), so a crash between
        replacing ``features.npy`` and ``index.json`` leaves a consistent store; the parts stay
        until the new index is written, so the next run consolidates them again.
        """
        parts = self.dir / "parts"
        old = self.index["tracks"]
        rep = self.representation
        # Parts are opened one at a time (a large dataset has more parts than the process may keep
        # open), first for their lengths alone: a part's samples give its frames.
        samples, lengths, spent = {}, {}, 0.0
        for t in new:
            with np.load(parts / _part_name(t.id)) as part:
                samples[t.id] = int(part["samples"])
                spent += float(part["encode_seconds"]) if "encode_seconds" in part else float("nan")
                lengths[t.id] = rep.n_frames(samples[t.id]) if rep.frames_from_samples else len(part["features"])
        total = sum(n for _, n in old.values()) + sum(lengths.values())
        shape = (total, *rep.layout.frame_shape)
        index: dict[str, list[int]] = {}
        # Written as one sequential stream (header, then each track's frames): filling a fresh
        # memory map instead page-faults on every page of what may be tens of gigabytes.
        with atomic_path(self.dir / "features.npy") as tmp, open(tmp, "wb") as f:
            np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(rep.dtype)),
                                                     "fortran_order": False, "shape": shape})
            offset = 0
            for tid, (o, n) in old.items():
                f.write(np.ascontiguousarray(self.data[o : o + n]).data)
                index[tid] = [offset, n]
                offset += n
            for tid, n in lengths.items():
                with np.load(parts / _part_name(tid)) as part:
                    feats = part["features"]
                if len(feats) != n:
                    raise MirformerError(f"{rep.name}: n_frames({samples[tid]}) = {n} but encode gave {len(feats)} "
                                         f"frames for track {tid}")
                f.write(np.ascontiguousarray(feats, dtype=rep.dtype).data)
                index[tid] = [offset, n]
                offset += n
            self._data = None
        self._index = {
            "dataset": self.dataset_id,
            "representation": rep.name,
            "config": rep.config_dict(),
            "dim": rep.dim,
            "dtype": str(np.dtype(rep.dtype)),
            "tracks": index,
            "seconds": {**self.index["seconds"], **{tid: n / rep.sample_rate for tid, n in samples.items()}},
            "failed": failed,
            # Reading and encoding time, one thread's, summed over the stored tracks (the cost report's).
            "encode_seconds": self.index.get("encode_seconds", 0.0 if not old else float("nan")) + spent,
        }
        write_json(self.dir / "index.json", self._index)
        shutil.rmtree(parts, ignore_errors=True)

    # ---- what it cost --------------------------------------------------------------------------
    def extraction_speed(self) -> float | None:
        """Seconds of audio read and encoded per second of one thread's work (x realtime), as
        measured when the store was filled; None for a store filled before it was measured."""
        spent = self.index.get("encode_seconds")
        audio = sum(self.index["seconds"].values())
        return audio / spent if spent and np.isfinite(spent) and audio else None

    def bytes_per_hour(self) -> float | None:
        """Bytes of ``features.npy`` per hour of the audio it holds."""
        audio = sum(self.index["seconds"].values())
        path = self.dir / "features.npy"
        return path.stat().st_size * 3600.0 / audio if audio and path.exists() else None

    # ---- statistics ----------------------------------------------------------------------
    def normalisation(self, track_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and standard deviation over all frames of ``track_ids``.

        Computed once per set of ids (the training split) and cached beside the features.
        Returns two float32 arrays [shape=(dim,)].
        """
        ids = sorted(i for i in track_ids if i in self.index["tracks"])
        digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:12]
        path = self.dir / f"stats-{digest}.npz"
        if path.exists():
            with np.load(path) as z:
                return z["mean"], z["std"]
        total = np.zeros(self.representation.dim, np.float64)
        total_sq = np.zeros_like(total)
        count = 0
        for tid in ids:
            x = np.asarray(self.get(tid), dtype=np.float64)
            total += x.sum(0)
            total_sq += (x * x).sum(0)
            count += len(x)
        if count == 0:
            raise MirformerError(f"no stored frames for the {len(track_ids)} requested tracks in {self.dir}")
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        mean, std = mean.astype(np.float32), np.maximum(std, 1e-5).astype(np.float32)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, mean=mean, std=std)
        return mean, std
