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

import threading
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from mirformer.representations.vqvae.bottleneck import Bottleneck
from mirformer.representations.vqvae.config import JUKEBOX, VQVAEConfig


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

    def codebooks(self, level: int) -> torch.Tensor:
        """The codebooks of ``level``: (C, K, D), row k of codebook c = token id k of codebook c."""
        self._check_level(level)
        k = self.bottleneck.level_blocks[level].k
        return k if self.config.codebooks > 1 else k[None]

    def dequantise(self, tokens: torch.Tensor, level: int) -> torch.Tensor:
        """The quantised latent of ``tokens`` at ``level``: (N, T_L) int64 ids of its one codebook, or
        (N, T_L, c) of its first c codebooks, whose vectors sum -> (N, T_L, D)."""
        books = self.codebooks(level)
        if tokens.ndim == 2:
            return F.embedding(tokens, books[0])
        return sum(F.embedding(tokens[..., c], books[c]) for c in range(tokens.shape[-1]))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, *, start_level: int = 0, end_level: int | None = None) -> list[torch.Tensor]:
        """Tokens of audio ``x`` (N, T, 1), float in [-1, 1] at ``sample_rate``.

        Returns one int64 tensor (N, T // hop_lengths[L]) per level L in [start_level, end_level),
        (N, T // hop_lengths[L], C) with several codebooks. Only those levels' encoders run.
        """
        end_level = self.config.levels if end_level is None else end_level
        assert 0 <= start_level < end_level <= self.config.levels, f"bad levels [{start_level}, {end_level})"
        x = self._check_audio(x)
        tokens = []
        for level in range(start_level, end_level):
            if x.shape[-1] < self.config.hop_lengths[level]:  # no token; the strided convs would reject it
                shape = (x.shape[0], 0) if self.config.codebooks == 1 else (x.shape[0], 0, self.config.codebooks)
                tokens.append(torch.zeros(shape, dtype=torch.int64, device=x.device))
                continue
            with _length_invariant_convs(x.device):
                h = self.encoders[level](x)  # (N, D, T_L)
            N, D, T = h.shape
            z, _ = self.bottleneck.level_blocks[level].quantise(h.permute(0, 2, 1).reshape(N * T, D))
            tokens.append(z.view(N, T, *z.shape[1:]))
        return tokens

    def decode(self, tokens: list[torch.Tensor], *, start_level: int = 0) -> torch.Tensor:
        """Audio (N, T_L * hop_L, 1) from ``tokens[0]`` at level ``start_level``: (N, T_L) ids, or
        (N, T_L, c) ids of the level's first c codebooks (``dequantise``).

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
