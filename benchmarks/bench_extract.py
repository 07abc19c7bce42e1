"""The whole feature-extraction path (decode, downmix, resample, log-mel, store write) against the
thesis pipeline, on the same MP3 files and the same number of workers, in one run, at steady state.

Thesis pipeline, per file: ``librosa.load(sr=44100)`` + ``librosa.feature.melspectrogram``
(n_fft 512, hop 128, 86 bands) + ``power_to_db`` + ``torch.save`` of one tensor file, the files
spread over ``--workers`` processes (joblib). mirformer: ``FeatureStore.extract`` at the thesis
setting with ``--workers`` threads, parts and the consolidated memory-mapped store included.

Start-up is reported apart from throughput. Each pipeline's first call works on ``--workers``
files (joblib starts its processes, which import librosa and torch; mirformer builds its
filterbank); its start-up is that call's time less the steady-state time of those files, and
mirformer's adds the import of torch and mirformer (timed in a fresh interpreter). Then
``--repeats`` runs of each on every file, alternating, into fresh folders; the median gives
seconds of audio per wall second (x realtime) and the ratio.

Then where the time goes, per file, over every file:

- one thread, step by step: decode (libsndfile), downmix, checks (truncation, finite, silence),
  resample (soxr HQ, files not at 44.1 kHz), log-mel, part write (the store's own writer);
- the floor: their sum over ``--workers`` cores (every core busy, nothing else), without the part
  write (decoding and encoding alone) and with it;
- the same steps in ``--workers`` independent processes at once (no shared interpreter or
  memory): what this machine gives for that floor (its cores slow each other down);
- the store with ``--workers`` threads: its encode phase and its consolidation (timed apart),
  each as x realtime and as a multiple of the floor without the part write;
- the share of the cores that other processes and the kernel (writing the page cache back to
  the disk) used during mirformer's runs: above a few percent, another run is due.

The files are 30 s MP3s in FMA's mix of rates and channels (44.1 / 48 / 22.05 kHz, mono and
stereo), written from synthetic notes: decoding cost does not depend on the music, and no real
recordings ship with mirformer. ``--dir`` keeps them (written there first when it holds none, about
0.45 s per file); point it at a folder of your own MP3s to measure on those instead.

    python benchmarks/bench_extract.py --files 300 --workers 2 --dir /tmp/bench-mp3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mirformer import audio
from mirformer.datasets.base import Track
from mirformer.representations.mel import THESIS, LogMel
from mirformer.representations.frames_file import FramesFile
from mirformer.representations.store import FeatureStore

STEPS = ("decode", "downmix", "checks", "resample", "log-mel", "part write")


def write_mp3s(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sr, channels = (44100, 48000, 22050)[i % 3], 1 + i % 2
        t = np.arange(30 * sr) / sr
        y = 0.01 * rng.standard_normal(len(t))
        for k in range(60):  # a note every half second, three harmonics
            f, s = 110 * 2 ** (rng.integers(0, 36) / 12), int(k * 0.5 * sr)
            seg = slice(s, s + int(0.5 * sr))
            y[seg] += sum(0.1 / h * np.sin(2 * np.pi * f * h * t[seg]) for h in (1, 2, 3))
        sf.write(folder / f"{i:06d}.mp3", np.stack([y, np.roll(y, 100)], 1) if channels == 2 else y, sr, format="MP3")


# ---- the two pipelines ---------------------------------------------------------------------------
def thesis_one(path: str, out: str) -> None:
    import librosa
    import torch

    torch.set_num_threads(1)
    y, _ = librosa.load(path, sr=44100)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=44100, n_fft=512, hop_length=128, n_mels=86))
    torch.save(torch.from_numpy(mel), Path(out) / (Path(path).stem + ".pt"))


def thesis_pipeline(files: list[Path], out: Path, workers: int) -> float:
    """Wall seconds of the thesis pipeline on ``files``; joblib keeps its processes for the next call."""
    from joblib import Parallel, delayed

    out.mkdir(parents=True)
    t0 = time.perf_counter()
    Parallel(n_jobs=workers)(delayed(thesis_one)(str(p), str(out)) for p in files)
    return time.perf_counter() - t0


def mirformer_path(files: list[Path], root: Path, workers: int) -> tuple[float, float]:
    """Wall seconds of ``FeatureStore.extract`` on ``files`` into a fresh store, and of its consolidation."""
    store = FeatureStore(root, "bench", LogMel(THESIS))
    consolidate, spent = store.consolidate, [0.0]

    def timed(tracks):
        t = time.perf_counter()
        try:
            return consolidate(tracks)
        finally:
            spent[0] += time.perf_counter() - t

    store.consolidate = timed  # extract calls it once every part is written
    t0 = time.perf_counter()
    store.extract([Track(p.stem, p, "train") for p in files], workers=workers, progress=False)
    return time.perf_counter() - t0, spent[0]


def import_seconds() -> float:
    """What a fresh interpreter spends importing torch and mirformer's store and log-mel."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mirformer.representations.mel, mirformer.representations.store"],
                   check=True)
    return time.perf_counter() - t0


