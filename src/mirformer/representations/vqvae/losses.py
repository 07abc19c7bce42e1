"""Jukebox's VQ-VAE training losses and bandwidth normalisers, as pure torch functions.

Follows ``openai/jukebox`` (``vqvae/vqvae.py: _loss_fn``, ``utils/audio_utils.py``) with the
released VQ-VAE's settings: per level ``lmix`` (L2 + 0.02 x top-2048 squared error, divided by
the L2 bandwidth) plus the multi-resolution STFT loss (divided by the spectral bandwidth), and
0.02 x the commitment losses the bottleneck returns. The single-resolution spectral loss has
weight 0 in Jukebox and is left out. There is no codebook loss: the codebook learns by EMA.

Axis legend: N batch, T samples, C channels (1; Jukebox's layout is NTC), F frequency bins,
M STFT frames.

Two deliberate departures, neither changing a value: the per-item Frobenius norm is
``torch.linalg.vector_norm``, whose gradient at a zero difference is 0 where Jukebox's
``sum(x**2).sqrt()`` gives NaN; and half-precision input is promoted to float32 (Jukebox casts
everything to float32) while float64 stays float64, so tests can compare in double precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from numbers import Real

import numpy as np
import torch

from mirformer.errors import ConfigError, MirformerError

# (n_fft, hop_length, win_length) of Jukebox's multispectral loss.
MULTISPEC_CONFIGS = ((2048, 240, 1200), (1024, 120, 600), (512, 50, 240))
# Jukebox's DefaultSTFTValues: the bandwidth and spectral-convergence STFT.
SPEC_CONFIG = (2048, 256, 1536)


@dataclass(frozen=True)
class Bandwidth:
    """Loss normalisers measured on training audio (Jukebox's ``hps.bandwidth``).

    Parameters
    ----------
    l1 : float > 0
        Mean absolute sample value.
    l2 : float > 0
        Variance of the samples.
    spec : float > 0
        Mean Frobenius norm of one training example's STFT magnitude (n_fft 2048, hop 256,
        win 1536); it grows with the square root of the example length.
    """

    l1: float
    l2: float
    spec: float

    def __post_init__(self):
        for name in ("l1", "l2", "spec"):
            value = getattr(self, name)
            if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"Bandwidth.{name} must be a finite number > 0, got {value!r}")


def _as_bandwidth(bandwidth: Bandwidth | Mapping) -> Bandwidth:
    if isinstance(bandwidth, Bandwidth):
        return bandwidth
    missing = sorted({"l1", "l2", "spec"} - set(bandwidth))
    if missing:
        raise ConfigError(f"bandwidth lacks {missing}; got keys {sorted(bandwidth)}")
    return Bandwidth(l1=float(bandwidth["l1"]), l2=float(bandwidth["l2"]), spec=float(bandwidth["spec"]))


def _promote(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32 (squared errors underflow, CPU STFT refuses half); others unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_pair(x: torch.Tensor, x_hat: torch.Tensor) -> None:
    if x.ndim != 3 or x.shape != x_hat.shape:
        raise MirformerError(f"expected x and x_hat of one shape (N, T, C), got {tuple(x.shape)} and "
                             f"{tuple(x_hat.shape)}")


@lru_cache(maxsize=32)
def _hann(win: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Periodic Hann window [shape=(win,)], torch's default as in Jukebox."""
    # A window first made under inference_mode would be an inference tensor, which autograd
    # refuses to save in a later training step; this makes it an ordinary one.
    with torch.inference_mode(False):
        return torch.hann_window(win, device=device, dtype=dtype)


