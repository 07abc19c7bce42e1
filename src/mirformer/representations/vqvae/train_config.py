"""How mirformer trains a VQ-VAE tokenizer (``mirformer train-vqvae``, or a comparison without a
given checkpoint): the architecture and the training recipe."""

from __future__ import annotations

from dataclasses import dataclass, field

from mirformer.errors import ConfigError
from mirformer.representations.vqvae.config import VQVAEConfig


@dataclass
class VQVAETrainConfig:
    vqvae: VQVAEConfig = field(default_factory=VQVAEConfig)
    crop_seconds: float = 1.0  # training crops, rounded down to a multiple of the top hop
    crops_per_track: int = 4  # per epoch
    batch_size: int = 8
    epochs: int = 10
    lr: float = 3e-4
    warmup: int = 100  # steps of linear warm-up
    bandwidth_seconds: float = 600.0  # training audio measured for the loss normalisation (Jukebox: 600 s)
    # Validation after each epoch: every crop of every clip ("tiled") or one centred crop per clip ("centre").
    val_crops: str = "tiled"

    def __post_init__(self):
        if self.val_crops not in ("tiled", "centre"):
            raise ConfigError(f"tokenizer.train.val_crops must be 'tiled' or 'centre', got {self.val_crops!r}")
