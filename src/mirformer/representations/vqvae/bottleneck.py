"""The VQ-VAE's bottleneck: per level an EMA codebook (Jukebox's k-means with random restarts),
or several in series that each quantise what the ones before left (residual VQ).

Axis legend: N batch, D = emb_width, T_L tokens at a level, K = l_bins, C codebooks per level.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from mirformer.representations.vqvae.config import VQVAEConfig

# Rows quantised per distance matrix: (rows, K) float32 stays ~16 MiB, instead of the 1.3 GB a
# 30 s clip's (165,375, 2048) level-0 matrix would take at once.
QUANTISE_ELEMENTS = 1 << 22


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


class BottleneckBlock(nn.Module):
    """One level's codebook ``k`` (K, D), learned by EMA k-means with random restarts (no gradient).

    The EMA statistics ``k_sum`` (K, D) and ``k_elem`` (K,) and the flag ``initialised`` (0-d
    bool) are buffers saved with ``k``, so a training checkpoint resumes exactly. Jukebox's layout
    keeps ``k`` only (``checkpoint.official_state_dict``): a fresh block initialises ``k`` from
    the first training batch; after loading an official file, ``restore_k`` rebuilds the rest.
    """

    EMA_STATE = ("k_sum", "k_elem", "initialised")  # saved, but not in Jukebox's layout

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.l_bins, self.emb_width, self.mu, self.threshold = cfg.l_bins, cfg.emb_width, cfg.mu, cfg.threshold
        self.register_buffer("k", torch.zeros(cfg.l_bins, cfg.emb_width))
        self.register_buffer("k_sum", torch.zeros(cfg.l_bins, cfg.emb_width))
        self.register_buffer("k_elem", torch.zeros(cfg.l_bins))
        self.register_buffer("initialised", torch.tensor(False))

    def _random_codes(self, x: torch.Tensor) -> torch.Tensor:
        """K random rows of ``x`` (M, D), tiled with small noise when M < K; the same on every rank."""
        m = x.shape[0]
        if m < self.l_bins:
            x = x.repeat((self.l_bins + m - 1) // m, 1)
            x = x + torch.randn_like(x) * (0.01 / math.sqrt(self.emb_width))
        codes = x[torch.randperm(x.shape[0], device=x.device)[: self.l_bins]].contiguous()
        if _distributed():
            dist.broadcast(codes, 0)
        return codes

    @torch.no_grad()
    def init_k(self, x: torch.Tensor) -> None:
        """Codebook from random encoder vectors ``x`` (M, D); EMA counts start at 1."""
        self.k.copy_(self._random_codes(x))
        self.k_sum.copy_(self.k)
        self.k_elem.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def restore_k(self, num_tokens: int | None = None) -> None:
        """EMA statistics for a loaded ``k``: counts E = num_tokens / K (1 if None), sums k * E.

        ``num_tokens`` is the number of this level's tokens in one training step (all ranks).
        """
        expected = 1.0 if num_tokens is None else num_tokens / self.l_bins
        self.k_sum.copy_(self.k * expected)
        self.k_elem.fill_(expected)
        self.initialised.fill_(True)

    @torch.no_grad()
    def quantise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest code of each row of ``x`` (M, D): tokens (M,) int64 and squared distances (M,)."""
        k_norm = (self.k**2).sum(dim=1)
        rows = max(1, QUANTISE_ELEMENTS // self.l_bins)
        tokens, dists = [], []
        for xb in x.split(rows):
            d = (xb**2).sum(dim=1, keepdim=True) - 2 * xb @ self.k.T + k_norm  # (rows, K)
            dmin, z = d.min(dim=1)
            tokens.append(z)
            dists.append(dmin)
        return torch.cat(tokens), torch.cat(dists)

    @torch.no_grad()
    def update_k(self, x: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """One EMA step from encoder vectors ``x`` (M, D) and their ``tokens`` (M,); restarts dead codes."""
        batch_sum = torch.zeros_like(self.k).index_add_(0, tokens, x)  # (K, D)
        batch_elem = torch.bincount(tokens, minlength=self.l_bins).to(self.k.dtype)  # (K,)
        if _distributed():
            dist.all_reduce(batch_sum)
            dist.all_reduce(batch_elem)
        old_k = self.k.clone()
        self.k_sum.mul_(self.mu).add_(batch_sum, alpha=1.0 - self.mu)
        self.k_elem.mul_(self.mu).add_(batch_elem, alpha=1.0 - self.mu)
        used = self.k_elem >= self.threshold  # (K,)
        # Jukebox restarts a dead code's vector but keeps its EMA sum and count, as here.
        new_k = self.k_sum / self.k_elem[:, None]
        if not bool(used.all()):  # the same on every rank: k_elem is all-reduced
            new_k = torch.where(used[:, None], new_k, self._random_codes(x))
        self.k.copy_(new_k)
        prob = batch_elem / batch_elem.sum()
        return dict(
            entropy=-(prob * torch.log(prob + 1e-8)).sum(),
            used_curr=(batch_elem >= self.threshold).sum(),
            usage=used.float().mean(),
            dk=torch.linalg.vector_norm(self.k - old_k) / math.sqrt(self.k.numel()),
        )

    def forward(self, x: torch.Tensor, *, update_k: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Quantise encoder output ``x`` (N, D, T_L).

        Returns tokens (N, T_L), the straight-through quantised latent (N, D, T_L), the commit
        loss (MSE between ``x`` and its detached code vectors) and metrics (``fit`` = mean
        squared distance to the nearest code, ``pn`` = RMS of ``x`` about its mean, and with
        ``update_k`` the EMA step's ``entropy``, ``used_curr``, ``usage``, ``dk``).
        """
        N, D, T = x.shape
        flat = x.detach().permute(0, 2, 1).reshape(N * T, D).to(self.k.dtype)  # (N * T_L, D)
        if update_k and not bool(self.initialised):
            self.init_k(flat)
        tokens, dists = self.quantise(flat)
        x_d = F.embedding(tokens, self.k).view(N, T, D).permute(0, 2, 1)  # (N, D, T_L)
        metrics = dict(fit=dists.mean(), pn=torch.linalg.vector_norm(flat - flat.mean()) / math.sqrt(flat.numel()))
        if update_k:
            metrics.update(self.update_k(flat, tokens))
        commit_loss = F.mse_loss(x, x_d.detach())
        x_d = x + (x_d - x).detach()  # straight-through: forward uses the code, gradient goes to x
        return tokens.view(N, T), x_d, commit_loss, metrics


class ResidualBottleneckBlock(nn.Module):
    """``codebooks`` EMA codebooks in series (residual VQ, as SoundStream and EnCodec): each quantises
    what the ones before it left, learns by its own EMA and restarts its own dead codes. The
    quantised latent is the sum of the chosen codes, and the commitment loss ties the encoder
    output to that sum, as one codebook's ties it to its code. Its stages are
    ``BottleneckBlock``s, so the first alone is a one-codebook bottleneck."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.stages = nn.ModuleList(BottleneckBlock(cfg) for _ in range(cfg.codebooks))

    @property
    def k(self) -> torch.Tensor:
        """The codebooks (C, K, D), in order."""
        return torch.stack([stage.k for stage in self.stages])

    @torch.no_grad()
    def restore_k(self, num_tokens: int | None = None) -> None:
        for stage in self.stages:
            stage.restore_k(num_tokens)

    @torch.no_grad()
    def quantise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes of each row of ``x`` (M, D), one per stage: tokens (M, C) int64 and the squared
        distance to the sum of the codes (M,)."""
        residual, tokens = x, []
        for stage in self.stages:
            z, dists = stage.quantise(residual)
            residual = residual - F.embedding(z, stage.k)
            tokens.append(z)
        return torch.stack(tokens, 1), dists

    def forward(self, x: torch.Tensor, *, update_k: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """As ``BottleneckBlock.forward``, with tokens (N, T_L, C) and each stage's metrics
        suffixed ``_q<i>``; ``fit`` is the squared distance to the sum of the codes."""
        residual, total, tokens, metrics = x.detach(), torch.zeros_like(x), [], {}
        for i, stage in enumerate(self.stages):
            z, code, _, stage_metrics = stage(residual, update_k=update_k)
            code = code.detach()  # the chosen code vectors (N, D, T_L)
            total, residual = total + code, residual - code
            tokens.append(z)
            metrics.update({f"{key}_q{i}": value for key, value in stage_metrics.items()})
        metrics.update(fit=residual.pow(2).sum(1).mean(), pn=metrics["pn_q0"])
        commit_loss = F.mse_loss(x, total)
        return torch.stack(tokens, -1), x + (total - x).detach(), commit_loss, metrics


class Bottleneck(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        block = BottleneckBlock if cfg.codebooks == 1 else ResidualBottleneckBlock
        self.level_blocks = nn.ModuleList(block(cfg) for _ in range(cfg.levels))
