"""Frontends: map one representation's frames to d_model vectors, one class per input kind.

The encoder multiplies frontend outputs by sqrt(d_model) (the thesis, after Vaswani et al.). The
token frontends are initialised to give outputs of standard deviation d_model^-0.5, so that scaled
they match the sinusoidal positions' unit amplitude instead of drowning them (a tiny TokenFormer's
masked-token loss fell 20x in 150 steps this way, 1.2x with N(0, 1) embeddings). SpectroFormer
keeps PyTorch's default projection init, the thesis code's, under which the scaled frames
dominate the positions: on the quickstart that trained better from scratch (test macro F1 0.37
against 0.17 with the small init).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _init_projection(linear: nn.Linear) -> None:
    nn.init.normal_(linear.weight, std=(linear.in_features * linear.out_features) ** -0.5)
    nn.init.zeros_(linear.bias)


class SpectrogramProjection(nn.Module):
    """Normalised log-mel frames (B, L, n_mels) -> (B, L, D) by one linear map (the thesis' choice)."""

    def __init__(self, n_mels: int, d_model: int):
        super().__init__()
        self.proj = nn.Linear(n_mels, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class TokenEmbedding(nn.Module):
    """Token ids (B, L) in [0, vocab] -> (B, L, D); id ``vocab`` is MASK.

    The CLS embedding is the encoder's learned ``cls`` vector, prepended after this frontend.
    """

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size + 1, d_model)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids)


class CodebookProjection(nn.Module):
    """Token ids (B, L) -> their VQ codebook vectors (B, L, E) -> (B, L, D) by one linear map.

    ``codebook`` holds the tokenizer's (vocab, E) vectors plus a zero row for the MASK id, so a
    masked position enters as a zero vector. It is a frozen buffer saved with the model, so a
    checkpoint carries the codebook it was trained with; fill it with ``set_codebook``.

    The vectors are standardised per dimension over the tokens the model will read (each code
    weighted by how often the training split uses it), as the mel frames are over the training
    split: the projection sees unit-variance inputs whatever the tokenizer's scale, and a masked
    position's zero vector is the mean token. Weighting matters: a trained VQ-VAE keeps unused,
    restarted codes far from the used ones, and an unweighted standardisation let those outliers
    squeeze the used codes together (a tiny CodebookFormer then stayed at chance on an easy task).
    """

    def __init__(self, vocab_size: int, d_model: int, codebook_dim: int = 64):
        super().__init__()
        self.register_buffer("codebook", torch.zeros(vocab_size + 1, codebook_dim))
        self.proj = nn.Linear(codebook_dim, d_model)
        _init_projection(self.proj)

    def set_codebook(self, vectors: torch.Tensor, counts: torch.Tensor | None = None) -> None:
        """Store ``vectors`` (vocab, E) standardised with the mean and (population) standard deviation
        of the codes weighted by ``counts`` (vocab,), how often each is used; None: equally."""
        assert vectors.shape == (self.codebook.shape[0] - 1, self.codebook.shape[1]), \
            f"codebook {tuple(vectors.shape)} != (vocab, dim) {(self.codebook.shape[0] - 1, self.codebook.shape[1])}"
        vectors = vectors.to(self.codebook)
        w = torch.ones(len(vectors)) if counts is None else torch.as_tensor(counts, dtype=torch.float64)
        w = (w / w.sum()).to(vectors)[:, None]
        mean = (w * vectors).sum(0, keepdim=True)
        std = (w * (vectors - mean) ** 2).sum(0, keepdim=True).sqrt().clamp_min(1e-5)
        self.codebook[:-1] = (vectors - mean) / std

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.codebook[ids])
