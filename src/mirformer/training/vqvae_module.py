"""Lightning module training a VQ-VAE with Jukebox's objective.

Loss (``vqvae_loss``): per level lmix reconstruction (l2 + 0.02 top-k linf) + multi-resolution
STFT + 0.02 commitment, normalised by the training data's bandwidth; the codebooks learn by EMA
(mu 0.99) with random restarts inside the model, whose statistics are buffers: a Lightning
checkpoint carries them and a resumed run continues exactly. Logged: loss terms, codebook usage,
entropy, fit.
"""

from __future__ import annotations

import lightning as L
import torch

from mirformer.errors import MirformerError
from mirformer.representations.vqvae.losses import Bandwidth, vqvae_loss
from mirformer.representations.vqvae.model import VQVAE


class VQVAEModule(L.LightningModule):
    """Trains ``model``; batches carry ``x`` (B, T) mono audio crops (T a multiple of the top hop)."""

    def __init__(self, model: VQVAE, *, bandwidth: Bandwidth, lr: float = 3e-4, warmup: int = 100):
        super().__init__()
        self.model, self.bandwidth, self.lr, self.warmup = model, bandwidth, lr, warmup

    def step(self, batch: dict, stage: str) -> torch.Tensor:
        x = batch["x"].float().unsqueeze(-1)  # (B, T, 1)
        out = self.model(x)
        loss, metrics = vqvae_loss(x, out["recons"], out["commit_losses"], bandwidth=self.bandwidth,
                                   commit=self.model.config.commit)
        if not torch.isfinite(loss):
            raise MirformerError(f"non-finite VQ-VAE loss {loss.item()} at global step {self.global_step}")
        logs = {f"{stage}/{k}": v.float() for k, v in metrics.items() if v.ndim == 0}
        for level, m in enumerate(out["metrics"]):
            logs.update({f"{stage}/{k}_l{level}": v.float() for k, v in m.items() if torch.is_tensor(v) and v.ndim == 0})
        logs.pop(f"{stage}/loss", None)
        self.log_dict(logs, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=stage == "val")
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=len(x), prog_bar=True,
                 sync_dist=stage == "val")
        return loss

    def training_step(self, batch, batch_idx):
        return self.step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self.step(batch, "val")

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / self.warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
