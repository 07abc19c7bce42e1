"""Output heads: a downstream head on a pooled state, per-position prediction for pretraining."""

from __future__ import annotations

import torch
import torch.nn as nn

HEADS = ("linear", "mlp", "pooler")
POOLINGS = ("cls", "mean")


class ClassificationHead(nn.Module):
    """Pooled state (B, D) -> outputs (B, n_outputs): a linear layer after dropout (a linear probe)."""

    def __init__(self, d_model: int, n_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, n_outputs))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)


class MLPHead(nn.Module):
    """Pooled state (B, D) -> outputs (B, n_outputs) through one hidden ReLU layer of width D (MARBLE's MLP probe)."""

    def __init__(self, d_model: int, n_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(d_model, n_outputs))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)


class PoolerHead(nn.Module):
    """Pooled state (B, D) -> outputs (B, n_outputs): BERT's pooler (dense + tanh), then dropout + linear
    (Patchifier's downstream head)."""

    def __init__(self, d_model: int, n_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh(), nn.Dropout(dropout),
                                 nn.Linear(d_model, n_outputs))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)


def make_head(kind: str, d_model: int, n_outputs: int, dropout: float) -> nn.Module:
    return {"linear": ClassificationHead, "mlp": MLPHead, "pooler": PoolerHead}[kind](d_model, n_outputs, dropout)


def pool(h: torch.Tensor, pad: torch.Tensor | None, how: str) -> torch.Tensor:
    """Encoder states (B, 1 + L, D), CLS first -> (B, D): the CLS state, or the mean of the real positions."""
    if how == "cls":
        return h[:, 0]
    states = h[:, 1:]
    if pad is None:
        return states.mean(1)
    keep = pad.logical_not().unsqueeze(-1).to(states.dtype)  # (B, L, 1)
    return (states * keep).sum(1) / keep.sum(1).clamp_min(1.0)


class PositionHead(nn.Module):
    """Hidden states (B, L, D) -> per-position outputs (B, L, n_outputs) (BERT's MLM head shape)."""

    def __init__(self, d_model: int, n_outputs: int, eps: float = 1e-5):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.LayerNorm(d_model, eps=eps),
                                 nn.Linear(d_model, n_outputs))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)
