"""The whole feature-extraction path (decode, downmix, resample, log-mel, store write) against the
thesis pipeline, on the same MP3 files and the same number of processes, in one run.

Thesis pipeline, per file: ``librosa.load(sr=44100)`` + ``librosa.feature.melspectrogram``
(n_fft 512, hop 128, 86 bands) + ``power_to_db`` + ``torch.save`` of one tensor file, the files
spread over ``--workers`` processes (joblib). mirformer: ``FeatureStore.extract`` at the thesis
setting with ``--workers``, parts and the consolidated memory-mapped store included. Prints
seconds of audio per second (x realtime) and the ratio, then where one process spends its time.

The files are 30 s MP3s in FMA's mix of rates and channels (44.1 / 48 / 22.05 kHz, mono and
stereo), written once into ``--dir`` from synthetic notes (``--files`` of them): decoding cost
does not depend on the music, and no real recordings ship with mirformer. Point ``--dir`` at a
folder of your own MP3s to measure on those instead.

    python benchmarks/bench_extract.py --files 60 --workers 2
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from mirformer.datasets.base import Track
from mirformer.representations.mel import THESIS, LogMel
from mirformer.representations.store import FeatureStore


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


def thesis_one(path: str, out: str) -> None:
    import librosa
    import torch

    torch.set_num_threads(1)
    y, _ = librosa.load(path, sr=44100)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=44100, n_fft=512, hop_length=128, n_mels=86))
    torch.save(torch.from_numpy(mel), Path(out) / (Path(path).stem + ".pt"))


def thesis_pipeline(files: list[Path], out: Path, workers: int) -> float:
    from joblib import Parallel, delayed

    t0 = time.perf_counter()
    Parallel(n_jobs=workers)(delayed(thesis_one)(str(p), str(out)) for p in files)
    return time.perf_counter() - t0


def mirformer_path(files: list[Path], root: Path, workers: int) -> float:
    tracks = [Track(p.stem, p, "train") for p in files]
    t0 = time.perf_counter()
    FeatureStore(root, "bench", LogMel(THESIS)).extract(tracks, workers=workers, progress=False)
    return time.perf_counter() - t0


def breakdown(files: list[Path]) -> dict[str, float]:
    """Milliseconds per file of each step in one process, one thread, after a warm-up file."""
    import soxr
    import torch

    torch.set_num_threads(1)
    rep, steps = LogMel(THESIS), {"decode": 0.0, "downmix + resample": 0.0, "log-mel": 0.0}
    rep.encode(np.zeros(44100, np.float32))
    for p in files:
        t0 = time.perf_counter()
        with sf.SoundFile(p) as f:
            y, sr = f.read(dtype="float32", always_2d=True), f.samplerate
        t1 = time.perf_counter()
        y = soxr.resample(y.mean(1), sr, 44100, quality="HQ") if sr != 44100 else y.mean(1)
        t2 = time.perf_counter()
        rep.encode(y)
        t3 = time.perf_counter()
        for key, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2)):
            steps[key] += dt
    return {k: 1000 * v / len(files) for k, v in steps.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, help="MP3 folder (default: a temporary one, written first)")
    p.add_argument("--files", type=int, default=60)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirformer-bench-"))
    try:
        folder = args.dir or work / "mp3"
        if args.dir is None:
            write_mp3s(folder, args.files)
        files = sorted(folder.glob("*.mp3"))
        seconds = sum(sf.info(f).duration for f in files)
        (work / "thesis").mkdir()
        thesis = thesis_pipeline(files, work / "thesis", args.workers)
        ours = mirformer_path(files, work / "store", args.workers)
        print(f"{len(files)} MP3s, {seconds / 60:.1f} min of audio, {args.workers} processes each")
        print(f"thesis pipeline (librosa.load + melspectrogram + torch.save)  {seconds / thesis:7.0f}x realtime")
        print(f"mirformer FeatureStore.extract                                {seconds / ours:7.0f}x realtime"
              f"   {thesis / ours:.2f}x the thesis pipeline")
        steps = breakdown(files[: min(len(files), 12)])
        print("one process, one thread, per 30 s file: " + ", ".join(f"{k} {v:.1f} ms" for k, v in steps.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