def _magnitude(y: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """``|STFT(y)|`` [shape=(N, F, M)] of ``y`` [shape=(N, T)], centred with reflect padding (torch's default)."""
    if y.shape[-1] <= n_fft // 2:
        raise MirformerError(f"STFT with n_fft {n_fft} needs more than {n_fft // 2} samples (reflect padding), "
                             f"got T={y.shape[-1]}")
    window = _hann(win, y.device, y.dtype)
    return torch.stft(y, n_fft, hop_length=hop, win_length=win, window=window, center=True,
                      return_complex=True).abs()


def _mono(x: torch.Tensor) -> torch.Tensor:
    """(N, T, C) -> (N, T), channels averaged (Jukebox's ``squeeze``)."""
    return _promote(x).mean(dim=-1)


def _spec_distance(a: torch.Tensor, b: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """Per-item Frobenius norm of the magnitude difference [shape=(N,)] of mono ``a``, ``b`` [shape=(N, T)]."""
    diff = _magnitude(a, n_fft, hop, win) - _magnitude(b, n_fft, hop, win)
    return torch.linalg.vector_norm(diff.flatten(1), dim=1)


def lmix_loss(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    *,
    bandwidth_l2: float,
    l2: float = 1.0,
    linf: float = 0.02,
    linf_k: int = 2048,
) -> torch.Tensor:
    """Jukebox's ``lmix`` reconstruction loss (its L1 term has weight 0 and is left out).

    ``(l2 * mean((x_hat - x)^2) + linf * mean(topk_k((x_hat - x)^2 per item))) / bandwidth_l2``
    with ``k = min(linf_k, T * C)``: the top-k term pushes down the worst samples of each example.

    Parameters
    ----------
    x, x_hat : torch.Tensor [shape=(N, T, C)]
        Target and reconstruction, samples in [-1, 1].
    bandwidth_l2 : float > 0
        Variance of the training samples (``Bandwidth.l2``).
    l2, linf : float >= 0
        Weights of the mean and the top-k squared error.
    linf_k : int > 0
        Largest squared errors per example averaged by the top-k term.

    Returns
    -------
    loss : torch.Tensor [shape=()]
    """
    _check_pair(x, x_hat)
    if linf_k <= 0:
        raise ConfigError(f"linf_k must be > 0, got {linf_k}")
    residual = (_promote(x_hat) - _promote(x)).square()
    loss = l2 * residual.mean()
    if linf:
        flat = residual.reshape(residual.shape[0], -1)  # (N, T * C)
        top = flat.topk(min(linf_k, flat.shape[1]), dim=1).values
        loss = loss + linf * top.mean()
    return loss / bandwidth_l2


def multispectral_loss(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    *,
    bandwidth_spec: float,
    configs: Sequence[tuple[int, int, int]] = MULTISPEC_CONFIGS,
) -> torch.Tensor:
    """Jukebox's multi-resolution STFT loss (nonrelative form).

    For each ``(n_fft, hop, win)`` the per-example Frobenius norm ``|| |STFT(x)| - |STFT(x_hat)| ||_F``
    (``torch.stft``, periodic Hann window of length ``win`` centred in ``n_fft``, ``center=True``,
    reflect padding), then the mean over configs, the mean over the batch, over ``bandwidth_spec``.

    Parameters
    ----------
    x, x_hat : torch.Tensor [shape=(N, T, C)]
        Target and reconstruction; channels are averaged to mono. ``T > max(n_fft) // 2``.
    bandwidth_spec : float > 0
        ``Bandwidth.spec``.
    configs : sequence of (n_fft, hop_length, win_length)
        STFT settings in samples (default: Jukebox's three).

    Returns
    -------
    loss : torch.Tensor [shape=()]
    """
    _check_pair(x, x_hat)
    if not configs:
        raise ConfigError("multispectral_loss needs at least one STFT config, got none")
    a, b = _mono(x), _mono(x_hat)
    per_item = sum(_spec_distance(a, b, *cfg) for cfg in configs) / len(configs)  # (N,)
    return per_item.mean() / bandwidth_spec


def spectral_convergence(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    *,
    n_fft: int = SPEC_CONFIG[0],
    hop: int = SPEC_CONFIG[1],
    win: int = SPEC_CONFIG[2],
    eps: float = 2e-3,
) -> torch.Tensor:
    """Relative spectral error ``|| |X| - |X_hat| ||_F / ||X||_F`` per example (Jukebox's metric).

    Examples whose target spectrum has norm ``<= eps`` (silence) score 0.

    Parameters
    ----------
    x, x_hat : torch.Tensor [shape=(N, T, C)]
        Target and reconstruction; channels are averaged to mono.
    n_fft, hop, win : int > 0
        STFT size, hop and window length in samples.
    eps : float > 0
        Norm below which the target counts as silent.

    Returns
    -------
    sc : torch.Tensor [shape=(N,)]
    """
    _check_pair(x, x_hat)
    target = _magnitude(_mono(x), n_fft, hop, win)
    residual = torch.linalg.vector_norm((target - _magnitude(_mono(x_hat), n_fft, hop, win)).flatten(1), dim=1)
    gt_norm = torch.linalg.vector_norm(target.flatten(1), dim=1)
    return residual * (gt_norm > eps) / gt_norm.clamp(min=eps)


def compute_bandwidth(
    signals: Iterable[np.ndarray],
    *,
    n_fft: int = SPEC_CONFIG[0],
    hop: int = SPEC_CONFIG[1],
    win: int = SPEC_CONFIG[2],
    segment_length: int | None = None,
) -> Bandwidth:
    """Jukebox's ``calculate_bandwidth`` over the given audio (Jukebox: 600 s of training data).

    ``l2`` is the variance and ``l1`` the mean absolute value of all samples pooled (float64);
    ``spec`` is the mean over examples of the STFT magnitude's Frobenius norm. The STFT is
    ``torch.stft`` in float64 with a periodic Hann window and reflect padding, which equals
    ``librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, pad_mode="reflect")`` (the
    default of the librosa Jukebox used; librosa >= 0.10 pads with zeros by default).

    Parameters
    ----------
    signals : iterable of np.ndarray [shape=(n,)]
        Mono examples in [-1, 1], each longer than ``n_fft // 2`` samples.
    n_fft, hop, win : int > 0
        STFT size, hop and window length in samples.
    segment_length : int > 0 or None
        Cut each signal into consecutive examples of this many samples (dropping the remainder)
        before taking norms. The norm grows as the square root of the example length, so it must
        match the training example length the loss sees; None: each signal is one example.

    Returns
    -------
    bandwidth : Bandwidth

    Raises
    ------
    MirformerError
        If a signal is not 1-D or not finite, or no example remains.
    """
    if segment_length is not None and segment_length <= n_fft // 2:
        raise ConfigError(f"segment_length must be > n_fft // 2 = {n_fft // 2}, got {segment_length}")
    n = total = total_sq = l1 = spec_total = 0.0
    n_examples = 0
    for i, y in enumerate(signals):
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 1 or not np.all(np.isfinite(y)):
            raise MirformerError(f"compute_bandwidth: signal {i} must be 1-D and finite, got shape {y.shape}")
        if segment_length is not None:
            y = y[: len(y) // segment_length * segment_length].reshape(-1, segment_length)
        examples = torch.from_numpy(np.atleast_2d(y))  # (examples, samples)
        if examples.numel() == 0:
            continue
        n += examples.numel()
        total += float(examples.sum())
        total_sq += float(examples.square().sum())
        l1 += float(examples.abs().sum())
        magnitude = _magnitude(examples, n_fft, hop, win)  # (examples, F, M)
        spec_total += float(torch.linalg.vector_norm(magnitude.flatten(1), dim=1).sum())
        n_examples += examples.shape[0]
    if n_examples == 0:
        raise MirformerError("compute_bandwidth got no audio (no signals, or all shorter than segment_length)")
    mean = total / n
    return Bandwidth(l1=l1 / n, l2=total_sq / n - mean**2, spec=spec_total / n_examples)


def vqvae_loss(
    x: torch.Tensor,
    recons: Sequence[torch.Tensor],
    commit_losses: Sequence[torch.Tensor],
    *,
    bandwidth: Bandwidth | Mapping,
    commit: float = 0.02,
    multispec_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Jukebox's total VQ-VAE loss over all levels, with its metrics.

    ``sum_l lmix_l + multispec_weight * sum_l multispec_l + commit * sum_l commit_l``; each level's
    decoder reconstructs ``x`` on its own.

    Parameters
    ----------
    x : torch.Tensor [shape=(N, T, C)]
        Target audio.
    recons : sequence of torch.Tensor [shape=(N, T, C)]
        One reconstruction per level, level 0 (finest) first.
    commit_losses : sequence of torch.Tensor [shape=()]
        One commitment loss per level, ``||sg(e) - h||^2 / numel(h)``.
    bandwidth : Bandwidth or mapping with keys l1, l2, spec
        Normalisers from ``compute_bandwidth``.
    commit : float >= 0
        Weight of the commitment losses (Jukebox: 0.02).
    multispec_weight : float >= 0
        Weight of the multispectral losses (Jukebox: 1.0).

    Returns
    -------
    loss : torch.Tensor [shape=()]
        Differentiable total.
    metrics : dict of str to detached torch.Tensor [shape=()]
        Jukebox's names, levels numbered from 1: ``recons_loss_l1``, ``multispectral_loss_l1``,
        ``commit_loss_l1``, ... and the sums ``recons_loss``, ``multispectral_loss``,
        ``commit_loss``; for level 0's reconstruction ``spectral_convergence`` (batch mean)
        and ``l1_loss``, ``l2_loss``, ``linf_loss`` (each over its bandwidth).
    """
    bw = _as_bandwidth(bandwidth)
    if not recons or len(recons) != len(commit_losses):
        raise MirformerError(f"need one commit loss per level and at least one level, got {len(recons)} "
                             f"reconstructions and {len(commit_losses)} commit losses")
    metrics = {}
    recons_total = multispec_total = 0.0
    for level, x_hat in enumerate(recons, start=1):
        r = lmix_loss(x, x_hat, bandwidth_l2=bw.l2)
        m = multispectral_loss(x, x_hat, bandwidth_spec=bw.spec)
        metrics[f"recons_loss_l{level}"] = r.detach()
        metrics[f"multispectral_loss_l{level}"] = m.detach()
        metrics[f"commit_loss_l{level}"] = commit_losses[level - 1].detach()
        recons_total = recons_total + r
        multispec_total = multispec_total + m
    commit_total = sum(commit_losses)
    loss = recons_total + multispec_weight * multispec_total + commit * commit_total
    with torch.no_grad():
        x0, x_hat0 = _promote(x), _promote(recons[0])
        metrics.update(
            recons_loss=recons_total.detach(),
            multispectral_loss=multispec_total.detach(),
            commit_loss=commit_total.detach(),
            spectral_convergence=spectral_convergence(x0, x_hat0).mean(),
            l1_loss=(x_hat0 - x0).abs().mean() / bw.l1,
            l2_loss=lmix_loss(x0, x_hat0, bandwidth_l2=bw.l2, linf=0.0),
            linf_loss=lmix_loss(x0, x_hat0, bandwidth_l2=bw.l2, l2=0.0, linf=1.0),
        )
    return loss, metrics
