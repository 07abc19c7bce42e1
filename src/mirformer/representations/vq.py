"""Token representations: a tokenizer's ids of its first N codebooks, or the vectors they stand for.

The tokenizer (``tokenizers.open_tokenizer``) is a VQ-VAE checkpoint (OpenAI's official
``vqvae.pth.tar``, or one mirformer trained, with one or several residual codebooks per level) or
a neural codec's folder (EnCodec, DAC, Mimi, X-Codec, as ``save_pretrained`` writes them). In a comparison
without one, a VQ-VAE is first trained on the dataset's training split. The tokenizer's identity
(its weights' hash) goes into ``config_dict``, so a feature store never mixes two tokenizers' ids;
an encoder file carries the tokenizer itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mirformer.audio import load_audio
from mirformer.errors import AudioError, ConfigError
from mirformer.representations.base import Layout, Representation, Statistics, register_representation
from mirformer.representations.tokenizers.base import Tokenizer, from_block, open_tokenizer
from mirformer.representations.tokenizers.quality import reconstruction
from mirformer.representations.vqvae.train_config import VQVAETrainConfig

VQ_VERSION = "1"
_LOADED: dict[tuple, "VQTokens"] = {}  # the last given tokenizer (see ``VQTokens._given``)


@dataclass
class TokenizerConfig:
    """The tokenizer of a comparison's token models.

    With ``checkpoint`` set (OpenAI's ``vqvae.pth.tar`` or any file in its layout, at ``level``; or
    a codec's folder), it is used as is; without, a VQ-VAE with architecture ``train.vqvae`` is
    first trained on the dataset's training split. ``codebooks``: how many of its codebooks the
    models read, the first ones (None: all it has).
    """

    checkpoint: str | None = None
    level: int | None = None  # None: the top level (Jukebox: 2, hop 128 at 44.1 kHz)
    codebooks: int | None = None
    trust_checkpoint: bool = False  # allow a checkpoint that only loads as a full pickle
    # Validation clips decoded from the codebooks read, to report reconstruction quality (0: none).
    reconstruction_clips: int = 0
    train: VQVAETrainConfig = field(default_factory=VQVAETrainConfig)


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


def _clips(tracks, n: int, sample_rate: int, *, max_seconds: float = 10.0) -> Iterator[np.ndarray]:
    """The first ``n`` of ``tracks`` that decode, mono at ``sample_rate``, at most ``max_seconds`` each."""
    given = 0
    for track in tracks:
        if given == n:
            return
        try:
            y = load_audio(track.path, sr=sample_rate, max_seconds=max_seconds)
        except AudioError:
            continue  # the store reports it
        given += 1
        yield y


@register_representation
class VQTokens(Representation):
    """Token ids of a tokenizer's first ``codebooks`` codebooks, one frame per ``hop_length`` samples:
    (frames,) with one codebook, (frames, codebooks) with several.

    Parameters
    ----------
    tokenizer : Tokenizer, or str or Path
        A tokenizer, or the path ``open_tokenizer`` opens (a VQ-VAE checkpoint or a codec folder).
    level : int or None
        A VQ-VAE's level (Jukebox: 2 = top, hop 128); None: the top level.
    codebooks : int or None
        How many of the tokenizer's codebooks, the first ones; None: all.
    trust_pickle : bool
        Allow a VQ-VAE checkpoint that only loads as a full pickle (see ``load_jukebox_vqvae``).
    """

    name, input_name, label, config_key, config_class = "vq-tokens", "tokens", "token", "tokenizer", TokenizerConfig
    aliases = ("tokens",)  # the name encoder files of format 1 give it
    discrete, default_scaling = True, "none"

    def __init__(self, tokenizer: Tokenizer | str | Path, *, level: int | None = None, codebooks: int | None = None,
                 trust_pickle: bool = False):
        if not isinstance(tokenizer, Tokenizer):
            tokenizer = open_tokenizer(tokenizer, level=level, trust_pickle=trust_pickle)
        self.tokenizer = tokenizer
        self.codebooks = tokenizer.n_codebooks if codebooks is None else codebooks
        if not 1 <= self.codebooks <= tokenizer.n_codebooks:
            raise ConfigError(f"{tokenizer.source}: {codebooks} codebooks asked for; it has {tokenizer.n_codebooks}")
        self.sample_rate, self.hop_length = tokenizer.sample_rate, tokenizer.hop_length
        self.frames_per_second = self.sample_rate / self.hop_length
        self.vocab_size = tokenizer.vocab_size
        self.dtype = np.dtype(np.int16 if self.vocab_size <= np.iinfo(np.int16).max + 1 else np.int32)
        self.layout = Layout(vocab=self.vocab_size, codebooks=self.codebooks)
        self._about: dict | None = None

    @property
    def level(self) -> int | None:
        """The VQ-VAE level read (None for a codec)."""
        return getattr(self.tokenizer, "level", None)

    # ---- from a comparison's config -----------------------------------------------------------
    @classmethod
    def default_config(cls) -> TokenizerConfig:
        return TokenizerConfig()

    @classmethod
    def _given(cls, config: TokenizerConfig) -> VQTokens:
        """The tokenizer of ``config.checkpoint``, loaded once per file version however often asked."""
        path = Path(config.checkpoint).expanduser()
        stat = path.stat() if path.exists() else None
        key = (cls, str(path.resolve()), stat and stat.st_mtime_ns, stat and stat.st_size, config.level,
               config.codebooks, config.trust_checkpoint)
        if key not in _LOADED:
            _LOADED.clear()  # one tokenizer held at a time: a Jukebox VQ-VAE or a codec is large
            _LOADED[key] = cls(path, level=config.level, codebooks=config.codebooks,
                               trust_pickle=config.trust_checkpoint)
        return _LOADED[key]

    @classmethod
    def check_config(cls, config: TokenizerConfig) -> None:
        """A given tokenizer is loaded (layout, keys, shapes, level and codebooks checked); for one
        to be trained, its level and codebooks must exist in its architecture."""
        if config.checkpoint:
            cls._given(config)
            return
        vq = config.train.vqvae
        if config.level is not None and not 0 <= config.level < vq.levels:
            raise ConfigError(f"tokenizer.level={config.level} does not exist: tokenizer.train.vqvae has levels "
                              f"0..{vq.levels - 1}")
        if config.codebooks is not None and not 1 <= config.codebooks <= vq.codebooks:
            raise ConfigError(f"tokenizer.codebooks={config.codebooks}: tokenizer.train.vqvae has {vq.codebooks}")

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
        """The given tokenizer, or a VQ-VAE trained on the training split of ``context``."""
        if config.checkpoint:
            rep, source, fit = cls._given(config), "from the given checkpoint", {}
        else:
            checkpoint, fit = context.train_tokenizer(config.train)
            rep, source = cls(checkpoint, level=config.level, codebooks=config.codebooks), "trained on the training split"
        rep._about = {"source": source, **rep.tokenizer.describe(), "codebooks": rep.codebooks, **fit}
        if config.reconstruction_clips and context is not None:
            context.log(f"tokenizer: decoding {config.reconstruction_clips} validation clips from {rep.codebooks} "
                        "codebook(s)")
            rep._about["reconstruction"] = reconstruction(
                rep.tokenizer, _clips(context.tracks["validation"], config.reconstruction_clips, rep.sample_rate),
                codebooks=rep.codebooks)
        return rep

    def about(self) -> dict | None:
        """Where the tokenizer came from, its shape and, if trained here, its fit."""
        return None if self._about is None else dict(self._about)

    # ---- encoding -----------------------------------------------------------------------------
    def config_dict(self) -> dict:
        key = {"checkpoint_sha1": self.tokenizer.identity, "level": self.level, "version": VQ_VERSION}
        # One-codebook tokenizers keep the keys their stores always had.
        return key if self.tokenizer.n_codebooks == 1 else {**key, "codebooks": self.codebooks}

    def _frames(self, ids: np.ndarray) -> np.ndarray:
        """(frames, codebooks) ids as stored: (frames,) for one codebook."""
        return (ids[:, 0] if self.codebooks == 1 else ids).astype(self.dtype)

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Mono audio (n,) at ``sample_rate`` -> token ids (frames,) or (frames, codebooks)."""
        return self._frames(self.tokenizer.encode(y, codebooks=self.codebooks))

    def encode_stream(self, blocks: Callable[[], Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
        for ids in self.tokenizer.encode_stream(blocks(), codebooks=self.codebooks):
            yield self._frames(ids)

    def n_frames(self, n_samples: int) -> int:
        return self.tokenizer.n_frames(n_samples)

    def codebook_vectors(self) -> torch.Tensor:
        """The vectors the ids of the read codebooks stand for: (codebooks, vocab, dim)."""
        return self.tokenizer.codebooks()[: self.codebooks]

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The quantised latent of ids (frames,) or (frames, codebooks): the sum of their vectors."""
        ids = torch.as_tensor(np.asarray(ids, np.int64)).reshape(len(ids), -1)
        books = self.codebook_vectors()
        return sum(books[c][ids[:, c]] for c in range(ids.shape[1])).numpy()

    # ---- statistics ---------------------------------------------------------------------------
    def fit_statistics(self, store, train_ids: list[str], *, scaling: str | None = None) -> Statistics:
        """How often the training split uses each code of each codebook (ids are never scaled):
        counts (vocab,) for one codebook, (codebooks, vocab) for several."""
        super().fit_statistics(store, train_ids, scaling=scaling)  # refuses a scaling of ids
        counts = np.zeros((self.codebooks, self.vocab_size), np.int64)
        # Counted per track: a large training split never holds all its tokens in memory at once.
        for i in train_ids:
            ids = np.asarray(store.get(i), np.int64).reshape(-1, self.codebooks)
            for c in range(self.codebooks):
                counts[c] += np.bincount(ids[:, c], minlength=self.vocab_size)
        return Statistics(counts=counts[0] if self.codebooks == 1 else counts)

    def summarise(self, statistics: Statistics) -> dict:
        counts = statistics.counts.reshape(self.codebooks, -1)
        usage = codebook_usage(counts[0])
        return usage if self.codebooks == 1 else {**usage, "per_codebook": [codebook_usage(c) for c in counts]}

    @staticmethod
    def report_lines(about: dict) -> list[str]:
        """Where the tokenizer came from and how the training split uses its codes."""
        t = about
        rate = t["sample_rate"] / t["hop_length"]
        vqvae = t.get("kind", "VQ-VAE") == "VQ-VAE"
        what, digest = (f"level {t['level']} of a VQ-VAE", "SHA-1") if vqvae else (f"the {t['kind']} codec", "SHA-256")
        shape = f"{t['levels']} level(s), " if "levels" in t else ""
        read = t.get("codebooks", 1)
        books = f" (the first {read} of its {t['codebooks_in_model']} codebooks)" if t.get("codebooks_in_model", 1) > 1 \
            else ""
        lines = ["## Tokenizer", "",
                 f"The token models read {what} {t['source']}{books} (`{t['checkpoint']}`, {digest} "
                 f"`{t['sha1'][:12]}`): {shape}{t['vocab_size']} codes of width {t['emb_width']}, "
                 f"hop {t['hop_length']} at {t['sample_rate']} Hz ({rate:.1f} tokens/s), windows of "
                 f"{t['window_frames']} tokens.", ""]
        if t.get("val_loss") is not None:
            lines += [f"It trained for {t['epochs']} epochs; final validation loss {t['val_loss']:.3f} (Jukebox's "
                      "objective: bandwidth-normalised lmix + multi-resolution STFT + commitment).", ""]
        for c, u in enumerate(t.get("per_codebook") or ([t] if "codes_used" in t else [])):
            which = f"codebook {c + 1}: " if "per_codebook" in t else ""
            lines += [f"On the training split ({which}{u['n_tokens']:,} tokens): {u['codes_used']} of "
                      f"{t['vocab_size']} codes used ({100 * u['usage']:.0f}%), entropy {u['entropy_bits']:.2f} bits "
                      f"of a possible {math.log2(t['vocab_size']):.2f} (perplexity {u['perplexity']:.1f}).", ""]
        return lines

    # ---- the encoder file ---------------------------------------------------------------------
    def to_block(self) -> dict:
        return {**self.tokenizer.to_block(), "codebooks": self.codebooks}

    @classmethod
    def from_block(cls, block: dict, *, source: str) -> VQTokens:
        return cls(from_block(block, source=source), codebooks=block.get("codebooks"))

    # The invariance probe's tokenizer protocol.
    def tokenize(self, y: np.ndarray) -> np.ndarray:
        return self.encode(y).astype(np.int64)


@register_representation
class VQCodebookVectors(VQTokens):
    """The quantised latent of each frame, the sum of its codes' vectors: (frames, dim) float32 (for export)."""

    name, input_name, label, config_key, config_class, aliases = "vq-codebooks", "codebooks", "codebook", None, None, ()
    discrete, default_scaling = False, "standardise"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dtype = np.dtype(np.float32)
        self.layout = Layout(dim=self.codebook_vectors().shape[-1])

    def encode(self, y: np.ndarray) -> np.ndarray:
        return self.vectors(self.tokenizer.encode(y, codebooks=self.codebooks))

    def encode_stream(self, blocks: Callable[[], Iterable[np.ndarray]]) -> Iterator[np.ndarray]:
        for ids in self.tokenizer.encode_stream(blocks(), codebooks=self.codebooks):
            yield self.vectors(ids)

    def fit_statistics(self, store, train_ids: list[str], *, scaling: str | None = None) -> Statistics:
        return Representation.fit_statistics(self, store, train_ids, scaling=scaling)

    def summarise(self, statistics: Statistics) -> dict:
        return {}
