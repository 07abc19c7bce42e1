"""Deep VQ representations: a VQ-VAE's token ids, or their codebook vectors, at one level.

The tokenizer is any checkpoint ``load_jukebox_vqvae`` reads: OpenAI's official ``vqvae.pth.tar``
or a VQ-VAE trained by mirformer (in a comparison without a checkpoint, one is first trained on
the dataset's training split). The checkpoint file's SHA-1 goes into ``config_dict``, so the
feature store never mixes tokens of two tokenizers; an encoder file embeds the whole tokenizer.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from mirformer.errors import CheckpointError, ConfigError
from mirformer.representations.base import Layout, Representation, Statistics, register_representation
from mirformer.representations.vqvae.train_config import VQVAETrainConfig

VQ_VERSION = "1"
_LOADED: dict[tuple, "VQTokens"] = {}  # the last given checkpoint's tokenizer (see ``VQTokens._given``)


@dataclass
class TokenizerConfig:
    """The VQ tokenizer of a comparison.

    With ``checkpoint`` set (OpenAI's ``vqvae.pth.tar``, or any file in its layout), its
    ``level`` is used as is; without, a VQ-VAE with architecture ``train.vqvae`` is first trained
    on the dataset's training split (tokens from a VQ-VAE trained on that dataset).
    """

    checkpoint: str | None = None
    level: int | None = None  # None: the top level (Jukebox: 2, hop 128 at 44.1 kHz)
    trust_checkpoint: bool = False  # allow a checkpoint that only loads as a full pickle
    train: VQVAETrainConfig = field(default_factory=VQVAETrainConfig)


def file_sha1(path: str | Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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

    name, input_name, label, config_key, config_class = "vq-tokens", "tokens", "token", "tokenizer", TokenizerConfig
    aliases = ("tokens",)  # the name encoder files of format 1 give it
    discrete, default_scaling = True, "none"
    dtype = np.dtype(np.int16)

    def __init__(self, checkpoint: str | Path, *, level: int | None = None, trust_pickle: bool = False,
                 chunk_seconds: float = 20.0):
        self.checkpoint = Path(checkpoint)
        self.trust_pickle, self.chunk_seconds = trust_pickle, chunk_seconds
        self._about: dict | None = None
        self._set_level(level)

    @classmethod
    def from_model(cls, model, *, level: int, sha1: str, source: str) -> VQTokens:
        """A tokenizer held in memory (inside an encoder checkpoint, ``source``). ``sha1`` is its
        original file's, so it reads and writes that file's feature stores."""
        self = cls.__new__(cls)
        self.checkpoint, self.trust_pickle, self.chunk_seconds, self._about = Path(source), False, 20.0, None
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
        self.layout = Layout(vocab=self.vocab_size)

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

    # ---- from a comparison's config -----------------------------------------------------------
    @classmethod
    def default_config(cls) -> TokenizerConfig:
        return TokenizerConfig()

    @classmethod
    def _given(cls, config: TokenizerConfig) -> VQTokens:
        """The tokenizer of ``config.checkpoint``, loaded once per file version however often asked."""
        checkpoint = Path(config.checkpoint).expanduser()
        if not checkpoint.is_file():
            raise ConfigError(f"tokenizer.checkpoint {checkpoint}: no such file")
        stat = checkpoint.stat()
        key = (cls, str(checkpoint.resolve()), stat.st_mtime_ns, stat.st_size, config.level, config.trust_checkpoint)
        if key not in _LOADED:
            _LOADED.clear()  # one tokenizer held at a time: a Jukebox VQ-VAE is large
            _LOADED[key] = cls(checkpoint, level=config.level, trust_pickle=config.trust_checkpoint)
        return _LOADED[key]

    @classmethod
    def check_config(cls, config: TokenizerConfig) -> None:
        """A given checkpoint is loaded (layout, keys, shapes and level checked); for one to be
        trained, its level must exist in its architecture."""
        if config.checkpoint:
            cls._given(config)
            return
        levels = config.train.vqvae.levels
        if config.level is not None and not 0 <= config.level < levels:
            raise ConfigError(f"tokenizer.level={config.level} does not exist: tokenizer.train.vqvae has levels "
                              f"0..{levels - 1}")

    @classmethod
    def frame_rate(cls, config: TokenizerConfig) -> float:
        if config.checkpoint:
            return cls._given(config).frames_per_second
        vq = config.train.vqvae
        level = vq.levels - 1 if config.level is None else config.level
        return vq.sample_rate / vq.hop_lengths[level]

    @classmethod
    def needs_training(cls, config: TokenizerConfig) -> bool:
        return not config.checkpoint

    @classmethod
    def from_config(cls, config: TokenizerConfig, *, context, dtype: str = "float32") -> VQTokens:
        """The given checkpoint's tokenizer, or one trained on the training split of ``context``."""
        if config.checkpoint:
            rep, source, fit = cls._given(config), "from the given checkpoint", {}
        else:
            checkpoint, fit = context.train_tokenizer(config.train)
            rep, source = cls(checkpoint, level=config.level), "trained on the training split"
        vq = rep.model.config
        rep._about = {"source": source, "checkpoint": str(rep.checkpoint), "sha1": rep.sha1, "level": rep.level,
                      "levels": vq.levels, "sample_rate": rep.sample_rate, "hop_length": rep.hop_length,
                      "vocab_size": rep.vocab_size, "emb_width": vq.emb_width, **fit}
        return rep

    def about(self) -> dict | None:
        """Where the tokenizer came from, its shape and, if trained here, its fit."""
        return None if self._about is None else dict(self._about)

    # ---- encoding -----------------------------------------------------------------------------
    def config_dict(self) -> dict:
        return {"checkpoint_sha1": self.sha1, "level": self.level, "version": VQ_VERSION}

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Mono audio (n,) at ``sample_rate`` -> token ids (n // hop_length,) int16."""
        from mirformer.representations.vqvae.chunked import encode_chunked

        return encode_chunked(self.model, y, level=self.level, chunk_seconds=self.chunk_seconds).astype(np.int16)

    def encode_stream(self, blocks: Callable[[], Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
        from mirformer.representations.vqvae.chunked import encode_stream

        for ids in encode_stream(self.model, blocks(), level=self.level, chunk_seconds=self.chunk_seconds):
            yield ids.astype(np.int16)

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop_length

    def codebook(self) -> torch.Tensor:
        """The level's (vocab, emb_width) codebook vectors."""
        return self.model.codebook(self.level).detach().cpu().float()

    # ---- statistics ---------------------------------------------------------------------------
    def fit_statistics(self, store, train_ids: list[str], *, scaling: str | None = None) -> Statistics:
        """How often the training split uses each code (ids are never scaled)."""
        super().fit_statistics(store, train_ids, scaling=scaling)  # refuses a scaling of ids
        # Counted per track: a large training split never holds all its tokens in memory at once.
        counts = sum(np.bincount(np.asarray(store.get(i), np.int64), minlength=self.vocab_size) for i in train_ids)
        return Statistics(counts=np.asarray(counts, np.int64))

    def summarise(self, statistics: Statistics) -> dict:
        return codebook_usage(statistics.counts)

    @staticmethod
    def report_lines(about: dict) -> list[str]:
        """Where the tokenizer came from and how the training split uses its codes."""
        t = about
        rate = t["sample_rate"] / t["hop_length"]
        lines = ["## Tokenizer", "",
                 f"The token models read level {t['level']} of a VQ-VAE {t['source']} (`{t['checkpoint']}`, SHA-1 "
                 f"`{t['sha1'][:12]}`): {t['levels']} level(s), {t['vocab_size']} codes of width {t['emb_width']}, "
                 f"hop {t['hop_length']} at {t['sample_rate']} Hz ({rate:.1f} tokens/s), windows of "
                 f"{t['window_frames']} tokens.", ""]
        if t.get("val_loss") is not None:
            lines += [f"It trained for {t['epochs']} epochs; final validation loss {t['val_loss']:.3f} (Jukebox's "
                      "objective: bandwidth-normalised lmix + multi-resolution STFT + commitment).", ""]
        if "codes_used" in t:
            lines += [f"On the training split ({t['n_tokens']:,} tokens): {t['codes_used']} of {t['vocab_size']} codes "
                      f"used ({100 * t['usage']:.0f}%), entropy {t['entropy_bits']:.2f} bits of a possible "
                      f"{math.log2(t['vocab_size']):.2f} (perplexity {t['perplexity']:.1f}).", ""]
        return lines

    # ---- the encoder file ---------------------------------------------------------------------
    def to_block(self) -> dict:
        """The whole tokenizer, in the official layout (its EMA statistics are training state)."""
        from mirformer.representations.vqvae.checkpoint import official_state_dict

        vq = self.model
        return {"level": self.level, "sha1": self.sha1,
                "vqvae": {"config": vq.config.to_dict(), "state_dict": official_state_dict(vq)}}

    @classmethod
    def from_block(cls, block: dict, *, source: str) -> VQTokens:
        from mirformer.representations.vqvae.checkpoint import load_official_state
        from mirformer.representations.vqvae.model import VQVAE, VQVAEConfig

        vq = VQVAE(VQVAEConfig.from_dict(block["vqvae"]["config"]))
        try:
            load_official_state(vq, block["vqvae"]["state_dict"])
        except CheckpointError as e:
            raise CheckpointError(f"{source}: its embedded tokenizer {e}") from None
        return cls.from_model(vq.eval(), level=block["level"], sha1=block["sha1"],
                              source=f"{source} (embedded tokenizer)")

    # The invariance probe's tokenizer protocol.
    def tokenize(self, y: np.ndarray) -> np.ndarray:
        return self.encode(y).astype(np.int64)

    def vectors(self, tokens: np.ndarray) -> np.ndarray:
        return self.codebook()[torch.as_tensor(tokens, dtype=torch.long)].numpy()


@register_representation
class VQCodebookVectors(VQTokens):
    """The codebook vector of each token: (n // hop_length, emb_width) float32 (for export)."""

    name, input_name, label, config_key, config_class, aliases = "vq-codebooks", "codebooks", "codebook", None, None, ()
    discrete, default_scaling = False, "standardise"
    dtype = np.dtype(np.float32)

    def _set_level(self, level: int | None) -> None:
        super()._set_level(level)
        self.layout = Layout(dim=self.model.config.emb_width)

    def encode(self, y: np.ndarray) -> np.ndarray:
        return self.vectors(super().encode(y))

    def encode_stream(self, blocks: Callable[[], Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
        for ids in super().encode_stream(blocks):
            yield self.vectors(ids)

    def fit_statistics(self, store, train_ids: list[str], *, scaling: str | None = None) -> Statistics:
        return Representation.fit_statistics(self, store, train_ids, scaling=scaling)

    def summarise(self, statistics: Statistics) -> dict:
        return {}
