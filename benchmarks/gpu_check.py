"""mirformer's GPU numbers in one command: one table, and a JSON file with every number.

Each part runs mirformer's own code at the presets' sizes; timings are medians of repeats after a
warm-up, with the device synchronised around the host timer.

- bf16 dense matmul peak of this device, measured here (the best n x n @ n x n);
- SpectroFormer's pretraining step at the thesis size (``thesis-fma-medium``: d768, 4 layers, 12
  heads, d_ff 3072, 1344-frame windows, batch 64, its objective and optimiser) in bf16 autocast
  as Lightning's ``bf16-mixed``: tokens (frames) per second, peak memory, and FLOPs per second
  (``FlopCounterMode``, forward + backward) as a fraction of that peak; the largest batch that
  fits and its throughput; last, the same step compiled as ``--compile`` compiles it, at the
  thesis' batch and four times it;
- Patchifier at the paper's size (``patchifier-paper``), stage II: seconds of audio per second;
- Jukebox-architecture VQ-VAE (random weights, saved and read in the official layout), top-level
  encode, one-shot and chunked, x realtime, tokens compared;
- thesis-setting log-mel on the device (``torch.stft`` with librosa's window and filterbank,
  checked against ``log_mel``), x realtime, and ``Embedder.embed_file`` on a 20-minute file;
- a tiny end-to-end ``compare`` on the device in ``bf16-mixed``.

A failing part prints its traceback and a FAILED row, the others still run, and the exit status
is 1. The JSON is rewritten after every part, so a run stopped early keeps what finished.

    python benchmarks/gpu_check.py                             # one GPU: under 8 minutes on an H200
    python benchmarks/gpu_check.py --cpu --tiny --out x.json   # seconds on the CPU (the tests run it)
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import resource
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from mirformer.atomic import write_json
from mirformer.config_tree import parse_overrides
from mirformer.embed import Embedder
from mirformer.encoder_file import read_encoder, save_encoder
from mirformer.experiments.presets import resolve
from mirformer.kinds import KINDS
from mirformer.paths import HOME_ENV
from mirformer.representations import Statistics
from mirformer.representations.mel import LogMel, MelConfig, log_mel
from mirformer.representations.vqvae.checkpoint import load_jukebox_vqvae, save_vqvae
from mirformer.representations.vqvae.chunked import encode_chunked
from mirformer.representations.vqvae.config import JUKEBOX, VQVAEConfig
from mirformer.representations.vqvae.model import VQVAE
from mirformer.training.fit import compile_parts
from mirformer.training.modules import PretrainModule

BUDGET_SECONDS = 480  # the 8 minutes
COMPILE_SECONDS = 150  # the compiled step (compilation included) runs only if this much is left
aten = torch.ops.aten
# FlopCounterMode has formulas for the CUDA attention kernels only; the CPU kernel computes the
# same products, so it is counted with torch's own formulas (the backward recomputes the scores).
CPU_ATTENTION = {
    aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *_, out_shape=None, **__: sdpa_flop_count(q, k, v),
    aten._scaled_dot_product_flash_attention_for_cpu_backward:
        lambda g, q, k, v, *_, out_shape=None, **__: sdpa_backward_flop_count(g, q, k, v),
}
TINY_ENCODER = {"d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64, "max_len": 64}
# The tests' tiny comparison (tests/helpers.py TINY) on a folder of tones, one pretrained setup.
TINY_COMPARE = ["mel={sample_rate: 16000, n_fft: 512, hop_length: 256, n_mels: 32, ref: '1.0'}",
                "encoder={d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, max_len: 256}",
                "window_seconds=0.768", "spectroformer.mask.block_frames=4", "pretrain.epochs=2",
                "finetune.epochs=2", "workers=1", "setups=[spectroformer-pretrained-finetuned]",
                "evidence={n_resamples: 200, n_permutations: 200}", "trainer.progress=false",
                "trainer.devices=1", "trainer.precision=bf16-mixed",
                "deform=[noise:snr=10]"]  # scored on deformed test clips too


@dataclass(frozen=True)
class Scale:
    """Every part's size: ``FULL`` (the presets' own) or ``TINY`` (seconds on a CPU, for the tests)."""

    thesis: dict | None  # overrides of the thesis-fma-medium preset
    patchifier: dict | None  # overrides of the patchifier-paper preset
    compiler: str  # torch.compile backend
    matmul: tuple[int, ...]  # n of the n x n @ n x n products tried for the peak
    repeats: int  # timed repeats of a measurement
    batch_cap: int  # the largest-batch search stops here, or after search_seconds
    search_seconds: float
    vqvae: VQVAEConfig
    vqvae_seconds: float  # audio encoded
    chunk_seconds: float
    mel_clips: int  # clips in the log-mel batch, of mel_seconds each
    mel_seconds: float
    embed_minutes: float


FULL = Scale(thesis=None, patchifier=None, compiler="inductor", matmul=(8192, 16384), repeats=10, batch_cap=4096,
             search_seconds=90, vqvae=JUKEBOX, vqvae_seconds=120, chunk_seconds=20, mel_clips=64, mel_seconds=30,
             embed_minutes=20)
TINY = Scale(
    thesis={"encoder": TINY_ENCODER, "window_seconds": 48 * 128 / 44100, "pretrain": {"batch_size": 4},
            "spectroformer": {"mask": {"block_frames": 4}}},
    patchifier={"patchifier": {"model": {"n_mels": 32, "filters": 4, "decoder_width": 32,
                                         "encoder": {**TINY_ENCODER, "max_len": 8}},
                               "mel": {"n_mels": 32}, "window_patches": 2, "stage2": {"batch_size": 4}}},
    compiler="eager",  # dynamo traces the same code in seconds, without generating any
    matmul=(256,), repeats=2, batch_cap=16, search_seconds=10,
    vqvae=dataclasses.replace(JUKEBOX, width=4, depth=1, emb_width=8, l_bins=32), vqvae_seconds=3, chunk_seconds=1,
    mel_clips=2, mel_seconds=2, embed_minutes=0.25)


@dataclass(frozen=True)
class Run:
    device: torch.device
    scale: Scale
    tmp: Path
    started: float  # time.perf_counter() at the start

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timed(self, fn, *, warmup: int = 2, repeats: int | None = None) -> float:
        """Median wall seconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones; the
        device is synchronised around each call, so the work it queued is inside the time."""
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats or self.scale.repeats):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float:
        """Peak device memory since ``reset_peak`` (on the CPU: the process' peak resident memory)."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**30
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    def free(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def notes(seconds: float, sr: int, *, seed: int = 0) -> np.ndarray:
    """Half-second notes with two overtones and a little noise [shape=(seconds * sr,), float32]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    pitch = rng.integers(0, 36, size=int(2 * seconds) + 1)[np.arange(n) * 2 // sr]
    phase = 2 * np.pi * np.cumsum(110 * 2 ** (pitch / 12)) / sr
    return (sum(0.1 / h * np.sin(h * phase) for h in (1, 2, 3)) + 0.01 * rng.standard_normal(n)).astype(np.float32)


# ---- training steps -------------------------------------------------------------------------------
def pretraining(cfg, kind_name: str, *, stage: int, device: torch.device):
    """The network, pretraining stage ``stage`` and its optimiser, as ``mirformer pretrain`` builds them."""
    kind = KINDS[kind_name]
    rep = LogMel(kind.input(cfg).config)
    model = kind.build(cfg, rep, Statistics(), n_outputs=0, head=kind.head, pooling="cls").to(device)
    chosen = kind.pretraining(cfg, rep)[stage]
    optimiser = PretrainModule(model, objective=chosen.objective, optim=chosen.config.optim).configure_optimizers()
    return model, chosen, optimiser["optimizer"] if isinstance(optimiser, dict) else optimiser


def step_of(loss_fn, optimiser, *, device: torch.device):
    """One optimiser step as Lightning's bf16-mixed runs it: forward and loss under bf16 autocast,
    backward and the update of the fp32 parameters outside it."""
    def step(batch: dict) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = loss_fn(batch)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
    return step


def step_flops(loss_fn, batch: dict, *, device: torch.device) -> int:
    """FLOPs of one step's forward and backward as ``FlopCounterMode`` counts them (matrix products,
    convolutions, attention; a multiply-add is 2); the optimiser's elementwise update is not counted."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION) as counter:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = loss_fn(batch)
        loss.backward()
    return counter.get_total_flops()


def frames(batch: int, length: int, dim: int, *, device: torch.device) -> dict:
    """Random standardised frames (B, L, F) without padding, as the pretraining loader gives them."""
    return {"x": torch.randn(batch, length, dim, device=device),
            "pad": torch.zeros(batch, length, dtype=torch.bool, device=device)}


def thesis_step(run: Run):
    """The thesis' SpectroFormer pretraining: (model, loss of a batch, optimiser, window frames, input
    dim, batch size)."""
    cfg = resolve("thesis-fma-medium", run.scale.thesis)
    model, stage, optimiser = pretraining(cfg, "spectroformer", stage=0, device=run.device)
    length = round(cfg.window_seconds * LogMel.frame_rate(cfg.mel))
    return model, lambda batch: stage.objective(model, batch), optimiser, length, cfg.mel.n_mels, \
        stage.config.batch_size


def part_peak(run: Run, parts: dict) -> tuple[dict, list]:
    best = 0.0
    for n in run.scale.matmul:
        a, b = (torch.randn(n, n, device=run.device, dtype=torch.bfloat16) for _ in range(2))
        out = torch.empty_like(a)
        once = run.timed(lambda: torch.mm(a, b, out=out), warmup=3, repeats=1)
        inner = max(1, round(0.05 / once))  # ~50 ms per timed call: launch gaps and timer noise vanish
        best = max(best, 2 * n**3 * inner / run.timed(lambda: [torch.mm(a, b, out=out) for _ in range(inner)],
                                                      warmup=1))
    return ({"bf16_matmul_flops": best, "sizes": list(run.scale.matmul)},
            [("bf16 dense matmul peak", best / 1e12, "TFLOP/s", f"best n x n @ n x n, n in {run.scale.matmul}")])


def measure_step(run: Run, step, parts: dict, *, batch: int, length: int, dim: int, window_flops: float | None,
                 repeats: int | None = None) -> dict:
    """Throughput of ``step`` on ``batch`` random windows of ``length`` frames; ``window_flops``, a
    window's share of a step's FLOPs (every counted product grows with the batch), gives the rate."""
    x = frames(batch, length, dim, device=run.device)
    run.reset_peak()
    seconds = run.timed(lambda: step(x), repeats=repeats)
    rate = window_flops * batch / seconds if window_flops else None
    return {"batch": batch, "step_s": seconds, "tokens_per_s": batch * length / seconds, "peak_gib": run.peak_gib(),
            "flops_per_s": rate, "fraction_of_peak": _fraction(rate, parts)}


def _window_flops(parts: dict) -> float | None:
    encoder = parts.get("encoder", {})
    return encoder["flops_per_step"] / encoder["config"]["batch"] if "flops_per_step" in encoder else None


def part_encoder(run: Run, parts: dict) -> tuple[dict, list]:
    model, loss_fn, optimiser, length, dim, batch = thesis_step(run)
    flops = step_flops(loss_fn, frames(batch, length, dim, device=run.device), device=run.device)
    model.zero_grad(set_to_none=True)
    eager = measure_step(run, step_of(loss_fn, optimiser, device=run.device), parts, batch=batch, length=length,
                         dim=dim, window_flops=flops / batch)
    enc = model.encoder.cfg
    size = f"d{enc.d_model} x {enc.n_layers} layers, {enc.n_heads} heads, d_ff {enc.d_ff}, {length} frames"
    memory = " (the process' peak resident memory)" if run.device.type == "cpu" else ""
    return ({"config": {"encoder": dataclasses.asdict(enc), "length": length, "input_dim": dim, "batch": batch},
             "flops_per_step": flops, **eager},
            [("encoder step, eager", eager["tokens_per_s"], "tokens/s", f"{size}, batch {batch}, bf16 autocast"),
             ("  peak memory", eager["peak_gib"], "GiB", f"batch {batch}{memory}"),
             ("  fraction of bf16 peak", _percent(eager["fraction_of_peak"]), "%",
              f"{flops / 1e12:.3g} TFLOP per step (forward + backward, FlopCounterMode)")])


def part_largest_batch(run: Run, parts: dict) -> tuple[dict, list]:
    _, loss_fn, optimiser, length, dim, batch = thesis_step(run)
    step = step_of(loss_fn, optimiser, device=run.device)
    largest = largest_batch(run, lambda b: measure_step(run, step, parts, batch=b, length=length, dim=dim,
                                                        window_flops=_window_flops(parts), repeats=3), start=batch)
    return largest, [("largest batch that fits", largest["batch"], "windows", largest["stopped_by"]),
                     ("  its throughput", largest["tokens_per_s"], "tokens/s",
                      f"{largest['peak_gib']:.1f} GiB, {_percent_text(largest['fraction_of_peak'])} of bf16 peak")]


def largest_batch(run: Run, measure, *, start: int) -> dict:
    """``measure(batch)`` at ``start``, then at double the batch until a step runs out of device
    memory, then bisecting between the last that fit and the first that did not (to 1/8 of it);
    stopping at the cap or the time limit. Only out-of-memory ends a try: anything else fails."""
    t0, fit, failed = time.perf_counter(), measure(start), None
    stopped_by = f"cap {run.scale.batch_cap}, no out-of-memory"
    while True:
        low = fit["batch"]
        if failed is not None and failed - low <= max(1, low // 8):
            stopped_by = f"{failed} ran out of memory"
            break
        batch = 2 * low if failed is None else (low + failed) // 2
        if batch > run.scale.batch_cap:
            break
        if time.perf_counter() - t0 > run.scale.search_seconds:
            stopped_by = f"time limit {run.scale.search_seconds:.0f} s" + (f"; {failed} did not fit" if failed else "")
            break
        result = None
        try:
            result = measure(batch)
        except torch.cuda.OutOfMemoryError:
            failed = batch
        run.free()  # after the except block, whose traceback held the failed step's tensors
        fit = result or fit
    return {**fit, "stopped_by": stopped_by, "search_s": time.perf_counter() - t0}


def part_encoder_compiled(run: Run, parts: dict) -> tuple[dict, list]:
    """The step with the network compiled as ``--compile`` compiles it (``compile_parts``), at the
    thesis' batch and at four times it (compiled kernels gain more from larger products)."""
    left = BUDGET_SECONDS - (time.perf_counter() - run.started)
    if left < COMPILE_SECONDS:
        raise RuntimeError(f"not run: {left:.0f} s left of the {BUDGET_SECONDS} s budget, it needs {COMPILE_SECONDS}")
    model, loss_fn, optimiser, length, dim, batch = thesis_step(run)
    compile_parts(model, run.scale.compiler)
    step = step_of(loss_fn, optimiser, device=run.device)
    numbers, rows = {"backend": run.scale.compiler}, []
    for b in (batch, 4 * batch):
        t0 = time.perf_counter()
        step(frames(b, length, dim, device=run.device))  # compiles (again for a new batch size)
        run.sync()
        numbers[f"batch_{b}"] = {"compile_s": time.perf_counter() - t0,
                      **measure_step(run, step, parts, batch=b, length=length, dim=dim,
                                     window_flops=_window_flops(parts))}
        got = numbers[f"batch_{b}"]
        rows.append((f"encoder step, --compile, batch {b}", got["tokens_per_s"], "tokens/s",
                     f"{_percent_text(got['fraction_of_peak'])} of bf16 peak, {got['peak_gib']:.1f} GiB, "
                     f"backend {run.scale.compiler}, first step (compiling) {got['compile_s']:.0f} s"))
        run.free()
    torch._dynamo.reset()
    return numbers, rows


def part_attention(run: Run, parts: dict) -> tuple[dict, list]:
    """The thesis-size step with each fused attention kernel that PyTorch may pick forced in turn
    (``encoder`` leaves the choice to PyTorch): which one the eager step's time depends on."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    names = ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION") if run.device.type == "cuda" else (
        "FLASH_ATTENTION", "MATH")
    _, loss_fn, optimiser, length, dim, batch = thesis_step(run)
    step, numbers, rows = step_of(loss_fn, optimiser, device=run.device), {}, []
    for name in names:
        def forced(x, backend=getattr(SDPBackend, name)):
            with sdpa_kernel(backend):
                step(x)
        try:
            numbers[name] = measure_step(run, forced, parts, batch=batch, length=length, dim=dim,
                                         window_flops=_window_flops(parts))
        except RuntimeError as exc:  # this kernel does not take these inputs on this device
            numbers[name] = {"unavailable": str(exc).splitlines()[0]}
            rows.append((f"  attention {name.lower()}", None, "tokens/s", "unavailable here"))
            continue
        rows.append((f"  attention {name.lower()}", numbers[name]["tokens_per_s"], "tokens/s",
                     f"{_percent_text(numbers[name]['fraction_of_peak'])} of bf16 peak"))
        run.free()
    return numbers, [("encoder step, attention forced", None, "", f"batch {batch}, bf16 autocast"), *rows]


def part_patchifier(run: Run, parts: dict) -> tuple[dict, list]:
    cfg = resolve("patchifier-paper", run.scale.patchifier)
    p = cfg.patchifier
    model, stage, optimiser = pretraining(cfg, "patchifier", stage=1, device=run.device)  # stage II
    batch, length = stage.config.batch_size, p.window_patches * p.model.patch_frames
    x = frames(batch, length, p.mel.n_mels, device=run.device)
    x["x"] = -0.8 * torch.rand_like(x["x"])  # the paper's scaling: dB x 0.01 against the clip's peak
    step = step_of(lambda b: stage.objective(model, b), optimiser, device=run.device)
    seconds = run.timed(lambda: step(x))
    audio = batch * length / LogMel.frame_rate(p.mel) / seconds
    enc = p.model.encoder
    return ({"batch": batch, "window_frames": length, "step_s": seconds, "audio_s_per_s": audio},
            [("Patchifier stage II", audio, "audio s/s", f"{p.model.filters}-filter CNN, d{enc.d_model} x "
              f"{enc.n_layers} layers, batch {batch} x {p.window_patches} patches, bf16 autocast")])


# ---- tokens, features, embeddings ------------------------------------------------------------------
def part_vqvae(run: Run, parts: dict) -> tuple[dict, list]:
    torch.manual_seed(0)
    model = VQVAE(run.scale.vqvae)
    for block in model.bottleneck.level_blocks:
        block.k.normal_()
    save_vqvae(model, run.tmp / "vqvae.pth.tar")
    model = load_jukebox_vqvae(run.tmp / "vqvae.pth.tar").to(run.device)
    level, seconds = model.config.levels - 1, run.scale.vqvae_seconds
    y = notes(seconds, model.config.sample_rate)

    def one_shot() -> np.ndarray:
        x = torch.from_numpy(y).to(run.device).view(1, -1, 1)
        return model.encode(x, start_level=level, end_level=level + 1)[0][0].cpu().numpy()

    def chunked() -> np.ndarray:
        return encode_chunked(model, y, level=level, chunk_seconds=run.scale.chunk_seconds)

    # TF32 convolutions (cuDNN's default) round to 10 bits, and the two encodes run other kernels
    # at other lengths: near-tied tokens would flip between them.
    tf32, torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.allow_tf32, False
    try:
        with torch.inference_mode():
            t_one, t_chunked = run.timed(one_shot, warmup=1, repeats=3), run.timed(chunked, warmup=1, repeats=3)
            a, b = one_shot(), chunked()
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    if a.shape != b.shape:
        raise RuntimeError(f"one-shot encode gave {a.shape} tokens, chunked {b.shape}")
    differ = int((a != b).sum())
    if differ > len(a) // 1000:  # more than near ties rounding apart: the chunks do not line up
        raise RuntimeError(f"{differ} of {len(a)} tokens differ between the one-shot and chunked encodes")
    hop = model.config.hop_lengths[level]
    return ({"audio_s": seconds, "one_shot_x_realtime": seconds / t_one, "chunked_x_realtime": seconds / t_chunked,
             "tokens": len(a), "tokens_differing": differ, "hop": hop},
            [("VQ-VAE top level, one-shot", seconds / t_one, "x realtime",
              f"Jukebox architecture, hop {hop}, {seconds:g} s of audio, numpy in and out"),
             ("VQ-VAE top level, chunked", seconds / t_chunked, "x realtime",
              f"{run.scale.chunk_seconds:g} s chunks; tokens equal: {len(a) - differ}/{len(a)}")])


def batched_log_mel(y: torch.Tensor, *, config: MelConfig, window: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``log_mel`` of clips (C, n) on their device -> (C, frames, n_mels) dB: ``torch.stft`` with
    librosa's Hann ``window``, the power through librosa's filterbank ``basis`` (n_mels, bins), dB
    against 1.0 or each clip's peak, floored ``top_db`` below the clip's peak."""
    spec = torch.stft(y, config.n_fft, config.hop_length, window=window, center=config.center, pad_mode="constant",
                      return_complex=True)  # (C, bins, frames)
    db = 10 * torch.log10(torch.clamp(basis @ spec.abs() ** config.power, min=config.amin)).transpose(1, 2)
    peak = db.amax(dim=(1, 2), keepdim=True)
    if config.ref == "max":
        db, peak = db - peak, torch.zeros_like(peak)
    return db if config.top_db is None else torch.maximum(db, peak - config.top_db)


def part_mel(run: Run, parts: dict) -> tuple[dict, list]:
    config = resolve("thesis-fma-medium").mel
    n, seconds = run.scale.mel_clips, run.scale.mel_seconds
    clips = torch.from_numpy(np.stack([notes(seconds, config.sample_rate, seed=i) for i in range(n)]))
    window = torch.from_numpy(librosa.filters.get_window("hann", config.n_fft, fftbins=True).astype(np.float32))
    basis = torch.from_numpy(librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                                 fmin=config.fmin, fmax=config.fmax))
    window, basis = window.to(run.device), basis.to(run.device)
    with torch.inference_mode():
        device_s = run.timed(lambda: batched_log_mel(clips.to(run.device), config=config, window=window, basis=basis))
        ours = batched_log_mel(clips[:1].to(run.device), config=config, window=window, basis=basis)[0].cpu().numpy()
    diff = float(np.abs(ours - log_mel(clips[0].numpy(), config=config)).max())
    if diff > 0.05:
        raise RuntimeError(f"log-mel on {run.device} differs from log_mel by up to {diff:.3g} dB")
    library_s = run.timed(lambda: log_mel(clips[0].numpy(), config=config), warmup=1, repeats=3)
    setting = f"{config.sample_rate} Hz, n_fft {config.n_fft}, hop {config.hop_length}, {config.n_mels} mels"
    return ({"device_x_realtime": n * seconds / device_s, "library_cpu_x_realtime": seconds / library_s,
             "max_db_difference": diff, "clips": n, "clip_seconds": seconds},
            [(f"log-mel on {run.device.type}", n * seconds / device_s, "x realtime",
              f"{setting}; batches of {n} clips of {seconds:g} s, copied to the device; "
              f"max |dB - log_mel| {diff:.1e}"),
             ("log-mel, log_mel on the CPU", seconds / library_s, "x realtime", "mirformer's feature path, one clip")])


def part_embed(run: Run, parts: dict) -> tuple[dict, list]:
    cfg = resolve("thesis-fma-medium", run.scale.thesis)
    kind, rep = KINDS["spectroformer"], LogMel(cfg.mel)
    window = round(cfg.window_seconds * rep.frames_per_second)
    torch.manual_seed(0)
    model = kind.build(cfg, rep, Statistics(), n_outputs=0, head=kind.head, pooling="cls")
    stats = Statistics(np.full(rep.layout.dim, -40.0, np.float32), np.full(rep.layout.dim, 20.0, np.float32))
    save_encoder(run.tmp / "encoder.pt", kind=kind.name, model=model, representation=rep, scaling="standardise",
                 statistics=stats, window=window, eval_window=window, about={})
    seconds, audio = 60 * run.scale.embed_minutes, run.tmp / "long.wav"
    with sf.SoundFile(audio, "w", samplerate=rep.sample_rate, channels=1, subtype="PCM_16") as f:
        for i in range(int(np.ceil(seconds / 30))):  # 30 s at a time: memory stays small
            f.write(notes(min(30.0, seconds - 30 * i), rep.sample_rate, seed=i))
    embedder = Embedder(read_encoder(run.tmp / "encoder.pt"), device=run.device)
    t0 = time.perf_counter()
    _, positions = embedder.embed_file(audio, run.tmp / "long.npy")
    wall = time.perf_counter() - t0
    expected = rep.n_frames(int(seconds * rep.sample_rate))
    if positions != expected:
        raise RuntimeError(f"embed wrote {positions} positions, the file has {expected} frames")
    return ({"audio_s": seconds, "wall_s": wall, "x_realtime": seconds / wall, "positions": positions},
            [(f"embed, {run.scale.embed_minutes:g}-minute WAV", seconds / wall, "x realtime",
              f"Embedder.embed_file, encoder on {run.device.type}, {window}-frame windows; {wall:.1f} s")])


# ---- the end-to-end comparison ---------------------------------------------------------------------
def tone_folder(root: Path, sr: int = 16000) -> Path:
    """train/validation/test folders of three classes of 1.5 s tones (tests/test_probe.py's)."""
    rng, t = np.random.default_rng(0), np.arange(int(1.5 * sr)) / sr
    for split, n in {"train": 8, "validation": 4, "test": 4}.items():
        for label, hz in {"low": 300.0, "mid": 600.0, "high": 1200.0}.items():
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                y = rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * hz * rng.uniform(0.97, 1.03) * t)
                sf.write(root / split / label / f"{i}.wav", y + 0.01 * rng.standard_normal(len(t)), sr)
    return root


