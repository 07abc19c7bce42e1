"""One level of a VQ-VAE as a tokenizer: OpenAI's official ``vqvae.pth.tar`` or one mirformer trained
(in Jukebox's layout; several residual codebooks per level when trained so)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from mirformer.errors import CheckpointError, ConfigError
from mirformer.representations.tokenizers.base import Tokenizer


def file_sha1(path: str | Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class VQVAETokenizer(Tokenizer):
    """Level ``level`` of ``model`` (a ``VQVAE``); ``identity`` is its checkpoint file's SHA-1.

    Long audio is encoded in chunks of ``chunk_seconds`` with the level's receptive field as
    context on both sides (``vqvae.chunked``): ids equal a one-shot encode, in bounded memory.
    """

    kind = "VQ-VAE"

    def __init__(self, model, *, level: int | None, identity: str, source: str, chunk_seconds: float = 20.0):
        levels = model.config.levels
        self.level = levels - 1 if level is None else level
        if not 0 <= self.level < levels:
            raise ConfigError(f"{source}: level {level} does not exist; the VQ-VAE has levels 0..{levels - 1}")
        self.model, self.identity, self.source, self.chunk_seconds = model, identity, source, chunk_seconds
        self.sample_rate = model.config.sample_rate
        self.hop_length = model.config.hop_lengths[self.level]
        self.n_codebooks, self.vocab_size = model.config.codebooks, model.config.l_bins

    @classmethod
    def open(cls, path: Path, *, level: int | None = None, trust_pickle: bool = False) -> VQVAETokenizer:
        from mirformer.representations.vqvae.checkpoint import load_jukebox_vqvae

        return cls(load_jukebox_vqvae(path, trust_pickle=trust_pickle), level=level, identity=file_sha1(path),
                   source=str(path))

    def encode_stream(self, blocks: Iterable[np.ndarray], *, codebooks: int) -> Iterator[np.ndarray]:
        from mirformer.representations.vqvae.chunked import encode_stream

        for ids in encode_stream(self.model, blocks, level=self.level, chunk_seconds=self.chunk_seconds):
            yield (ids[:, None] if ids.ndim == 1 else ids)[:, :codebooks]

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop_length

    def codebooks(self) -> torch.Tensor:
        return self.model.codebooks(self.level).detach().cpu().float()

    @torch.no_grad()
    def decode(self, ids: np.ndarray) -> np.ndarray:
        ids = torch.as_tensor(np.asarray(ids, np.int64))[None]
        return self.model.decode([ids if self.n_codebooks > 1 else ids[..., 0]], start_level=self.level)[0, :, 0].numpy()

    def describe(self) -> dict:
        vq = self.model.config
        return {"kind": self.kind, "checkpoint": self.source, "sha1": self.identity, "level": self.level,
                "levels": vq.levels, "sample_rate": self.sample_rate, "hop_length": self.hop_length,
                "vocab_size": self.vocab_size, "emb_width": vq.emb_width, "codebooks_in_model": self.n_codebooks}

    def to_block(self) -> dict:
        """The whole VQ-VAE in the official layout (its EMA statistics are training state)."""
        from mirformer.representations.vqvae.checkpoint import official_state_dict

        return {"level": self.level, "sha1": self.identity,
                "vqvae": {"config": self.model.config.to_dict(), "state_dict": official_state_dict(self.model)}}

    @classmethod
    def from_block(cls, block: dict, *, source: str) -> VQVAETokenizer:
        from mirformer.representations.vqvae.checkpoint import load_official_state
        from mirformer.representations.vqvae.config import VQVAEConfig
        from mirformer.representations.vqvae.model import VQVAE

        vq = VQVAE(VQVAEConfig.from_dict(block["vqvae"]["config"]))
        try:
            load_official_state(vq, block["vqvae"]["state_dict"])
        except CheckpointError as e:
            raise CheckpointError(f"{source}: its embedded tokenizer {e}") from None
        return cls(vq.eval(), level=block["level"], identity=block["sha1"], source=f"{source} (embedded tokenizer)")
