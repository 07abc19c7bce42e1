"""Clip-level prediction: every window of every clip, logits averaged per clip."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from mirformer.training.snippets import TiledSnippets


def autocast_for(precision: str, device: torch.device):
    """The autocast context matching a Lightning precision string (none for full precision)."""
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision.startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


@torch.inference_mode()
def predict_clips(model: nn.Module, windows: TiledSnippets, *, batch_size: int = 32, precision: str = "32-true",
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """Mean window logits per clip [shape=(n_clips, C)], clips in ``windows.ids`` order."""
    device = torch.device(device)
    model = model.to(device).eval()
    total = torch.zeros(len(windows.ids), model.n_classes)
    count = torch.zeros(len(windows.ids))
    for batch in DataLoader(windows, batch_size=batch_size):
        with autocast_for(precision, device):
            logits = model(batch["x"].to(device), batch["pad"].to(device))
        total.index_add_(0, batch["track"], logits.float().cpu())
        count.index_add_(0, batch["track"], torch.ones(len(batch["track"])))
    return total / count[:, None]