def part_compare(run: Run, parts: dict) -> tuple[dict, list]:
    from mirformer.experiments.compare import run_compare

    accelerator = "gpu" if run.device.type == "cuda" else "cpu"
    cfg = resolve("quickstart", parse_overrides([*TINY_COMPARE, f"trainer.accelerator={accelerator}",
                                                 f"data={{name: folder, root: {tone_folder(run.tmp / 'tones')}}}"]))
    home, os.environ[HOME_ENV] = os.environ.get(HOME_ENV), str(run.tmp / "home")  # features and runs in tmp
    try:
        t0 = time.perf_counter()
        results = run_compare(cfg, run.tmp / "run", progress=False)
        wall = time.perf_counter() - t0
    finally:
        if home is None:
            del os.environ[HOME_ENV]
        else:
            os.environ[HOME_ENV] = home
    setup = results["setups"]["spectroformer-pretrained-finetuned"]
    metric, test = results["monitor"], setup["splits"]["test"]
    deformed = setup["robustness"]["noise-snr=10"]["splits"]["test"]
    return ({"wall_s": wall, "accelerator": accelerator, "precision": cfg.trainer.precision, "metric": metric,
             "test": test[metric], "test_clips": test["n"], "deformed_test": deformed[metric],
             "machine": results["machine"]},
            [("tiny compare, bf16-mixed", wall, "s", f"accelerator {accelerator}: pretrain, fine-tune, report; "
              f"test {metric} {test[metric]:.2f} on {test['n']} clips, {deformed[metric]:.2f} at 10 dB SNR")])


