"""The feature store: each (dataset, representation config) computed once, memory-mapped.

Layout of one store (``<features_dir>/<dataset>/<representation>-<key>/``)::

    parts/<uuid>.frames       while extracting, one per extraction call (process, shard): room for
                              an .npy header, then each encoded track's frames, appended in the
                              order of the tracks (``frames_file``)
    parts/<track id>.json     written (atomically) once a track's frames are appended: where they
                              are, its decoded length in samples and the seconds spent on it
    parts/<track id>.failed   instead, for a file that cannot be decoded: the reason
    features.npy              all tracks concatenated along frames, shape (total_frames, dim)
    index.json                {"config": ..., "tracks": {id: [offset, n_frames]},
                               "seconds": {id: decoded duration}, "failed": {id: reason}}

A track fails only when it cannot be decoded (missing, empty, corrupt, silent); whether it is
long enough is the caller's rule, applied to ``seconds`` (``mirformer.audio.too_short``).

``key`` hashes the dataset identity and the representation's ``config_dict``, so a changed
parameter never reuses stale features. Extraction writes parts in parallel, possibly from
several processes or cluster jobs each taking a shard of the tracks; then one atomic
consolidation turns them into ``features.npy`` + ``index.json`` and removes the parts. Within one
extraction call, threads decode and encode while the calling thread appends their frames in
track order, so the bytes written do not depend on which thread finished first. A track's part
is its ``.json``: a killed run leaves at most unmarked frames at the end of a frames file, which
nothing reads, and the rerun encodes that track again.

Each track's frames are written once: when one frames file holds every track of the store (one
process filled it in one go), consolidation writes the header into its room and links it as
``features.npy``; otherwise (shards, a resumed run, tracks added to a store) it copies the frames
into a new ``features.npy``. On the 2-core development machine that copy took 10 ms per 30 s
log-mel (3.5 MB), a third of the whole extraction: the page cache goes to a 340 MB/s disk.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from mirformer.atomic import atomic_path, write_json, write_text
from mirformer.errors import AudioError, MirformerError
from mirformer.representations.base import Representation
from mirformer.representations.frames_file import HEADER_BYTES, FramesFile, npy_header, whole_file


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


def _flat(track_id: str) -> str:
    # Track ids may contain path separators (e.g. "blues/blues.00001"); keep part names flat.
    return track_id.replace(os.sep, "__").replace("/", "__")


def _part_name(track_id: str) -> str:
    return _flat(track_id) + ".json"


def _failed_name(track_id: str) -> str:
    return _flat(track_id) + ".failed"


def _note_failure(parts: Path, track_id: str, reason: str) -> None:
    """A failed track's reason as a part of its own, so the shard that consolidates knows it."""
    write_text(parts / _failed_name(track_id), reason)


# One track read: its frames [shape=(n_frames, *frame_shape)], decoded length in samples, seconds spent.
_Encoded = tuple[np.ndarray, int, float]


def _encode_one(representation: Representation, track: Item) -> _Encoded:
    """Worker: read (decode + encode) one track; ``AudioError`` if it cannot be decoded."""
    t0 = time.perf_counter()
    feats, samples = representation.read(track)
    return feats, samples, time.perf_counter() - t0


