"""Log-mel throughput of mirformer against librosa (and plain whole-clip torch), in one run.

Clips are Bach chorales from music21's corpus rendered through midirenderer with the General
MIDI SoundFont shipped with pretty_midi (successive chorales joined until a clip is long
enough), so the numbers and the dB differences are those of real, deterministic music.

Cases, per setting (thesis: 44.1 kHz, n_fft 512, hop 128, 86 mels; librosa's defaults: 22.05 kHz,
2048, 512, 128 mels), all with ``ref=max, top_db=80``:

- librosa: ``librosa.power_to_db(librosa.feature.melspectrogram(...), ref=np.max)``
- plain torch: ``torch.stft`` of the whole clip, ``|X|^2``, dense mel matmul, dB
- mirformer: ``mirformer.representations.mel.log_mel``

One clip at a time; after a warm-up pass, each repeat times every case on every clip in turn
(interleaved, so slow drifts in background load hit all cases alike). Prints x realtime (seconds
of audio per wall second, from the median time per clip), the ratio to librosa, and the largest
absolute dB difference to librosa over all clips for ``ref="max"`` and ``ref="1.0"``.

Threads: ``--threads`` torch threads. numpy's OpenBLAS (librosa's mel matmul) gets
``--blas-threads``, 1 by default: librosa is no faster with 2 (its FFT is single-threaded), and
idle OpenBLAS threads spin for a while after each call, taking the cores torch's threads wait
for (torch at 2 threads fell to librosa's speed in this interleaved loop). Any other process on
the cores does the same to multi-threaded torch, so the run reports the CPU time other processes
used while it ran (Linux); timings with more than 5% of that are not comparable to quiet ones.

    python benchmarks/bench_mel.py                       # 4 clips of 30 s, 7 repeats, 2 threads
    python benchmarks/bench_mel.py --clips 2 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import resource
import statistics
import sys
import time
from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import soxr
import torch
from threadpoolctl import threadpool_limits

from mirformer.representations.mel import LIBROSA_DEFAULT, THESIS, MelConfig, log_mel

SETTINGS = {"thesis": dataclasses.replace(THESIS, ref="max"),
            "librosa": dataclasses.replace(LIBROSA_DEFAULT, ref="max")}


def render_clips(n_clips: int, seconds: float) -> dict[int, list[np.ndarray]]:
    """``n_clips`` mono clips of ``seconds`` s at 44.1 and 22.05 kHz: {sample rate: [y, ...]}."""
    import midirenderer
    import pretty_midi
    from music21 import corpus, midi

    soundfont = (Path(pretty_midi.__file__).parent / "TimGM6mb.sf2").read_bytes()
    scores = iter(sorted(p for p in corpus.getComposer("bach") if p.suffix == ".mxl"))

    def render(score_path) -> tuple[np.ndarray, int]:
        midi_bytes = midi.translate.streamToMidiFile(corpus.parse(score_path)).writestr()
        y, sr = sf.read(io.BytesIO(midirenderer.render_wave_from(soundfont, midi_bytes)), dtype="float32")
        return y.mean(axis=1), sr

    clips: dict[int, list[np.ndarray]] = {44100: [], 22050: []}
    for _ in range(n_clips):
        y, sr = render(next(scores))
        while len(y) < seconds * sr:
            y = np.concatenate([y, render(next(scores))[0]])
        y = y[: int(seconds * sr)]
        for rate in clips:
            clips[rate].append(soxr.resample(y, sr, rate).astype(np.float32))
    return clips


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0, help="clip length (s)")
    p.add_argument("--clips", type=int, default=4, help="number of clips")
    p.add_argument("--repeats", type=int, default=7, help="timed passes over the clips")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--blas-threads", type=int, default=1, help="numpy's BLAS threads (librosa's matmul)")
    return p.parse_args()


def librosa_log_mel(y: np.ndarray, c: MelConfig) -> np.ndarray:
    S = librosa.feature.melspectrogram(y=y, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length,
                                       n_mels=c.n_mels, center=c.center, pad_mode="constant", power=c.power)
    return librosa.power_to_db(S, ref=np.max if c.ref == "max" else 1.0, amin=c.amin, top_db=c.top_db).T


@lru_cache
def _plain_basis(sr: int, n_fft: int, n_mels: int) -> torch.Tensor:
    return torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels))


def plain_torch_log_mel(y: np.ndarray, c: MelConfig) -> np.ndarray:
    """The straightforward port: one torch.stft over the whole clip, then dense matmul and dB."""
    basis, window = _plain_basis(c.sample_rate, c.n_fft, c.n_mels), torch.hann_window(c.n_fft, periodic=True)
    with torch.inference_mode():
        X = torch.stft(torch.from_numpy(y), c.n_fft, c.hop_length, window=window, center=True,
                       pad_mode="constant", return_complex=True)
        S = basis @ X.abs().square()
        db = 10 * torch.log10(S.clamp_min(c.amin))
        db -= db.max()
        return db.clamp_min_(-c.top_db).T.numpy()


def time_cases(cases: dict, clips: list[np.ndarray], repeats: int) -> dict[str, float]:
    """Median wall seconds per clip of each case, interleaved across cases."""
    for f in cases.values():
        for y in clips:
            f(y)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for y in clips:
            for name, f in cases.items():
                t0 = time.perf_counter()
                f(y)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def max_db_difference(clips: list[np.ndarray], config: MelConfig) -> float:
    return max(float(np.abs(log_mel(y, config=config) - librosa_log_mel(y, config)).max()) for y in clips)


def cpu_seconds_all() -> float | None:
    """CPU seconds all processes have used since boot (Linux /proc/stat), None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    threadpool_limits(args.blas_threads, user_api="blas")
    t0 = time.perf_counter()
    clips = render_clips(args.clips, args.seconds)
    print(f"rendered {args.clips} clip(s) of {args.seconds:g} s in {time.perf_counter() - t0:.1f} s; "
          f"torch {torch.__version__} ({args.threads} thread(s)), librosa {librosa.__version__} "
          f"(BLAS {args.blas_threads} thread(s)), {os.cpu_count()} cores")
    all0, self0, wall0 = cpu_seconds_all(), cpu_seconds_self(), time.perf_counter()
    header = (f"{'setting':8s} {'librosa':>9s} {'plain torch':>12s} {'mirformer':>10s} "
              f"{'mirformer/librosa':>18s} {'max|dB diff| ref=max':>21s} {'ref=1.0':>8s}")
    print(header)
    print("-" * len(header))
    for name, config in SETTINGS.items():
        ys = clips[config.sample_rate]
        cases = {
            "librosa": lambda y: librosa_log_mel(y, config),
            "plain torch": lambda y: plain_torch_log_mel(y, config),
            "mirformer": lambda y: log_mel(y, config=config),
        }
        med = time_cases(cases, ys, args.repeats)
        xrt = {case: args.seconds / t for case, t in med.items()}
        diff_max = max_db_difference(ys, config)
        diff_one = max_db_difference(ys, dataclasses.replace(config, ref="1.0"))
        print(f"{name:8s} {xrt['librosa']:8.0f}x {xrt['plain torch']:11.0f}x {xrt['mirformer']:9.0f}x "
              f"{xrt['mirformer'] / xrt['librosa']:17.2f}x {diff_max:21.1e} {diff_one:8.1e}")
    print("x = seconds of audio per wall second (median time per clip)")
    if all0 is not None:
        others = max(0.0, cpu_seconds_all() - all0 - (cpu_seconds_self() - self0))
        share = others / ((time.perf_counter() - wall0) * os.cpu_count())
        print(f"other processes used {others:.1f} CPU s during the timing, {share:.0%} of the cores' time"
              + ("" if share <= 0.05 else ": NOT a quiet machine, multi-threaded timings are unreliable"))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