PARTS = {"peak": part_peak, "encoder": part_encoder, "attention": part_attention,
         "largest_batch": part_largest_batch,
         "patchifier": part_patchifier, "vqvae": part_vqvae, "mel": part_mel, "embed": part_embed,
         "compare": part_compare,
         "encoder_compiled": part_encoder_compiled}  # last: its compile time is the least predictable


# ---- the command -----------------------------------------------------------------------------------
def _fraction(flops_per_s: float | None, parts: dict) -> float | None:
    peak = parts.get("peak", {}).get("bf16_matmul_flops")
    return flops_per_s / peak if peak and flops_per_s else None


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction


def _percent_text(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}%"


def _cell(value) -> str:
    if value is None or isinstance(value, str):
        return value or "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(rows: list, title: str) -> str:
    cells = [("part", "value", "unit", "notes")] + [(n, _cell(v), u, notes) for n, v, u, notes in rows]
    width = [max(len(c[i]) for c in cells) for i in range(3)]
    return "\n".join([title] + [f"{n:<{width[0]}}  {v:>{width[1]}}  {u:<{width[2]}}  {notes}".rstrip()
                                for n, v, u, notes in cells])


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.startswith("model name")]
    return f"{names[0] if names else 'CPU'} ({torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="run on the CPU instead of the first GPU")
    p.add_argument("--tiny", action="store_true", help="every part at a size that runs in seconds")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "gpu_check.json", help="JSON file")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts")
    args = p.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device; run with --cpu (and --tiny for a quick check)")
    device = torch.device("cpu") if args.cpu else torch.device("cuda", torch.cuda.current_device())
    report = {"device": device_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
              "cpu": args.cpu, "tiny": args.tiny, "parts": {}, "errors": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="mirformer-gpu-check-") as tmp:
        run = Run(device, TINY if args.tiny else FULL, Path(tmp), time.perf_counter())
        for name in args.parts:
            t0 = time.perf_counter()
            try:
                numbers, part_rows = PARTS[name](run, report["parts"])
            except Exception as exc:  # noqa: BLE001 - shown loudly below; the other parts still run
                traceback.print_exc()
                error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                numbers, part_rows, report["errors"][name] = {"error": error}, [(name, "FAILED", "", error)], error
            report["parts"][name] = {**numbers, "part_s": time.perf_counter() - t0}
            rows += part_rows
            run.free()
            report["wall_s"] = time.perf_counter() - run.started
            write_json(args.out, report)
            print(f"gpu_check: {name} {'FAILED' if name in report['errors'] else 'done'} in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
    cuda = f", CUDA {torch.version.cuda}" if device.type == "cuda" else ""
    print(f"gpu_check: wrote {args.out}")
    print(table(rows, f"{report['device']}, torch {torch.__version__}{cuda}; {report['wall_s']:.0f} s in all"
                + (", --tiny" if args.tiny else "")), flush=True)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
