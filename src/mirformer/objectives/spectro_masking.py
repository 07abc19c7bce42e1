"""SpectroFormer's masked-reconstruction objective (the thesis, after MusiCoder).

Mask convention: ``mask`` is a bool tensor shaped like the input, True = a cell to predict.
Functions are pure: they return new tensors and never modify the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SpectroMaskConfig:
    frame_ratio: float = 0.25  # fraction of frames inside masked blocks
    block_frames: int = 42  # block length in frames (42 x 128 / 44100 s: about 120 ms)
    p_zero: float = 0.7  # of the masked blocks: zeroed
    p_noise: float = 0.2  # set to standard-normal noise; the rest (0.1) kept unchanged
    channel_ratio: float = 0.25  # one contiguous block of this fraction of the bands, zeroed
    huber_delta: float = 1.0


def mask_spectrogram(x: torch.Tensor, pad: torch.Tensor | None, cfg: SpectroMaskConfig,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask frame blocks and one channel block of normalised spectrograms.

    Parameters
    ----------
    x : Tensor [shape=(B, L, F)]
        Normalised log-mel frames.
    pad : bool Tensor [shape=(B, L)] or None
        True at padding frames; padding is never masked or predicted.
    cfg : SpectroMaskConfig
    generator : torch.Generator or None

    Returns
    -------
    inputs : Tensor [shape=(B, L, F)]
        ``x`` with masked blocks zeroed (p_zero), replaced by N(0, 1) noise (p_noise) or kept.
    mask : bool Tensor [shape=(B, L, F)]
        True on the cells to predict (masked frame blocks and the masked channel block).
    targets : Tensor [shape=(B, L, F)]
        The original ``x``.
    """
    B, L, F_ = x.shape
    dev = x.device
    block = max(1, min(cfg.block_frames, L))
    n_slots = L // block
    n_blocks = max(1, round(cfg.frame_ratio * L / block))
    # Non-overlapping blocks: choose n_blocks of the L // block slots per example.
    slot_scores = torch.rand(B, max(n_slots, 1), generator=generator, device=dev)
    chosen = slot_scores.argsort(dim=1)[:, :n_blocks]  # (B, n_blocks)
    action = torch.rand(B, n_blocks, generator=generator, device=dev)  # per block: zero / noise / keep
    frame_block = torch.full((B, L), -1, dtype=torch.long, device=dev)  # index of a frame's block, -1 if none
    offsets = torch.arange(block, device=dev)
    frames = (chosen[:, :, None] * block + offsets).reshape(B, -1)  # (B, n_blocks * block)
    frame_block.scatter_(1, frames, torch.arange(n_blocks, device=dev).repeat_interleave(block).expand(B, -1))
    frame_mask = frame_block >= 0
    block_action = torch.gather(action, 1, frame_block.clamp(min=0))  # (B, L)
    zero_frames = frame_mask & (block_action < cfg.p_zero)
    noise_frames = frame_mask & (block_action >= cfg.p_zero) & (block_action < cfg.p_zero + cfg.p_noise)

    n_ch = max(1, round(cfg.channel_ratio * F_))
    ch_start = torch.randint(0, F_ - n_ch + 1, (B,), generator=generator, device=dev)
    ch = torch.arange(F_, device=dev)
    channel_mask = (ch[None, :] >= ch_start[:, None]) & (ch[None, :] < (ch_start + n_ch)[:, None])  # (B, F)

    noise = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
    inputs = torch.where(noise_frames[..., None], noise, x)
    inputs = inputs.masked_fill(zero_frames[..., None] | channel_mask[:, None, :], 0.0)
    mask = frame_mask[..., None] | channel_mask[:, None, :]
    if pad is not None:
        inputs = inputs.masked_fill(pad[..., None], 0.0)
        mask = mask & ~pad[..., None]
    return inputs, mask, x


def masked_huber(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber loss averaged over masked cells only, so its scale does not depend on the mask ratio."""
    loss = F.huber_loss(pred.float(), target.float(), reduction="none", delta=delta)
    return (loss * mask).sum() / mask.sum().clamp(min=1)


class SpectroObjective:
    """SpectroFormer pretraining: mask, reconstruct, Huber loss on the masked cells."""

    def __init__(self, cfg: SpectroMaskConfig):
        self.cfg = cfg

    def __call__(self, model, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        inputs, mask, targets = mask_spectrogram(batch["x"], batch["pad"], self.cfg, generator)
        return masked_huber(model.forward_pretrain(inputs, batch["pad"]), targets, mask, self.cfg.huber_delta)
