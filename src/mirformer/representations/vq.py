"""Deep VQ representations: a VQ-VAE's token ids, or their codebook vectors, at one level.

The tokenizer is any checkpoint ``load_jukebox_vqvae`` reads: OpenAI's official ``vqvae.pth.tar``
or a VQ-VAE trained by mirformer. The checkpoint file's SHA-1 goes into ``config_dict``, so the
feature store never mixes tokens of two tokenizers.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from mirformer.errors import ConfigError
from mirformer.representations.base import Representation, register_representation

VQ_VERSION = "1"


def file_sha1(path: str | Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@register_representation
class VQTokens(Representation):
    """Token ids of one VQ-VAE level, one per ``hop_length`` samples.

    Parameters
    ----------
    checkpoint : str or Path
        VQ-VAE checkpoint (official Jukebox layout).
    level : int or None
        Level to encode (Jukebox: 2 = top, hop 128); None: the checkpoint's top level.
    trust_pickle : bool
        Allow a checkpoint that only loads as a full pickle (see ``load_jukebox_vqvae``).
    chunk_seconds : float
        Audio encoded at once; memory is bounded for tracks of any length.
    """

    name = "vq-tokens"
    dtype = np.dtype(np.int16)
    dim = 0  # a 1-D sequence of ids

    def __init__(self, checkpoint: str | Path, *, level: int | None = None, trust_pickle: bool = False,
                 chunk_seconds: float = 20.0):
        self.checkpoint = Path(checkpoint)
        self.trust_pickle, self.chunk_seconds = trust_pickle, chunk_seconds
        self._set_level(level)

    @classmethod
    def from_model(cls, model, *, level: int, sha1: str, source: str) -> VQTokens:
        """A tokenizer held in memory (inside an encoder checkpoint, ``source``). ``sha1`` is its
        original file's, so it reads and writes that file's feature stores."""
        self = cls.__new__(cls)
        self.checkpoint, self.trust_pickle, self.chunk_seconds = Path(source), False, 20.0
        self.__dict__.update(model=model, sha1=sha1)  # the cached properties, given
        self._set_level(level)
        return self

    def _set_level(self, level: int | None) -> None:
        model, checkpoint = self.model, self.checkpoint
        levels = model.config.levels
        self.level = levels - 1 if level is None else level
        if not 0 <= self.level < levels:
            raise ConfigError(f"{checkpoint}: level {level} does not exist; the VQ-VAE has levels 0..{levels - 1}")
        self.sample_rate = model.config.sample_rate
        self.hop_length = model.config.hop_lengths[self.level]
        self.frames_per_second = self.sample_rate / self.hop_length
        self.vocab_size = model.config.l_bins
        if self.vocab_size > np.iinfo(np.int16).max + 1:
            raise ConfigError(f"{checkpoint}: {self.vocab_size} codes do not fit the int16 token store")

    @cached_property
    def model(self):
        from mirformer.representations.vqvae.checkpoint import load_jukebox_vqvae

        return load_jukebox_vqvae(self.checkpoint, trust_pickle=self.trust_pickle)

    @cached_property
    def sha1(self) -> str:
        return file_sha1(self.checkpoint)

    def __getstate__(self):  # worker processes reload the model from the file
        state = dict(self.__dict__)
        state.pop("model", None)
        return state

    def config_dict(self) -> dict:
        return {"checkpoint_sha1": self.sha1, "level": self.level, "version": VQ_VERSION}

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Mono audio (n,) at ``sample_rate`` -> token ids (n // hop_length,) int16."""
        from mirformer.representations.vqvae.chunked import encode_chunked

        return encode_chunked(self.model, y, level=self.level, chunk_seconds=self.chunk_seconds).astype(np.int16)

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop_length

    def times(self, n_frames: int) -> np.ndarray:
        """Centre of each token's hop in seconds [shape=(n_frames,)]."""
        return (np.arange(n_frames) + 0.5) * self.hop_length / self.sample_rate

    def codebook(self) -> torch.Tensor:
        """The level's (vocab, emb_width) codebook vectors."""
        return self.model.codebook(self.level).detach().cpu().float()

    # The invariance probe's tokenizer protocol.
    def tokenize(self, y: np.ndarray) -> np.ndarray:
        return self.encode(y).astype(np.int64)

    def vectors(self, tokens: np.ndarray) -> np.ndarray:
        return self.codebook()[torch.as_tensor(tokens, dtype=torch.long)].numpy()


def codebook_usage(counts: np.ndarray) -> dict:
    """How a tokenizer uses its codebook, from ``counts`` [shape=(vocab_size,)] of each token id.

    Returns ``codes_used`` (ids seen), ``usage`` (their share of the codebook), ``entropy_bits``
    (of the id distribution; at most log2(vocab_size)), ``perplexity`` (2 ** entropy: the number
    of equally used codes with the same entropy) and ``n_tokens``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    p = counts[counts > 0] / max(1, counts.sum())
    entropy = float(-(p * np.log2(p)).sum())
    return {"codes_used": int((counts > 0).sum()), "usage": float((counts > 0).mean()), "entropy_bits": entropy,
            "perplexity": float(2.0**entropy), "n_tokens": int(counts.sum())}


@register_representation
class VQCodebookVectors(VQTokens):
    """The codebook vector of each token: (n // hop_length, emb_width) float32 (for export)."""

    name = "vq-codebooks"
    dtype = np.dtype(np.float32)

    def __init__(self, checkpoint: str | Path, **kwargs):
        super().__init__(checkpoint, **kwargs)
        self.dim = self.model.config.emb_width

    def encode(self, y: np.ndarray) -> np.ndarray:
        return self.vectors(super().encode(y))
