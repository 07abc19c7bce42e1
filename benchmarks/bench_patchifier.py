"""Pretraining throughput of Patchifier at the paper's size, side by side with SpectroFormer on the
same seconds of audio per window, in fp32 and bf16 autocast, in one run.

Patchifier: stage I (feature extractor + decoder on single 64 x 32 patches) and stage II (windows
of ``--patches`` patches, 75% masked); the paper's model: 5 down modules from 16 filters, an
8-layer, 4-head, 256-wide bottleneck. SpectroFormer: the same log-mel (22.05 kHz, hop 512, 64
bands), windows of the same frames, masked-frame pretraining, with an encoder of the
bottleneck's size. Each case: forward + backward + AdamW step, warm-up then the median of
``--repeats`` steps; prints windows/s, patches/s and seconds of audio per second, and each rate
against SpectroFormer fp32.

    python benchmarks/bench_patchifier.py                   # windows of 8 patches (5.9 s), batch 32
    python benchmarks/bench_patchifier.py --patches 40      # whole 30 s clips, as stage II reads GTZAN
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mirformer.models.encoder import EncoderConfig
from mirformer.models.former import Former
from mirformer.models.patchifier import Patchifier, PatchifierConfig
from mirformer.objectives.patch_masking import MaskedPatchModelling, PatchAutoencoding, PatchMaskConfig
from mirformer.objectives.spectro_masking import SpectroMaskConfig, SpectroObjective

N_MELS, PATCH = 64, 32
FRAMES_PER_SECOND = 22050 / 512


def time_steps(model, objective, batch, *, bf16: bool, warmup: int, repeats: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = objective(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patches", type=int, default=8, help="patches per stage II window")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    frames = args.patches * PATCH
    cfg = PatchifierConfig()  # the paper's size
    spectro = EncoderConfig(d_model=cfg.encoder.d_model, n_layers=cfg.encoder.n_layers, n_heads=cfg.encoder.n_heads,
                            d_ff=cfg.encoder.d_ff, dropout=0.1, max_len=frames)
    aug = PatchMaskConfig()  # augmentations on, as in training
    torch.manual_seed(0)
    windows = {"x": torch.rand(args.batch, frames, N_MELS) * -0.8,  # dB x 0.01 of the paper
               "pad": torch.zeros(args.batch, frames, dtype=torch.bool)}
    patches = {"x": windows["x"][:, :PATCH], "pad": windows["pad"][:, :PATCH]}
    cases = [  # name, model, objective, batch, patches per window
        ("SpectroFormer (d256, 8 layers), masked frames", lambda: Former(frontend="projection", encoder=spectro,
                                                                         input_dim=N_MELS),
         SpectroObjective(SpectroMaskConfig(block_frames=5)), windows, args.patches),
        ("Patchifier stage II, 75% of patches masked", lambda: Patchifier(cfg), MaskedPatchModelling(aug, PATCH),
         windows, args.patches),
        ("Patchifier stage I, single patches", lambda: Patchifier(cfg), PatchAutoencoding(aug, PATCH), patches, 1),
    ]
    print(f"batch {args.batch}, stage II windows of {args.patches} patches ({frames / FRAMES_PER_SECOND:.1f} s), "
          f"{args.threads} threads, median of {args.repeats} steps")
    print(f"{'case':<48} {'precision':<9} {'windows/s':>10} {'patches/s':>10} {'audio s/s':>10} {'vs Spectro fp32':>16}")
    base = None
    for name, make, objective, batch, per_window in cases:
        for bf16 in (False, True):
            torch.manual_seed(0)
            seconds = time_steps(make(), objective, batch, bf16=bf16, warmup=args.warmup, repeats=args.repeats)
            windows_per_s = args.batch / seconds
            audio = windows_per_s * per_window * PATCH / FRAMES_PER_SECOND
            base = base or audio
            print(f"{name:<48} {'bf16' if bf16 else 'fp32':<9} {windows_per_s:10.1f} {windows_per_s * per_window:10.0f} "
                  f"{audio:10.1f} {audio / base:15.2f}x")


if __name__ == "__main__":
    main()
