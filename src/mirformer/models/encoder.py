"""The transformer encoder shared by every model: SpectroFormer, TokenFormer, CodebookFormer and
Patchifier's bottleneck.

Axis legend used in shapes: B batch, L input positions (frames or tokens), S = L + 1 with the
prepended CLS position, D d_model, H heads, Dh = D / H.

Attention uses ``F.scaled_dot_product_attention`` without attention-probability dropout: with
dropout on the attention probabilities PyTorch falls back to the unfused path that materialises
the S x S matrix (about 2x slower on CPU); dropout stays on the residual branches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mirformer.errors import ConfigError


@dataclass
class EncoderConfig:
    d_model: int = 768
    n_layers: int = 4
    n_heads: int = 12
    d_ff: int = 3072
    dropout: float = 0.1
    max_len: int = 8192  # longest input (without CLS) the positional table covers
    norm_eps: float = 1e-5
    positions: str = "sinusoidal"  # or "learned": a trained table (BERT, Patchifier)
    scale_inputs: bool = True  # multiply inputs by sqrt(d_model) (the thesis); BERT-style models do not

    def __post_init__(self):
        assert self.d_model % self.n_heads == 0, f"d_model {self.d_model} not divisible by n_heads {self.n_heads}"
        if self.positions not in POSITIONS:
            raise ConfigError(f"encoder positions must be one of {POSITIONS}, got {self.positions!r}")


POSITIONS = ("sinusoidal", "learned")


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """Vaswani et al.'s table [shape=(n, d)]: sin on even, cos on odd channels."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


class SelfAttention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        B, S, D = x.shape
        q, k, v = self.qkv(x).view(B, S, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # (B, H, S, Dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(y.transpose(1, 2).reshape(B, S, D))


class Block(nn.Module):
    """Pre-norm transformer block (pre-norm trains stably without the thesis' fp16 eps tweaks)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = SelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), attn_mask))
        return x + self.drop(self.mlp(self.norm2(x)))


def padding_if_any(pad: torch.Tensor | None) -> torch.Tensor | None:
    """``pad`` where it marks any padding, else None, for ``Encoder``. Models call it before the
    encoder: the check waits for the device, and inside the encoder it would split the graph that
    ``--compile`` compiles."""
    return pad if pad is not None and bool(pad.any()) else None


class Encoder(nn.Module):
    """CLS + positions + transformer blocks over already-embedded inputs.

    The input (the frontend's output) is scaled by sqrt(d_model) as in the thesis (unless
    ``scale_inputs`` is off), a learned CLS vector is *prepended* (position 0; real inputs keep
    positions 1..L), and positions are added: Vaswani et al.'s sinusoids, or a learned table.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.cls = nn.Parameter(torch.randn(cfg.d_model) * 0.02)
        if cfg.positions == "learned":
            self.positions = nn.Parameter(torch.randn(cfg.max_len + 1, cfg.d_model) * 0.02)
        else:
            self.register_buffer("positions", sinusoidal_positions(cfg.max_len + 1, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """Encode.

        Parameters
        ----------
        x : Tensor [shape=(B, L, D)]
            Embedded inputs.
        pad : bool Tensor [shape=(B, L)] or None
            True where the input is padding (never attended to). Pass None where nothing is
            (``padding_if_any``): attention then runs without a mask, on the fused kernels.

        Returns
        -------
        h : Tensor [shape=(B, L + 1, D)]
            Hidden states; ``h[:, 0]`` is the CLS state, ``h[:, 1:]`` the inputs'.
        """
        return self._run(x, pad, keep=False)[-1]

    def layers(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every layer's states [n_layers + 1 of shape=(B, L + 1, D)]: 0 the embedded input (scaled,
        with CLS and positions), 1 .. n_layers - 1 each block's output, n_layers the final, normed
        output (``forward``'s)."""
        return self._run(x, pad, keep=True)

    def _run(self, x: torch.Tensor, pad: torch.Tensor | None, *, keep: bool) -> list[torch.Tensor]:
        B, L, D = x.shape
        assert L <= self.cfg.max_len, f"input length {L} > max_len {self.cfg.max_len}"
        if self.cfg.scale_inputs:
            x = x * math.sqrt(D)
        x = torch.cat([self.cls.to(x.dtype).expand(B, 1, D), x], dim=1) + self.positions[: L + 1].to(x.dtype)
        attn_mask = None
        if pad is not None:
            keep_mask = torch.cat([pad.new_zeros(B, 1), pad], dim=1).logical_not()  # (B, S), CLS always kept
            attn_mask = keep_mask[:, None, None, :]  # (B, 1, 1, S): True = may attend
        x = self.drop(x)
        states = [x] if keep else []
        for i, block in enumerate(self.blocks):
            x = block(x, attn_mask)
            if keep and i < len(self.blocks) - 1:
                states.append(x)
        return [*states, self.norm(x)]
