"""What a setup costs, measured in the run on the machine it ran on: parameters (all and those
that train), forward FLOPs per second of audio of its representation and its model (counted by
``torch.utils.flop_counter``: matrix products, convolutions and attention; FFTs and numpy work
are not counted), extraction speed and store size per hour of its input, training throughput and
inference speed."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from mirformer.representations import Representation

PROBE_SECONDS = 10.0  # audio a representation's FLOPs are counted on, in seconds


def machine() -> str:
    """The processor the run computed on: the GPU's name when one is used, else the CPU's model and cores."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {torch.get_num_threads()} threads"


def flops(fn, *args) -> int:
    """Forward FLOPs of ``fn(*args)`` as torch counts them (a multiply-add counts 2)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():  # not inference_mode: the counter fails on weight-normalised layers in it
        fn(*args)
    return counter.get_total_flops()


def representation_flops_per_second(rep: Representation) -> float | None:
    """FLOPs ``rep.encode`` spends per second of audio, on ``PROBE_SECONDS`` of seeded noise; None
    for a representation that encodes no audio (precomputed files), none that torch counts (numpy),
    or one the counter fails on."""
    if not rep.frames_from_samples:
        return None
    y = 0.1 * np.random.default_rng(0).standard_normal(round(PROBE_SECONDS * rep.sample_rate)).astype(np.float32)
    try:
        return flops(rep.encode, y) / PROBE_SECONDS or None
    except (AttributeError, RuntimeError):
        # torch's counter fails inside inference mode on weight-normalised layers, which codecs
        # (EnCodec, DAC) encode in: left unmeasured rather than guessed.
        return None


def parameters(model: nn.Module) -> dict:
    """``{"total", "trainable"}`` parameter counts (trainable: ``requires_grad``, after a strategy froze its parts)."""
    return {"total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def input_cost(rep: Representation, store) -> dict:
    """What an input costs before any model reads it: its representation's FLOPs per second of
    audio, its extraction speed (x realtime, one thread) and its store's bytes per hour of audio."""
    return {"representation_flops_per_second": representation_flops_per_second(rep),
            "extraction_x_realtime": store.extraction_speed(), "store_bytes_per_hour": store.bytes_per_hour()}


def model_cost(model: nn.Module, window: dict, window_seconds: float | None) -> dict:
    """A downstream model's parameters and forward FLOPs per second of audio, counted on one
    evaluation ``window`` (a snippet dataset's item) of ``window_seconds`` (None: a clip vector,
    whose seconds are unknown: FLOPs per clip instead)."""
    model = model.cpu().eval()
    per_window = flops(model, window["x"][None], window["pad"][None])
    out = {"parameters": parameters(model)}
    if window_seconds:
        out["model_flops_per_second"] = per_window / window_seconds
    else:
        out["model_flops_per_clip"] = per_window
    return out
