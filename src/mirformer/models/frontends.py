"""Frontends: map one representation's frames to d_model vectors, one class per input kind."""

from __future__ import annotations

import torch
import torch.nn as nn


class SpectrogramProjection(nn.Module):
    """Normalised log-mel frames (B, L, n_mels) -> (B, L, D) by one linear map (the thesis' choice)."""

    def __init__(self, n_mels: int, d_model: int):
        super().__init__()
        self.proj = nn.Linear(n_mels, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
