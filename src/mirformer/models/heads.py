"""Output heads: classification on the CLS state, per-position prediction for pretraining."""

from __future__ import annotations

import torch
import torch.nn as nn


class ClassificationHead(nn.Module):
    """CLS state (B, D) -> logits (B, n_outputs)."""

    def __init__(self, d_model: int, n_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, n_outputs))

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.net(cls)


class PositionHead(nn.Module):
    """Hidden states (B, L, D) -> per-position outputs (B, L, n_outputs) (BERT's MLM head shape)."""

    def __init__(self, d_model: int, n_outputs: int, eps: float = 1e-5):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.LayerNorm(d_model, eps=eps),
                                 nn.Linear(d_model, n_outputs))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)
