"""VQ-VAE encode throughput, seconds of audio per wall second, one-shot and chunked, in one run.

Random-weight models in Jukebox's exact architecture (the speed does not depend on the weights)
and mirformer's small one-level VQ-VAE; 30 s of noise-free synthetic music-like audio.

    python benchmarks/bench_vqvae_encode.py --seconds 30 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from mirformer.representations.vqvae.chunked import encode_chunked
from mirformer.representations.vqvae.config import JUKEBOX, SMALL
from mirformer.representations.vqvae.model import VQVAE


def signal(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    notes = 220 * 2 ** (np.floor(t * 4) % 12 / 12)  # a new pitch every 250 ms
    return (0.3 * np.sin(2 * np.pi * np.cumsum(notes) / sr) + 0.1 * np.sin(6 * np.pi * np.cumsum(notes) / sr)).astype(np.float32)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cases = [("Jukebox top level (hop 128, 44.1 kHz)", JUKEBOX, 2),
             ("Jukebox level 1 (hop 32)", JUKEBOX, 1),
             ("mirformer SMALL (hop 128, 22.05 kHz)", SMALL, 0)]
    print(f"{args.seconds:g} s of audio, {args.threads} thread(s), median of {args.repeats}")
    print(f"{'model':<42} {'one-shot':>10} {'chunked 20 s':>13}")
    for name, cfg, level in cases:
        torch.manual_seed(0)
        model = VQVAE(cfg).eval()
        for block in model.bottleneck.level_blocks:
            block.k.normal_()
        y = signal(args.seconds, cfg.sample_rate)
        x = torch.from_numpy(y).view(1, -1, 1)
        with torch.inference_mode():
            one = timed(lambda: model.encode(x, start_level=level, end_level=level + 1), args.repeats)
        chunked = timed(lambda: encode_chunked(model, y, level=level, chunk_seconds=20.0), args.repeats)
        print(f"{name:<42} {args.seconds / one:9.1f}x {args.seconds / chunked:12.1f}x")


if __name__ == "__main__":
    main()
