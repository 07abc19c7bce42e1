"""Encoding long audio in bounded memory, token for token equal to a one-shot encode."""

from __future__ import annotations

import numpy as np
import torch

from mirformer.representations.vqvae.model import VQVAE


@torch.inference_mode()
def encode_chunked(model: VQVAE, y: np.ndarray | torch.Tensor, *, level: int, chunk_seconds: float = 20.0) -> np.ndarray:
    """Tokens of a long mono signal, chunk by chunk, equal to a one-shot ``model.encode``.

    Each chunk of ``chunk_seconds`` worth of tokens is encoded with a context of the level's
    receptive field (rounded up to whole tokens) on both sides, so every kept token sees exactly
    the samples and zero padding it would see in one pass; chunks start on multiples of the hop,
    so the strided convolutions sample the same grid. Memory is bounded by one chunk plus context.
    On the CPU the tokens equal the one-shot ones bit for bit; on a GPU, cuDNN picks its algorithm
    per input shape, so a token whose two nearest codes are within rounding error may differ.

    Parameters
    ----------
    model : VQVAE
        Runs on its own device.
    y : np.ndarray or Tensor [shape=(n,)]
        Mono audio in [-1, 1] at ``model.config.sample_rate``.
    level : int
        Level to encode.
    chunk_seconds : float > 0
        Audio per chunk in seconds, without the context (default 20 s; at level 0 of the Jukebox
        config the context adds about 2.1 s on each side, at the top level 0.5 s).

    Returns
    -------
    tokens : np.ndarray [shape=(n // hop_lengths[level],), dtype=int64]
    """
    assert chunk_seconds > 0, f"chunk_seconds must be > 0, got {chunk_seconds}"
    y = torch.as_tensor(y)
    assert y.ndim == 1, f"expected mono audio (n,), got shape {tuple(y.shape)}"
    device = model.codebook(level).device  # also checks the level
    hop = model.config.hop_lengths[level]
    n = y.shape[0]
    n_tokens = n // hop
    context = -(-model.receptive_field(level) // hop)  # in tokens
    chunk = max(1, round(chunk_seconds * model.config.sample_rate / hop))
    tokens = np.empty(n_tokens, dtype=np.int64)
    for a in range(0, n_tokens, chunk):
        b = min(a + chunk, n_tokens)
        lo = max(0, a - context)
        x = y[lo * hop : min(n, (b + context) * hop)].to(device, torch.float32).view(1, -1, 1)
        z = model.encode(x, start_level=level, end_level=level + 1)[0][0]
        tokens[a:b] = z[a - lo : b - lo].cpu().numpy()
    return tokens
