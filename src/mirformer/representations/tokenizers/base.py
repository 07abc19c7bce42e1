"""What a tokenizer gives the token representation, and how one is opened from a path.

A tokenizer turns mono audio at its rate into frames of token ids, one per codebook, every
``hop_length`` samples; id k of codebook c stands for a vector (``codebooks()[c, k]``), and the
sum of a frame's vectors is the tokenizer's own quantised latent. Encoding streams block by block
with ids equal to a one-shot encode. A tokenizer is a VQ-VAE checkpoint (a file, Jukebox's layout)
or a neural codec saved with Hugging Face ``save_pretrained`` (a folder).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from mirformer.errors import ConfigError


class Tokenizer(ABC):
    """Attributes: ``source`` (where it was read), ``identity`` (a hash of its weights: store keys
    never mix two tokenizers' ids), ``sample_rate`` (Hz), ``hop_length`` (samples per frame),
    ``n_codebooks`` (codebooks it has), ``vocab_size`` (ids per codebook), ``kind`` (what it is,
    for reports)."""

    source: str
    identity: str
    sample_rate: int
    hop_length: int
    n_codebooks: int
    vocab_size: int
    kind: str

    @abstractmethod
    def encode_stream(self, blocks: Iterable[np.ndarray], *, codebooks: int) -> Iterator[np.ndarray]:
        """Ids of the first ``codebooks`` codebooks of a signal given as consecutive mono blocks:
        arrays (frames, codebooks) int64 that together equal a one-shot encode."""

    def encode(self, y: np.ndarray, *, codebooks: int) -> np.ndarray:
        """Ids (n_frames(len(y)), codebooks) int64 of mono audio ``y`` [shape=(n,)] at ``sample_rate``."""
        parts = list(self.encode_stream([np.asarray(y, np.float32)], codebooks=codebooks))
        return np.concatenate(parts) if parts else np.zeros((0, codebooks), np.int64)

    @abstractmethod
    def n_frames(self, n_samples: int) -> int:
        """Frames of a signal of ``n_samples`` samples."""

    @abstractmethod
    def codebooks(self) -> torch.Tensor:
        """The vector each id adds to the quantised latent: (n_codebooks, vocab_size, dim) float32."""

    @abstractmethod
    def decode(self, ids: np.ndarray) -> np.ndarray:
        """Audio [shape=(n,)] from ids (frames, c) of the first c codebooks (reconstruction quality)."""

    @abstractmethod
    def describe(self) -> dict:
        """What a report says of it: its kind, rate, hop, codebooks and their size."""

    @abstractmethod
    def to_block(self) -> dict:
        """Everything needed to rebuild it inside an encoder file (tensors and primitives only)."""


def open_tokenizer(path: str | Path, *, level: int | None = None, trust_pickle: bool = False) -> Tokenizer:
    """The tokenizer at ``path``: a codec folder (``config.json`` + weights, as ``save_pretrained``
    writes) or a VQ-VAE checkpoint file (``level``: which of its levels; None: the top one)."""
    path = Path(path).expanduser()
    if path.is_dir():
        from mirformer.representations.tokenizers.codec import open_codec

        if level is not None:
            raise ConfigError(f"{path}: a codec folder has no levels; leave the level unset")
        return open_codec(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such tokenizer: give a VQ-VAE checkpoint file or a codec folder "
                          "(config.json and model.safetensors, as save_pretrained writes them)")
    from mirformer.representations.tokenizers.vqvae import VQVAETokenizer

    return VQVAETokenizer.open(path, level=level, trust_pickle=trust_pickle)


def from_block(block: dict, *, source: str) -> Tokenizer:
    """The tokenizer an encoder file embeds (``Tokenizer.to_block``)."""
    if "codec" in block:
        from mirformer.representations.tokenizers.codec import codec_from_block

        return codec_from_block(block, source=source)
    from mirformer.representations.tokenizers.vqvae import VQVAETokenizer

    return VQVAETokenizer.from_block(block, source=source)
