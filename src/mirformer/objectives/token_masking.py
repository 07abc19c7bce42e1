"""BERT-style masked-token objective of TokenFormer and CodebookFormer (the thesis).

Of the real (non-padding) positions, ``choose_ratio`` are chosen; of those 80% are replaced by
the MASK id, 10% by a random token and 10% left unchanged. The loss is cross-entropy on the
chosen positions only: every other target is ``IGNORE``. CodebookFormer's frontend maps the MASK
id to a zero vector, so the same function zeroes / randomises / keeps its codebook vectors. With
several codebooks a position is chosen in all of them, and each codebook's ids are predicted.

Mask convention: ``mask`` is (B, L) bool, True = a position to predict. The batch is never
modified; CLS is prepended by the encoder after masking, so it can never be chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE = -100  # target of positions that are not predicted (F.cross_entropy's ignore_index)


@dataclass
class TokenMaskConfig:
    choose_ratio: float = 0.3  # positions chosen for prediction
    p_mask: float = 0.8  # of the chosen: replaced by MASK (CodebookFormer: zero vector)
    p_random: float = 0.1  # replaced by a random token; the rest (0.1) kept


def mask_tokens(ids: torch.Tensor, pad: torch.Tensor | None, cfg: TokenMaskConfig, *, vocab_size: int,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose, replace and return targets.

    With several codebooks (ids (B, L, C)) positions are chosen, and masked or kept, across all
    codebooks at once; a randomised position gets a random id in each codebook.

    Parameters
    ----------
    ids : int Tensor [shape=(B, L) or (B, L, C)]
        Token ids in ``[0, vocab_size)``.
    pad : bool Tensor [shape=(B, L)] or None
        True at padding, which is never chosen.
    cfg : TokenMaskConfig
    vocab_size : int
        The MASK id is ``vocab_size``.
    generator : torch.Generator or None

    Returns
    -------
    inputs : int Tensor [shape=ids.shape]
        ``ids`` with the chosen positions replaced (MASK / random / kept).
    mask : bool Tensor [shape=(B, L)]
        The chosen positions.
    targets : int Tensor [shape=ids.shape]
        ``ids`` at chosen positions, ``IGNORE`` elsewhere.
    """
    dev, positions = ids.device, ids.shape[:2]
    mask = torch.rand(positions, generator=generator, device=dev) < cfg.choose_ratio
    if pad is not None:
        mask &= ~pad
    action = torch.rand(positions, generator=generator, device=dev)
    to_mask = mask & (action < cfg.p_mask)
    to_random = mask & (action >= cfg.p_mask) & (action < cfg.p_mask + cfg.p_random)
    random_ids = torch.randint(0, vocab_size, ids.shape, generator=generator, device=dev)
    if ids.ndim == 3:  # every codebook of a position alike
        to_mask, to_random, chosen = to_mask[..., None], to_random[..., None], mask[..., None]
    else:
        chosen = mask
    inputs = torch.where(to_random, random_ids, ids).masked_fill(to_mask, vocab_size)
    targets = ids.masked_fill(~chosen, IGNORE)
    return inputs, mask, targets


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over chosen positions: logits (B, L, V), targets (B, L) with IGNORE; with
    several codebooks, logits (B, L, C, V) and targets (B, L, C): the mean of each codebook's."""
    if logits.ndim == 4:
        return torch.stack([masked_cross_entropy(logits[:, :, c], targets[..., c])
                            for c in range(logits.shape[2])]).mean()
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


class TokenObjective:
    """TokenFormer / CodebookFormer pretraining: predict the ids of the chosen positions."""

    def __init__(self, cfg: TokenMaskConfig, vocab_size: int):
        self.cfg, self.vocab_size = cfg, vocab_size

    def __call__(self, model, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        inputs, mask, targets = mask_tokens(batch["x"], batch["pad"], self.cfg, vocab_size=self.vocab_size,
                                            generator=generator)
        logits = model.forward_pretrain(inputs, batch["pad"])
        if not mask.any():  # a batch of padding only: nothing to predict, keep the graph
            return logits.sum() * 0.0
        return masked_cross_entropy(logits, targets)
