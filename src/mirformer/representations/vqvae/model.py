"""OpenAI Jukebox's hierarchical VQ-VAE, module for module, so its released checkpoint loads.

Reference: Dhariwal et al. (2020), "Jukebox: A Generative Model for Music", and
``openai/jukebox/jukebox/vqvae/{vqvae,encdec,resnet,bottleneck}.py``. The module tree is
Jukebox's, so every key and shape of its state_dict (669 entries for the default config) is
here; the model's own ``state_dict`` adds each codebook's EMA statistics (``BottleneckBlock``).

Axis legend: N batch, T audio samples, L level, T_L = T // hop_lengths[L] tokens at level L,
D = emb_width, K = l_bins. Public tensors are NTC (``(N, T, 1)`` audio, ``(N, T_L, D)``
latents); convolutions run on NCT inside.

Each level is an independent encoder/decoder pair working from the raw waveform: level L
downsamples by ``hop_lengths[L]`` through level blocks 0..L, quantises with its own EMA codebook
and decodes back to audio alone (no cross-level skips, Jukebox's ``all_levels=False``).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from mirformer.errors import ConfigError

# Rows quantised per distance matrix: (rows, K) float32 stays ~16 MiB, instead of the 1.3 GB a
# 30 s clip's (165,375, 2048) level-0 matrix would take at once.
QUANTISE_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class VQVAEConfig:
    """Hyperparameters of the VQ-VAE (Jukebox's names in brackets; defaults are Jukebox's).

    Parameters
    ----------
    sample_rate : int > 0
        Sample rate of the audio in Hz [sr].
    levels : int >= 1
        Number of independent encoder/decoder levels.
    downs_t : tuple of int >= 1, one per level
        Stride-``strides_t[i]`` stages in level block i [downs_t].
    strides_t : tuple of even int >= 2, one per level
        Stride of those stages (odd strides would not map T to T // stride).
    emb_width : int >= 1
        Latent and code width D.
    l_bins : int >= 1
        Codebook size K per level.
    width, depth : int >= 1
        Channels and residual blocks per residual stack at multiplier 1.
    multipliers : tuple of int >= 1, one per level
        Multiply both ``width`` and ``depth`` of level L [hvqvae_multipliers].
    m_conv : float > 0
        Hidden width of a residual block is ``int(m_conv * width)``.
    dilation_growth_rate : int >= 1
        Residual block j of a stack has dilation ``dilation_growth_rate ** j``.
    reverse_decoder_dilation : bool
        Decoder stacks run their dilations largest first [vqvae_reverse_decoder_dilation].
    mu : float in (0, 1)
        EMA decay of the codebook statistics [l_mu].
    threshold : float > 0
        Codes whose EMA count falls below this are restarted [revival_threshold].
    commit : float >= 0
        Weight of the commitment loss (used by the training loss, not by the model).
    """

    sample_rate: int = 44100
    levels: int = 3
    downs_t: tuple[int, ...] = (3, 2, 2)
    strides_t: tuple[int, ...] = (2, 2, 2)
    emb_width: int = 64
    l_bins: int = 2048
    width: int = 32
    depth: int = 4
    multipliers: tuple[int, ...] = (2, 1, 1)
    m_conv: float = 1.0
    dilation_growth_rate: int = 3
    reverse_decoder_dilation: bool = True
    mu: float = 0.99
    threshold: float = 1.0
    commit: float = 0.02

    def __post_init__(self):
        for name in ("downs_t", "strides_t", "multipliers"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # lists from JSON/YAML
        ints = ("sample_rate", "levels", "emb_width", "l_bins", "width", "depth", "dilation_growth_rate")
        for name in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"VQVAEConfig.{name} must be an int >= 1, got {value!r}")
        for name in ("downs_t", "strides_t", "multipliers"):
            value = getattr(self, name)
            if len(value) != self.levels or not all(isinstance(v, int) and v >= 1 for v in value):
                raise ConfigError(f"VQVAEConfig.{name} must be {self.levels} ints >= 1 (levels), got {value!r}")
        if any(s % 2 for s in self.strides_t):
            raise ConfigError(f"VQVAEConfig.strides_t must be even, got {self.strides_t!r}")
        if not int(self.m_conv * self.width) >= 1:
            raise ConfigError(f"VQVAEConfig.m_conv * width must be >= 1, got m_conv={self.m_conv!r}")
        if not 0.0 < self.mu < 1.0:
            raise ConfigError(f"VQVAEConfig.mu must be in (0, 1), got {self.mu!r}")
        if not self.threshold > 0.0:
            raise ConfigError(f"VQVAEConfig.threshold must be > 0, got {self.threshold!r}")
        if not self.commit >= 0.0:
            raise ConfigError(f"VQVAEConfig.commit must be >= 0, got {self.commit!r}")

    @property
    def hop_lengths(self) -> tuple[int, ...]:
        """Input samples per token at each level (Jukebox default: 8, 32, 128)."""
        return tuple(int(h) for h in np.cumprod([s**d for s, d in zip(self.strides_t, self.downs_t)]))

    def to_dict(self) -> dict:
        """Plain Python values (lists for tuples), as stored in checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> VQVAEConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown VQVAEConfig keys {sorted(unknown)}")
        return cls(**d)


JUKEBOX = VQVAEConfig()
# One level, hop 128 (172 tokens/s at 22,050 Hz); its encoder takes 1/15 of the multiply-adds per
# second of audio of Jukebox's top level (0.057 vs 0.87 G): trains on a laptop CPU.
SMALL = dataclasses.replace(
    JUKEBOX, sample_rate=22050, levels=1, downs_t=(7,), strides_t=(2,), multipliers=(1,),
    width=16, depth=2, emb_width=32, l_bins=256,
)


class ResConv1DBlock(nn.Module):
    """Pre-activation residual block: ``x + conv1(relu(conv3_dilated(relu(x))))``, length-preserving."""

    def __init__(self, width: int, hidden: int, dilation: int):
        super().__init__()
        self.model = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(width, hidden, 3, 1, padding=dilation, dilation=dilation),
            nn.ReLU(),
            nn.Conv1d(hidden, width, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.model(x)


class Resnet1D(nn.Module):
    def __init__(self, cfg: VQVAEConfig, width: int, depth: int, *, reverse: bool):
        super().__init__()
        dilations = [cfg.dilation_growth_rate**j for j in range(depth)]
        if reverse:
            dilations.reverse()
        self.model = nn.Sequential(*(ResConv1DBlock(width, int(cfg.m_conv * width), d) for d in dilations))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class EncoderConvBlock(nn.Module):
    """``downs_t[i]`` x (strided conv, residual stack), then a conv to D: (N, c_in, T) -> (N, D, T // s**down)."""

    def __init__(self, cfg: VQVAEConfig, i: int, c_in: int, width: int, depth: int):
        super().__init__()
        s = cfg.strides_t[i]
        stages = [
            nn.Sequential(nn.Conv1d(c_in if j == 0 else width, width, 2 * s, s, s // 2), Resnet1D(cfg, width, depth, reverse=False))
            for j in range(cfg.downs_t[i])
        ]
        self.model = nn.Sequential(*stages, nn.Conv1d(width, cfg.emb_width, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DecoderConvBlock(nn.Module):
    """A conv from D, then ``downs_t[i]`` x (residual stack, transposed conv): (N, D, T) -> (N, D, T * s**down)."""

    def __init__(self, cfg: VQVAEConfig, i: int, width: int, depth: int):
        super().__init__()
        s, down = cfg.strides_t[i], cfg.downs_t[i]
        stages = [
            nn.Sequential(
                Resnet1D(cfg, width, depth, reverse=cfg.reverse_decoder_dilation),
                nn.ConvTranspose1d(width, cfg.emb_width if j == down - 1 else width, 2 * s, s, s // 2),
            )
            for j in range(down)
        ]
        self.model = nn.Sequential(nn.Conv1d(cfg.emb_width, width, 3, 1, 1), *stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _level_size(cfg: VQVAEConfig, level: int) -> tuple[int, int]:
    return cfg.width * cfg.multipliers[level], cfg.depth * cfg.multipliers[level]


class Encoder(nn.Module):
    """Level ``level``'s encoder: level blocks 0..level applied in order, (N, 1, T) -> (N, D, T_L)."""

    def __init__(self, cfg: VQVAEConfig, level: int):
        super().__init__()
        width, depth = _level_size(cfg, level)
        self.level_blocks = nn.ModuleList(
            EncoderConvBlock(cfg, i, 1 if i == 0 else cfg.emb_width, width, depth) for i in range(level + 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.level_blocks:
            x = block(x)
        return x


class Decoder(nn.Module):
    """Level ``level``'s decoder: level blocks level..0, then ``out``, (N, D, T_L) -> (N, 1, T_L * hop)."""

    def __init__(self, cfg: VQVAEConfig, level: int):
        super().__init__()
        width, depth = _level_size(cfg, level)
        self.level_blocks = nn.ModuleList(DecoderConvBlock(cfg, i, width, depth) for i in range(level + 1))
        self.out = nn.Conv1d(cfg.emb_width, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in reversed(self.level_blocks):
            x = block(x)
        return self.out(x)


_NATIVE_CONV_LOCK = threading.Lock()
_NATIVE_CONV_USERS = 0  # encodes running now
_ONEDNN_BEFORE = True  # the flag before the first of them


@contextmanager
def _length_invariant_convs(device: torch.device) -> Iterator[None]:
    """On the CPU, run convolutions without oneDNN, so a token does not depend on the input length.

    PyTorch runs a batch-1 CPU convolution with oneDNN when its input has more than 20,480
    elements, else with its native im2col + GEMM; the two round differently (~1e-7), which flips
    near-tied tokens between a one-shot and a chunked encode. The native path alone gives the same
    bits at every length, at about 1.2x the time (Jukebox's level 0, one thread). The flag is
    process-wide, so threads encoding at once share one switch: the first to enter turns oneDNN
    off, the last to leave restores it (saving and restoring per thread left it off for good,
    and every later convolution in the process, Patchifier's included, ran 3x slower).
    """
    global _NATIVE_CONV_USERS, _ONEDNN_BEFORE
    if device.type != "cpu":
        yield
        return
    with _NATIVE_CONV_LOCK:
        if _NATIVE_CONV_USERS == 0:
            _ONEDNN_BEFORE = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = False
        _NATIVE_CONV_USERS += 1
    try:
        yield
    finally:
        with _NATIVE_CONV_LOCK:
            _NATIVE_CONV_USERS -= 1
            if _NATIVE_CONV_USERS == 0:
                torch.backends.mkldnn.enabled = _ONEDNN_BEFORE


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


class Bottleneck(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.level_blocks = nn.ModuleList(BottleneckBlock(cfg) for _ in range(cfg.levels))


class VQVAE(nn.Module):
    """Jukebox's VQ-VAE: per level an encoder, an EMA codebook and a decoder.

    Parameters
    ----------
    config : VQVAEConfig or None
        Hyperparameters (None: ``JUKEBOX``).
    """

    def __init__(self, config: VQVAEConfig | None = None):
        super().__init__()
        self.config = cfg = config or JUKEBOX
        self.encoders = nn.ModuleList(Encoder(cfg, level) for level in range(cfg.levels))
        self.decoders = nn.ModuleList(Decoder(cfg, level) for level in range(cfg.levels))
        self.bottleneck = Bottleneck(cfg)

    def _check_audio(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 3 and x.shape[-1] == 1, f"expected mono audio (N, T, 1), got shape {tuple(x.shape)}"
        return x.permute(0, 2, 1).float()  # (N, 1, T)

    def _check_level(self, level: int) -> None:
        assert 0 <= level < self.config.levels, f"level {level} not in [0, {self.config.levels})"

    def codebook(self, level: int) -> torch.Tensor:
        """Codebook of ``level``: (K, D), row = token id."""
        self._check_level(level)
        return self.bottleneck.level_blocks[level].k

    def dequantise(self, tokens: torch.Tensor, level: int) -> torch.Tensor:
        """Code vectors of ``tokens`` (N, T_L) int64 at ``level``: (N, T_L, D)."""
        return F.embedding(tokens, self.codebook(level))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, *, start_level: int = 0, end_level: int | None = None) -> list[torch.Tensor]:
        """Tokens of audio ``x`` (N, T, 1), float in [-1, 1] at ``sample_rate``.

        Returns one int64 tensor (N, T // hop_lengths[L]) per level L in [start_level, end_level).
        Only those levels' encoders run.
        """
        end_level = self.config.levels if end_level is None else end_level
        assert 0 <= start_level < end_level <= self.config.levels, f"bad levels [{start_level}, {end_level})"
        x = self._check_audio(x)
        tokens = []
        for level in range(start_level, end_level):
            if x.shape[-1] < self.config.hop_lengths[level]:  # no token; the strided convs would reject it
                tokens.append(torch.zeros(x.shape[0], 0, dtype=torch.int64, device=x.device))
                continue
            with _length_invariant_convs(x.device):
                h = self.encoders[level](x)  # (N, D, T_L)
            N, D, T = h.shape
            z, _ = self.bottleneck.level_blocks[level].quantise(h.permute(0, 2, 1).reshape(N * T, D))
            tokens.append(z.view(N, T))
        return tokens

    def decode(self, tokens: list[torch.Tensor], *, start_level: int = 0) -> torch.Tensor:
        """Audio (N, T_L * hop_L, 1) from ``tokens[0]`` (N, T_L) at level ``start_level``.

        As Jukebox's ``decode(all_levels=False)``: further levels in the list are ignored, each
        level's decoder reconstructs the audio alone.
        """
        h = self.dequantise(tokens[0], start_level).permute(0, 2, 1)  # (N, D, T_L)
        return self.decoders[start_level](h).permute(0, 2, 1)

    def forward(self, x: torch.Tensor) -> dict[str, list]:
        """Encode, quantise and decode every level (training; EMA codebook update in train mode).

        Parameters
        ----------
        x : Tensor [shape=(N, T, 1)]
            Mono audio in [-1, 1]; T a multiple of the top level's hop length.

        Returns
        -------
        out : dict of lists, one entry per level L
            ``tokens`` (N, T_L) int64; ``latents`` (N, T_L, D) encoder outputs; ``quantised``
            (N, T_L, D) straight-through code vectors (detached in eval mode); ``commit_losses``
            scalars; ``recons`` (N, T, 1) reconstructions; ``metrics`` dicts of scalar tensors
            (see ``BottleneckBlock.forward``).
        """
        assert x.shape[1] % self.config.hop_lengths[-1] == 0, (
            f"length {x.shape[1]} not a multiple of the top hop length {self.config.hop_lengths[-1]}"
        )
        x = self._check_audio(x)
        out = {key: [] for key in ("tokens", "latents", "quantised", "commit_losses", "recons", "metrics")}
        for level in range(self.config.levels):
            h = self.encoders[level](x)
            z, h_q, commit_loss, metrics = self.bottleneck.level_blocks[level](h, update_k=self.training)
            if not self.training:
                h_q = h_q.detach()  # as Jukebox: no straight-through gradient outside training
            out["tokens"].append(z)
            out["latents"].append(h.permute(0, 2, 1))
            out["quantised"].append(h_q.permute(0, 2, 1))
            out["commit_losses"].append(commit_loss)
            out["recons"].append(self.decoders[level](h_q).permute(0, 2, 1))
            out["metrics"].append(metrics)
        return out

    def restore_k(self) -> None:
        """Rebuild every level's EMA statistics from its loaded codebook (Jukebox's ``restore_k``)."""
        for block in self.bottleneck.level_blocks:
            block.restore_k()

    def receptive_field(self, level: int) -> int:
        """Input samples that one token of ``level`` depends on: 1 + sum over convs of (k - 1) * dilation * jump.

        The jump of a conv is the product of the strides before it; the encoder's convs are
        registered in the order they are applied.
        """
        self._check_level(level)
        field, jump = 1, 1
        for m in self.encoders[level].modules():
            if isinstance(m, nn.Conv1d):
                field += (m.kernel_size[0] - 1) * m.dilation[0] * jump
                jump *= m.stride[0]
        return field
