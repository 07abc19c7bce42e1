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
    """Token ids (B, L) in [0, vocab] -> (B, L, D); id ``vocab`` is MASK. With several codebooks, ids
    (B, L, C) and one embedding table per codebook, summed (as MusicGen and DASB do); each table's
    init is scaled so the sum keeps one table's spread.

    The CLS embedding is the encoder's learned ``cls`` vector, prepended after this frontend.
    """

    def __init__(self, vocab_size: int, d_model: int, codebooks: int = 1):
        super().__init__()
        if codebooks == 1:
            self.embed = nn.Embedding(vocab_size + 1, d_model)
            nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        else:
            self.embeds = nn.ModuleList(nn.Embedding(vocab_size + 1, d_model) for _ in range(codebooks))
            for table in self.embeds:
                nn.init.normal_(table.weight, std=(codebooks * d_model) ** -0.5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim == 2:
            return self.embed(ids)
        return sum(table(ids[..., c]) for c, table in enumerate(self.embeds))


def usage_weighted_standardise(vectors: torch.Tensor, counts: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) std (1, E) of ``vectors`` (K, E), each code weighted by how often it is
    used (``counts`` (K,); None: equally): the statistics of the tokens a model reads."""
    w = torch.ones(len(vectors)) if counts is None else torch.as_tensor(counts, dtype=torch.float64)
    w = (w / w.sum()).to(vectors)[:, None]
    mean = (w * vectors).sum(0, keepdim=True)
    return mean, (w * (vectors - mean) ** 2).sum(0, keepdim=True).sqrt().clamp_min(1e-5)


class CodebookProjection(nn.Module):
    """Token ids -> their codebook vectors (B, L, E) -> (B, L, D) by one linear map.

    One codebook (ids (B, L)): ``codebook`` holds the tokenizer's (vocab, E) vectors plus a zero
    row for the MASK id, so a masked position enters as a zero vector. It is a frozen buffer saved
    with the model, so a checkpoint carries the codebook it was trained with; fill it with
    ``set_codebook``. The vectors are standardised per dimension over the tokens the model will
    read (each code weighted by how often the training split uses it), as the mel frames are over
    the training split: the projection sees unit-variance inputs whatever the tokenizer's scale,
    and a masked position's zero vector is the mean token. Weighting matters: a trained VQ-VAE
    keeps unused, restarted codes far from the used ones, and an unweighted standardisation let
    those outliers squeeze the used codes together (a tiny CodebookFormer then stayed at chance on
    an easy task).

    Several codebooks (ids (B, L, C)), combined by ``combine``:

    - ``"sum"``: the tokenizer's own quantised latent, the sum of the C codes' vectors,
      standardised per dimension (its mean is the sum of the codebooks' usage-weighted means, its
      variance the sum of their variances: codebooks are treated as uncorrelated);
    - ``"weighted"``: DASB's learned weighted sum, softmax(w)_c times each codebook's own
      standardised vector.

    A frame whose first id is MASK (pretraining masks frames across every codebook) enters as zero.
    """

    COMBINE = ("sum", "weighted")

    def __init__(self, vocab_size: int, d_model: int, codebook_dim: int = 64, codebooks: int = 1,
                 combine: str = "sum"):
        super().__init__()
        if combine not in self.COMBINE:
            raise ValueError(f"combine must be one of {self.COMBINE}, got {combine!r}")
        self.vocab_size, self.combine = vocab_size, combine
        shape = (vocab_size + 1, codebook_dim) if codebooks == 1 else (codebooks, vocab_size + 1, codebook_dim)
        self.register_buffer("codebook", torch.zeros(shape))
        if codebooks > 1 and combine == "sum":
            self.register_buffer("mean", torch.zeros(codebook_dim))
            self.register_buffer("std", torch.ones(codebook_dim))
        if codebooks > 1 and combine == "weighted":
            self.weights = nn.Parameter(torch.zeros(codebooks))
        self.proj = nn.Linear(codebook_dim, d_model)
        _init_projection(self.proj)

    def set_codebook(self, vectors: torch.Tensor, counts: torch.Tensor | None = None) -> None:
        """Store ``vectors`` ((vocab, E), or (C, vocab, E)) for the ids to read, standardised with the
        statistics of the codes weighted by ``counts`` ((vocab,) or (C, vocab)), how often each is
        used; None: equally."""
        books = self.codebook if self.codebook.ndim == 3 else self.codebook[None]
        vectors = vectors.to(books).reshape(books.shape[0], books.shape[1] - 1, books.shape[2])
        counts = None if counts is None else torch.as_tensor(counts).reshape(books.shape[0], -1)
        stats = [usage_weighted_standardise(v, None if counts is None else counts[c]) for c, v in enumerate(vectors)]
        for c, (v, (mean, std)) in enumerate(zip(vectors, stats)):
            books[c, :-1] = v if self.codebook.ndim == 3 and self.combine == "sum" else (v - mean) / std
        if self.codebook.ndim == 3 and self.combine == "sum":
            self.mean.copy_(sum(m[0] for m, _ in stats))
            self.std.copy_(sum(s[0] ** 2 for _, s in stats).sqrt())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim == 2:
            return self.proj(self.codebook[ids])
        vectors = torch.stack([self.codebook[c][ids[..., c]] for c in range(ids.shape[-1])], -2)  # (B, L, C, E)
        if self.combine == "weighted":
            z = (torch.softmax(self.weights, 0)[:, None] * vectors).sum(-2)
        else:
            z = (vectors.sum(-2) - self.mean) / self.std
        return self.proj(z.masked_fill((ids[..., :1] == self.vocab_size), 0.0))
