"""The comparison's configuration: one typed dataclass tree; presets are diffs of the base."""

from __future__ import annotations

from dataclasses import dataclass, field

from mirformer.config import from_dict, merge, to_dict
from mirformer.errors import ConfigError
from mirformer.models.encoder import EncoderConfig
from mirformer.objectives.spectro_masking import SpectroMaskConfig
from mirformer.representations.mel import MelConfig
from mirformer.training.fit import TrainerConfig
from mirformer.training.modules import OptimConfig


@dataclass
class DataConfig:
    name: str = "music21-styles"
    root: str | None = None  # None: the built-in corpus under the mirformer home
    options: dict = field(default_factory=dict)  # dataset-specific (the built-in corpus' render config)


@dataclass
class StageConfig:
    epochs: int = 10
    batch_size: int = 64
    snippets_per_track: int = 1  # random crops drawn from each training clip per epoch
    optim: OptimConfig = field(default_factory=OptimConfig)


SETUPS = ("spectroformer-pretrained-finetuned", "spectroformer-scratch", "mfcc-logreg")


@dataclass
class CompareConfig:
    name: str = "base"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    mel: MelConfig = field(default_factory=lambda: MelConfig(ref="max"))
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    snippet_frames: int = 1344  # model input length in frames (3.9 s at 44.1 kHz, hop 128)
    mask: SpectroMaskConfig = field(default_factory=SpectroMaskConfig)
    pretrain: StageConfig = field(default_factory=lambda: StageConfig(epochs=10, optim=OptimConfig(warmup=8000)))
    finetune: StageConfig = field(default_factory=lambda: StageConfig(epochs=10, batch_size=32,
                                                                      optim=OptimConfig(lr=5e-5)))
    scratch: StageConfig = field(default_factory=lambda: StageConfig(epochs=10, optim=OptimConfig(warmup=8000)))
    setups: list = field(default_factory=lambda: list(SETUPS))
    baseline_seconds: float | None = None  # audio per clip the MFCC baseline reads (None: all)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    workers: int = 2  # processes for rendering and feature extraction
    eval_batch_size: int = 32

    def __post_init__(self):
        unknown = sorted(set(self.setups) - set(SETUPS))
        if unknown:
            raise ConfigError(f"unknown setup(s) {unknown}; known: {list(SETUPS)}")


PRESETS: dict[str, dict] = {
    # Minutes on a 2-core laptop: 10 s clips, 22.05 kHz / hop 512 log-mel, a small encoder.
    "quickstart": {
        "name": "quickstart",
        "data": {"options": {"preset": "quickstart"}},
        "mel": {"sample_rate": 22050, "n_fft": 1024, "hop_length": 512, "n_mels": 64, "ref": "max"},
        "encoder": {"d_model": 128, "n_layers": 3, "n_heads": 4, "d_ff": 512, "dropout": 0.1, "max_len": 1024},
        "snippet_frames": 128,
        "mask": {"block_frames": 5},
        "pretrain": {"epochs": 30, "batch_size": 32, "snippets_per_track": 2,
                     "optim": {"warmup": 200, "lr_scale": 0.5}},
        "finetune": {"epochs": 25, "batch_size": 16, "snippets_per_track": 2, "optim": {"lr": 3e-4}},
        "scratch": {"epochs": 25, "batch_size": 16, "snippets_per_track": 2,
                    "optim": {"warmup": 200, "lr_scale": 0.5}},
        "baseline_seconds": None,
    },
    # The built-in corpus at full size (30 s clips), a mid-size encoder, longer training.
    "styles-full": {
        "name": "styles-full",
        "data": {"options": {"preset": "full"}},
        "mel": {"sample_rate": 22050, "n_fft": 2048, "hop_length": 512, "n_mels": 128, "ref": "max"},
        "encoder": {"d_model": 256, "n_layers": 4, "n_heads": 4, "d_ff": 1024, "max_len": 2048},
        "snippet_frames": 256,
        "mask": {"block_frames": 5},
        "pretrain": {"epochs": 20, "batch_size": 32, "snippets_per_track": 2,
                     "optim": {"warmup": 1000, "lr_scale": 0.3}},
        "finetune": {"epochs": 20, "batch_size": 16, "optim": {"lr": 1e-4}},
        "scratch": {"epochs": 20, "batch_size": 16, "optim": {"warmup": 1000, "lr_scale": 0.3}},
    },
}


def resolve(preset: str | None = None, overrides: dict | None = None) -> CompareConfig:
    """Base config, then the preset's diff, then the user's overrides.

    Merging happens on dicts of the full base, so a preset that sets ``finetune.epochs`` keeps the
    base's ``finetune.optim``.
    """
    resolved = to_dict(CompareConfig())
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
        resolved = merge(resolved, PRESETS[preset])
    return from_dict(CompareConfig, merge(resolved, overrides or {}))
