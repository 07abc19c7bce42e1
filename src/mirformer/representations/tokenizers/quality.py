"""How well a tokenizer's first N codebooks reconstruct audio: its own decoder on its own ids."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from mirformer.representations.tokenizers.base import Tokenizer

N_FFT = 1024
EPS = 1e-10  # power floor: silence in both signals counts as equal, not as infinitely far


def log_spectral_distance(y: np.ndarray, y_hat: np.ndarray, *, n_fft: int = N_FFT) -> float:
    """Mean over frames of the RMS difference (dB) of the power spectra of ``y`` and ``y_hat``
    [shape=(n,)], Hann windows of ``n_fft`` samples, hop ``n_fft // 4``."""
    window = torch.hann_window(n_fft)
    power = [torch.stft(torch.from_numpy(np.ascontiguousarray(s, np.float32)), n_fft, n_fft // 4, window=window,
                        return_complex=True).abs() ** 2 for s in (y, y_hat)]
    diff = 10 * torch.log10(power[0] + EPS) - 10 * torch.log10(power[1] + EPS)
    return float(diff.pow(2).mean(0).sqrt().mean())


def reconstruction(tokenizer: Tokenizer, clips: Iterable[np.ndarray], *, codebooks: int) -> dict:
    """Decode the ids of ``codebooks`` codebooks of each clip (mono, at the tokenizer's rate) and
    compare with the clip: ``snr_db`` over all clips together (signal energy over error energy),
    ``log_spectral_distance_db`` averaged over clips, and ``clips``."""
    signal = error = 0.0
    distances = []
    for y in clips:
        y_hat = tokenizer.decode(tokenizer.encode(y, codebooks=codebooks))
        n = min(len(y), len(y_hat))  # a decoder gives whole frames
        y, y_hat = y[:n].astype(np.float64), y_hat[:n].astype(np.float64)
        signal, error = signal + float(np.sum(y**2)), error + float(np.sum((y - y_hat) ** 2))
        distances.append(log_spectral_distance(y, y_hat))
    return {"clips": len(distances), "snr_db": float(10 * np.log10(signal / max(error, EPS))),
            "log_spectral_distance_db": float(np.mean(distances))}
