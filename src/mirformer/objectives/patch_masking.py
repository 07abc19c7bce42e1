"""Patchifier's pretraining objectives and augmentations (Zhao & Li).

- Stage I, ``PatchAutoencoding``: random patch crops through the feature extractor and the
  decoder only; MSE between each patch and its reconstruction.
- Stage II, ``MaskedPatchModelling``: whole windows cut into patches; a ratio of the real
  patches, at uniformly random positions, replaced by the learnable mask token; bottleneck;
  decoder; MSE on the masked patches only.

Mask convention (as MAE's ``random_masking``): ``mask`` is (B, N) bool, True = a patch replaced
by the mask token and predicted; padding patches are never masked. Functions are pure: they
return new tensors and never modify the batch. Augmentations apply in training only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mirformer.errors import ConfigError
from mirformer.models.patchifier import patch_padding, patchify, unpatchify


@dataclass
class PatchMaskConfig:
    mask_ratio: float = 0.75  # of each window's real patches (stage II)
    rescale: list = field(default_factory=lambda: [0.9, 1.2])  # time-stretch factor range; [] = off
    intensity: list = field(default_factory=lambda: [0.8, 1.2])  # element-wise gain range; [] = off

    def __post_init__(self):
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        for name in ("rescale", "intensity"):
            r = getattr(self, name)
            if r and (len(r) != 2 or not 0 < float(r[0]) <= float(r[1])):
                raise ConfigError(f"{name} must be [] (off) or [low, high] with 0 < low <= high, got {r!r}")


def _uniform(n: int, low: float, high: float, generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def rescale_time(x: torch.Tensor, pad: torch.Tensor, factors: tuple[float, float],
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stretch each window along time by a random factor in ``factors`` (linear interpolation).

    A longer result is cropped at a random start back to L frames; a shorter one ends in
    padding. ``x`` (B, L, F) frames with padding ``pad`` (B, L) at the end; returns the same shapes.
    """
    B, L, _ = x.shape
    scale = _uniform(B, float(factors[0]), float(factors[1]), generator, x.device)
    offset = torch.rand(B, generator=generator, device=x.device)
    out, out_pad = torch.zeros_like(x), torch.ones_like(pad)
    for b in range(B):
        n = int((~pad[b]).sum())
        if n < 2:
            out[b], out_pad[b] = x[b], pad[b]
            continue
        m = max(1, round(n * float(scale[b])))
        y = F.interpolate(x[b, :n].T[None].float(), size=m, mode="linear", align_corners=False)[0].T.to(x.dtype)
        start = int(offset[b] * (m - L)) if m > L else 0
        k = min(m - start, L)
        out[b, :k], out_pad[b, :k] = y[start : start + k], False
    return out, out_pad


def augment(x: torch.Tensor, pad: torch.Tensor, cfg: PatchMaskConfig,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's augmentations, each switchable: time rescale, then element-wise intensity."""
    if cfg.rescale:
        x, pad = rescale_time(x, pad, cfg.rescale, generator)
    if cfg.intensity:
        low, high = float(cfg.intensity[0]), float(cfg.intensity[1])
        x = x * (low + (high - low) * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype))
        x = x.masked_fill(pad[..., None], 0.0)
    return x, pad


def random_patch_mask(patch_pad: torch.Tensor, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Choose ``round(ratio * n)`` of each row's ``n`` real patches, uniformly at random: at least one,
    and at most ``n - 1`` when ``n > 1``, so some patch is always left to predict from.

    ``patch_pad`` (B, N) bool, True = padding. Returns ``mask`` (B, N) bool, True = masked.
    """
    B, N = patch_pad.shape
    real = (~patch_pad).sum(1)  # (B,)
    n_mask = torch.minimum((ratio * real).round().clamp(min=1), (real - 1).clamp(min=1)) * (real > 0)
    scores = torch.rand(B, N, generator=generator, device=patch_pad.device).masked_fill(patch_pad, 2.0)
    rank = scores.argsort(1).argsort(1)  # each patch's place in its row's random order
    return rank < n_mask[:, None]


def _mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the cells of the given patches (M, F, P); 0 when there are none."""
    if len(target) == 0:
        return pred.sum() * 0.0
    return F.mse_loss(pred.float(), target.float())


class PatchAutoencoding:
    """Stage I: autoencode the patches of a batch of patch-sized crops (B, P, F)."""

    def __init__(self, cfg: PatchMaskConfig, patch_frames: int):
        self.cfg, self.patch_frames = cfg, patch_frames

    def _patches(self, model, batch, generator):
        x, pad = batch["x"], batch["pad"]
        if model.training:
            x, pad = augment(x, pad, self.cfg, generator)
        patches = patchify(x, self.patch_frames)  # (B, N, F, P)
        real = ~patch_padding(pad, self.patch_frames, patches.shape[1])
        return patches, real

    def __call__(self, model, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        patches, real = self._patches(model, batch, generator)
        targets = patches[real]  # (M, F, P)
        return _mse(model.forward_decoder(model.frontend(targets)), targets)

    @torch.no_grad()
    def examples(self, model, batch: dict, generator: torch.Generator | None = None, n: int = 4) -> dict:
        """``input``, ``masked`` (= input: nothing is masked) and ``reconstruction``, each (n, F, P)."""
        patches, real = self._patches(model, batch, generator)
        targets = patches[real][:n]
        recon = model.forward_decoder(model.frontend(targets))
        return {"input": targets.float().cpu(), "masked": targets.float().cpu(), "reconstruction": recon.float().cpu()}


class MaskedPatchModelling:
    """Stage II: mask patches of whole windows (B, L, F), reconstruct them, MSE on the masked ones."""

    def __init__(self, cfg: PatchMaskConfig, patch_frames: int):
        self.cfg, self.patch_frames = cfg, patch_frames

    def _forward(self, model, batch, generator):
        x, pad = batch["x"], batch["pad"]
        if model.training:
            x, pad = augment(x, pad, self.cfg, generator)
        patches = patchify(x, self.patch_frames)  # (B, N, F, P)
        ppad = patch_padding(pad, self.patch_frames, patches.shape[1])
        mask = random_patch_mask(ppad, self.cfg.mask_ratio, generator)
        h, _ = model.forward_encoder(x, pad, mask)
        return patches, mask, model.forward_decoder(h[:, 1:][mask])  # reconstructions (M, F, P)

    def __call__(self, model, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        patches, mask, recon = self._forward(model, batch, generator)
        return _mse(recon, patches[mask])

    @torch.no_grad()
    def examples(self, model, batch: dict, generator: torch.Generator | None = None, n: int = 4) -> dict:
        """Whole windows, each (n, F, N * P): ``input``, ``masked`` (masked patches NaN, drawn blank)
        and ``reconstruction`` (masked patches replaced by the model's)."""
        patches, mask, recon = self._forward(model, {k: v[:n] for k, v in batch.items()}, generator)
        masked = patches.float().masked_fill(mask[..., None, None], float("nan"))
        filled = patches.clone()
        filled[mask] = recon.to(filled.dtype)
        return {k: unpatchify(v).transpose(1, 2).float().cpu()
                for k, v in (("input", patches), ("masked", masked), ("reconstruction", filled))}
