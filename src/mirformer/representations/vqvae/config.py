"""The VQ-VAE's hyperparameters (Jukebox's names in brackets) and the two architectures mirformer
names: Jukebox's own, and a small one that trains on a laptop CPU."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from mirformer.errors import ConfigError


@dataclass(frozen=True)
class VQVAEConfig:
    """Hyperparameters of the VQ-VAE (Jukebox's names in brackets; defaults are Jukebox's).

    Parameters
    ----------
    sample_rate : int > 0
        Sample rate of the audio in Hz [sr].
    levels : int >= 1
        Number of independent encoder/decoder levels.
    downs_t : tuple of int >= 1, one per level
        Stride-``strides_t[i]`` stages in level block i [downs_t].
    strides_t : tuple of even int >= 2, one per level
        Stride of those stages (odd strides would not map T to T // stride).
    emb_width : int >= 1
        Latent and code width D.
    l_bins : int >= 1
        Codebook size K per level.
    width, depth : int >= 1
        Channels and residual blocks per residual stack at multiplier 1.
    multipliers : tuple of int >= 1, one per level
        Multiply both ``width`` and ``depth`` of level L [hvqvae_multipliers].
    m_conv : float > 0
        Hidden width of a residual block is ``int(m_conv * width)``.
    dilation_growth_rate : int >= 1
        Residual block j of a stack has dilation ``dilation_growth_rate ** j``.
    reverse_decoder_dilation : bool
        Decoder stacks run their dilations largest first [vqvae_reverse_decoder_dilation].
    mu : float in (0, 1)
        EMA decay of the codebook statistics [l_mu].
    threshold : float > 0
        Codes whose EMA count falls below this are restarted [revival_threshold].
    commit : float >= 0
        Weight of the commitment loss (used by the training loss, not by the model).
    codebooks : int >= 1
        Codebooks per level: 1 is Jukebox's; more quantise residually, each what the ones
        before it left (``bottleneck.ResidualBottleneckBlock``).
    """

    sample_rate: int = 44100
    levels: int = 3
    downs_t: tuple[int, ...] = (3, 2, 2)
    strides_t: tuple[int, ...] = (2, 2, 2)
    emb_width: int = 64
    l_bins: int = 2048
    width: int = 32
    depth: int = 4
    multipliers: tuple[int, ...] = (2, 1, 1)
    m_conv: float = 1.0
    dilation_growth_rate: int = 3
    reverse_decoder_dilation: bool = True
    mu: float = 0.99
    threshold: float = 1.0
    commit: float = 0.02
    codebooks: int = 1

    def __post_init__(self):
        for name in ("downs_t", "strides_t", "multipliers"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # lists from JSON/YAML
        ints = ("sample_rate", "levels", "emb_width", "l_bins", "width", "depth", "dilation_growth_rate", "codebooks")
        for name in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"VQVAEConfig.{name} must be an int >= 1, got {value!r}")
        for name in ("downs_t", "strides_t", "multipliers"):
            value = getattr(self, name)
            if len(value) != self.levels or not all(isinstance(v, int) and v >= 1 for v in value):
                raise ConfigError(f"VQVAEConfig.{name} must be {self.levels} ints >= 1 (levels), got {value!r}")
        if any(s % 2 for s in self.strides_t):
            raise ConfigError(f"VQVAEConfig.strides_t must be even, got {self.strides_t!r}")
        if not int(self.m_conv * self.width) >= 1:
            raise ConfigError(f"VQVAEConfig.m_conv * width must be >= 1, got m_conv={self.m_conv!r}")
        if not 0.0 < self.mu < 1.0:
            raise ConfigError(f"VQVAEConfig.mu must be in (0, 1), got {self.mu!r}")
        if not self.threshold > 0.0:
            raise ConfigError(f"VQVAEConfig.threshold must be > 0, got {self.threshold!r}")
        if not self.commit >= 0.0:
            raise ConfigError(f"VQVAEConfig.commit must be >= 0, got {self.commit!r}")

    @property
    def hop_lengths(self) -> tuple[int, ...]:
        """Input samples per token at each level (Jukebox default: 8, 32, 128)."""
        return tuple(int(h) for h in np.cumprod([s**d for s, d in zip(self.strides_t, self.downs_t)]))

    def to_dict(self) -> dict:
        """Plain Python values (lists for tuples), as stored in checkpoints; ``codebooks`` only when
        more than one, so a one-codebook VQ-VAE's file is the bytes it always was."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        if d["codebooks"] == 1:
            del d["codebooks"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VQVAEConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown VQVAEConfig keys {sorted(unknown)}")
        return cls(**d)


JUKEBOX = VQVAEConfig()
# One level, hop 128 (172 tokens/s at 22,050 Hz); its encoder takes 1/15 of the multiply-adds per
# second of audio of Jukebox's top level (0.057 vs 0.87 G): trains on a laptop CPU.
SMALL = dataclasses.replace(
    JUKEBOX, sample_rate=22050, levels=1, downs_t=(7,), strides_t=(2,), multipliers=(1,),
    width=16, depth=2, emb_width=32, l_bins=256,
)