# ---- one thread, step by step --------------------------------------------------------------------
def steps(files: list[Path], parts: Path) -> np.ndarray:
    """Seconds of each of ``STEPS`` per file [shape=(len(files), len(STEPS))], in this thread:
    ``load_audio``'s and the store's work, taken apart."""
    rep, out = LogMel(THESIS), np.zeros((len(files), len(STEPS)))
    parts.mkdir(exist_ok=True)
    frames = FramesFile(parts, rep.dtype)
    for i, p in enumerate(files):
        t = [time.perf_counter()]
        with sf.SoundFile(p) as f:
            y, sr, declared = f.read(dtype="float32", always_2d=True), f.samplerate, f.frames
        t.append(time.perf_counter())
        y = audio._mono(y)
        t.append(time.perf_counter())
        audio._check_truncated(p, len(y), declared, sr)
        audio._check_loud(p, audio._peak(p, y), "silent")
        t.append(time.perf_counter())
        y = soxr.resample(y, sr, 44100, quality="HQ") if sr != 44100 else y
        t.append(time.perf_counter())
        feats = rep.encode(y)
        t.append(time.perf_counter())
        frames.add(parts / f"{p.stem}.json", feats, len(y), 0.0)
        t.append(time.perf_counter())
        out[i] = np.diff(t)
    frames.close()
    return out


def _process_steps(files: list[Path], parts: Path, ready, results) -> None:
    """One of the independent processes: warm up, wait for the others, time ``steps`` on ``files``."""
    import torch

    torch.set_num_threads(1)
    steps(files[:1], parts)
    ready.wait()
    t0 = time.time()
    steps(files, parts)
    results.put((t0, time.time()))


def independent_processes(files: list[Path], parts: Path, workers: int) -> float:
    """Wall seconds of ``steps`` on ``files`` shared out to ``workers`` processes running at once."""
    ctx = mp.get_context("spawn")  # a fork would copy this process's OpenMP state, which can hang
    ready, results = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_process_steps, args=(files[k::workers], parts, ready, results))
             for k in range(workers)]
    for proc in procs:
        proc.start()
    spans = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return max(end for _, end in spans) - min(start for start, _ in spans)