def _reads(representation: Representation, tracks: list[Item],
           workers: int) -> Iterator[tuple[Item, Callable[[], _Encoded]]]:
    """Each of ``tracks``, in their order, with a call that gives its ``_encode_one`` (or raises its
    ``AudioError``). With ``workers > 1`` the tracks ahead are read in that many threads, at most
    ``2 * workers`` ahead of the one the caller is on: reads that finish before their turn wait in
    memory, a few tracks' worth, however many tracks there are."""
    if workers <= 1 or len(tracks) <= 1:
        for t in tracks:
            yield t, partial(_encode_one, representation, t)
        return
    # Threads, not processes: decoding, resampling and torch release the GIL (two threads run 1.7x
    # one), and a process pool would first spend seconds importing torch per worker.
    with ThreadPoolExecutor(workers) as pool:
        ahead: deque = deque()
        try:
            for t in tracks:
                ahead.append((t, pool.submit(_encode_one, representation, t)))
                if len(ahead) > 2 * workers:
                    done, fut = ahead.popleft()
                    yield done, fut.result
            while ahead:
                done, fut = ahead.popleft()
                yield done, fut.result
        finally:  # the caller stopped (an error, an interrupt): read nothing more
            for _, fut in ahead:
                fut.cancel()


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
        """Write the part (or failure note) of each track that has neither, read in ``workers``
        threads, their frames into one new frames file in the order of ``tracks``."""
        parts = self.dir / "parts"
        parts.mkdir(parents=True, exist_ok=True)
        pending = [t for t in tracks if not (parts / _part_name(t.id)).exists()
                   and not (parts / _failed_name(t.id)).exists()]
        if not pending:
            return
        bar = tqdm(total=len(tracks), initial=len(tracks) - len(pending), desc=f"extract {self.representation.name}",
                   unit="file", disable=not progress)
        out = FramesFile(parts, self.representation.dtype)
        reads = _reads(self.representation, pending, workers)
        try:
            for t, read in reads:
                try:
                    feats, samples, seconds = read()
                except AudioError as exc:
                    _note_failure(parts, t.id, exc.cause)
                else:
                    out.add(parts / _part_name(t.id), feats, samples, seconds)
                bar.update()
        finally:
            reads.close()
            out.close()
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
        until the new index is written, so the next run consolidates them again. A store without
        old tracks whose new ones fill one frames file becomes that file (``_link``).
        """
        parts = self.dir / "parts"
        old = self.index["tracks"]
        rep = self.representation
        marks = {t.id: json.loads((parts / _part_name(t.id)).read_text()) for t in new}
        for tid, m in marks.items():
            if rep.frames_from_samples and rep.n_frames(m["samples"]) != m["shape"][0]:
                raise MirformerError(f"{rep.name}: n_frames({m['samples']}) = {rep.n_frames(m['samples'])} but encode "
                                     f"gave {m['shape'][0]} frames for track {tid}")
        total = sum(n for _, n in old.values()) + sum(m["shape"][0] for m in marks.values())
        header = npy_header(rep.dtype, (total, *rep.layout.frame_shape))
        frame_bytes = np.dtype(rep.dtype).itemsize * int(np.prod(rep.layout.frame_shape))
        whole = None if old or len(header) != HEADER_BYTES else whole_file(parts, marks, frame_bytes)
        index = self._link(whole, header, marks, frame_bytes) if whole else None
        if index is None:
            index = self._copy(header, old, marks)
        self._index = {
            "dataset": self.dataset_id,
            "representation": rep.name,
            "config": rep.config_dict(),
            "dim": rep.dim,
            "dtype": str(np.dtype(rep.dtype)),
            "tracks": index,
            "seconds": {**self.index["seconds"], **{tid: m["samples"] / rep.sample_rate for tid, m in marks.items()}},
            "failed": failed,
            # Reading and encoding time, one thread's, summed over the stored tracks (the cost report's).
            "encode_seconds": self.index.get("encode_seconds", 0.0 if not old else float("nan"))
            + sum(m["encode_seconds"] for m in marks.values()),
        }
        write_json(self.dir / "index.json", self._index)
        shutil.rmtree(parts, ignore_errors=True)

    def _link(self, frames: Path, header: bytes, marks: dict[str, dict], frame_bytes: int) -> dict | None:
        """The index of a ``features.npy`` that is the frames file holding every track: its header
        written into its room, then a hard link replacing ``features.npy`` (the part keeps its name
        until the index is written). None where the file system has no hard links."""
        with open(frames, "r+b") as f:
            f.write(header)
        self._data = None
        try:
            with atomic_path(self.dir / "features.npy") as tmp:
                tmp.unlink()
                os.link(frames, tmp)
        except OSError:
            return None
        return {tid: [(m["offset"] - HEADER_BYTES) // frame_bytes, m["shape"][0]] for tid, m in marks.items()}

    def _copy(self, header: bytes, old: dict[str, list[int]], marks: dict[str, dict]) -> dict[str, list[int]]:
        """The index of a new ``features.npy``: the old tracks' frames, then the new tracks', read
        from their frames files, as one sequential stream (filling a fresh memory map instead
        page-faults on every page of what may be tens of gigabytes)."""
        parts, dtype = self.dir / "parts", self.representation.dtype
        index: dict[str, list[int]] = {}
        offset = 0
        with atomic_path(self.dir / "features.npy") as tmp, open(tmp, "wb") as f:
            f.write(header)
            for tid, (o, n) in old.items():
                f.write(np.ascontiguousarray(self.data[o : o + n]).data)
                index[tid], offset = [offset, n], offset + n
            for tid, m in marks.items():
                frames = np.fromfile(parts / m["frames"], dtype, count=int(np.prod(m["shape"])), offset=m["offset"])
                f.write(frames.data)
                index[tid], offset = [offset, m["shape"][0]], offset + m["shape"][0]
            self._data = None
        return index

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