# ---- the run -------------------------------------------------------------------------------------
def cpu_seconds_others() -> float:
    """CPU seconds every process but this one has used since boot, the kernel's included (Linux)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK") - usage.ru_utime - usage.ru_stime


def steady_state(files: list[Path], work: Path, workers: int, repeats: int) -> dict[str, float]:
    """Median wall seconds of each pipeline on ``files`` (``repeats`` runs each, alternating, so
    background load hits both alike), of mirformer's consolidation, and the share of the cores
    others used during mirformer's runs; then start-up apart: each one's first call on
    ``workers`` files less their steady-state time, and for mirformer the imports."""
    first = files[:workers]
    first_call = {"thesis": thesis_pipeline(first, work / "first-thesis", workers),
                  "mirformer": mirformer_path(first, work / "first-store", workers)[0]}
    runs = {"thesis": [], "mirformer": [], "consolidate": [], "others": []}
    for r in range(repeats):
        runs["thesis"].append(thesis_pipeline(files, work / f"thesis-{r}", workers))
        others, t0 = cpu_seconds_others(), time.perf_counter()
        wall, consolidate = mirformer_path(files, work / f"store-{r}", workers)
        runs["others"].append((cpu_seconds_others() - others) / ((time.perf_counter() - t0) * os.cpu_count()))
        runs["mirformer"].append(wall)
        runs["consolidate"].append(consolidate)
        shutil.rmtree(work / f"thesis-{r}")
        shutil.rmtree(work / f"store-{r}")
    out = {k: statistics.median(v) for k, v in runs.items()}
    for k in first_call:
        out[f"{k} start-up"] = first_call[k] - len(first) * out[k] / len(files)
    out["mirformer start-up"] += import_seconds()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, help="MP3 folder, kept (default: a temporary one); written first when "
                   "it holds none")
    p.add_argument("--files", type=int, default=300, help="synthetic files to write (default 300)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirformer-bench-"))
    try:
        folder = args.dir or work / "mp3"
        if not sorted(folder.glob("*.mp3")):
            write_mp3s(folder, args.files)
        files = sorted(folder.glob("*.mp3"))
        seconds = sum(sf.info(f).duration for f in files)
        n, w = len(files), args.workers
        print(f"{n} MP3s, {seconds / 60:.1f} min of audio, {w} workers each; load average "
              f"{os.getloadavg()[0]:.2f} before")
        wall = steady_state(files, work, w, args.repeats)
        print(f"steady state, median of {args.repeats} runs:")
        print(f"  thesis pipeline (librosa.load + melspectrogram + torch.save)  {seconds / wall['thesis']:6.0f}x "
              "realtime")
        print(f"  mirformer FeatureStore.extract                                {seconds / wall['mirformer']:6.0f}x "
              f"realtime  {wall['thesis'] / wall['mirformer']:.2f}x the thesis pipeline")
        print(f"start-up, apart: thesis pipeline {wall['thesis start-up']:.1f} s (joblib's processes, imports), "
              f"mirformer {wall['mirformer start-up']:.1f} s (imports, filterbank)")

        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        steps(files[:1], work / "parts")  # warm-up
        one = steps(files, work / "parts").mean(0)
        torch.set_num_threads(threads)
        apart = independent_processes(files, work / "parts", w) / n
        rows = {f"floor: the steps but the part write, over {w} cores": one[:-1].sum() / w,
                f"floor with the part write, over {w} cores": one.sum() / w,
                f"the steps in {w} independent processes at once": apart,
                f"mirformer, encode phase ({w} threads)": (wall["mirformer"] - wall["consolidate"]) / n,
                "mirformer, consolidation": wall["consolidate"] / n,
                "mirformer, total": wall["mirformer"] / n}
        print("per file, one thread: " + ", ".join(f"{k} {1000 * v:.1f}" for k, v in zip(STEPS, one))
              + f" ms; sum {1000 * one.sum():.1f} ms")
        print(f"per file, wall with {w} workers (x realtime; x the floor without the part write):")
        floor = one[:-1].sum() / w
        for name, t in rows.items():
            print(f"  {name:52s} {1000 * t:5.1f} ms  {seconds / n / t:5.0f}x  {t / floor:.2f}x")
        print(f"others (processes, kernel writeback) used {wall['others']:.0%} of the cores during mirformer's runs")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
