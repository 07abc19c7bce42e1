"""Patchifier ("Spectrograms are sequences of patches"): log-mel in dB x 0.01 cut into 64 x 32
patches, a CNN per patch, a BERT-style bottleneck with learned positions; pretrained in two
stages (patch autoencoding, then masked patch modelling); BERT pooler head downstream."""

from __future__ import annotations

from dataclasses import dataclass, field

from mirformer.errors import ConfigError
from mirformer.kinds.base import InputSpec, ModelKind, PretrainStage, check_window, register_kind
from mirformer.models.patchifier import Patchifier as PatchifierModel
from mirformer.models.patchifier import PatchifierConfig, load_patchifier
from mirformer.objectives.patch_masking import MaskedPatchModelling, PatchAutoencoding, PatchMaskConfig
from mirformer.representations.mel import LogMel, MelConfig
from mirformer.training.modules import OptimConfig
from mirformer.training.stages import StageConfig


def _stage(epochs: int, crops: int) -> StageConfig:
    return StageConfig(epochs=epochs, batch_size=32, snippets_per_track=crops, optim=OptimConfig(name="adamw", lr=1e-4))


@dataclass
class PatchifierSettings:
    """Patchifier's input, model and two-stage pretraining (Zhao & Li's recipe by default).

    Downstream it trains with the comparison's ``finetune`` / ``scratch`` stages, like every model.
    """

    model: PatchifierConfig = field(default_factory=PatchifierConfig)
    # 22,050 Hz, 64 bands, hop 512; dB against each clip's peak, so "paper" scaling lies in [-0.8, 0].
    mel: MelConfig = field(default_factory=lambda: MelConfig(sample_rate=22050, n_fft=1024, hop_length=512,
                                                             n_mels=64, ref="max"))
    scaling: str = "paper"  # dB x 0.01 (the paper); "standardise": per band over the training split
    window_patches: int = 8  # patches per training window (8 x 32 frames: 5.9 s)
    mask: PatchMaskConfig = field(default_factory=PatchMaskConfig)  # stage II ratio, augmentations
    # Stage I: 25 random patch crops per clip and epoch; AdamW, lr 1e-4, batch 32 (the paper's).
    stage1: StageConfig = field(default_factory=lambda: _stage(10, 25))
    stage2: StageConfig = field(default_factory=lambda: _stage(10, 1))
    train_extractor: bool = True  # whether the feature extractor keeps training in stage II

    def __post_init__(self):
        if self.scaling not in ("paper", "standardise"):
            raise ConfigError(f"patchifier.scaling must be 'paper' or 'standardise', got {self.scaling!r}")


@register_kind
class Patchifier(ModelKind):
    name, order, config_class, architecture = "patchifier", 40, PatchifierSettings, "patchifier"
    head = "pooler"
    pretraining_only = ("decoder", "mask")

    def input(self, cfg):
        p = self.settings(cfg)
        frames = p.model.patch_frames
        # Training reads windows of window_patches; evaluation whole clips, up to the position table.
        return InputSpec(f"{self.name}-{LogMel.input_name}", LogMel.name, p.mel, scaling=p.scaling,
                         window=p.window_patches * frames, eval_window=p.model.encoder.max_len * frames)

    def check(self, cfg, window, eval_window):
        p = self.settings(cfg)
        if p.mel.n_mels != p.model.n_mels:
            raise ConfigError(f"patchifier.mel.n_mels={p.mel.n_mels} differs from patchifier.model.n_mels="
                              f"{p.model.n_mels}, the patch height")
        check_window(self.name, p.window_patches, p.model.encoder.max_len, unit="patches",
                     limit_key="patchifier.model.encoder.max_len", hint="patchifier.window_patches")

    def build(self, cfg, representation, statistics, *, n_outputs, head, pooling):
        return PatchifierModel(self.settings(cfg).model, n_classes=n_outputs, head=head, pooling=pooling)

    def load(self, path, *, n_outputs=None, head=None, pooling="cls"):
        return load_patchifier(path, n_classes=n_outputs, head=head or self.head, pooling=pooling)

    def pretraining(self, cfg, representation):
        p = self.settings(cfg)
        frames = p.model.patch_frames
        return [
            PretrainStage("pretrain-1", PatchAutoencoding(p.mask, frames), p.stage1,
                          "stage I: autoencoding random patches, MSE", frames=frames, frozen=("encoder", "mask")),
            PretrainStage("pretrain-2", MaskedPatchModelling(p.mask, frames), p.stage2,
                          f"stage II: {p.mask.mask_ratio:.0%} of the patches masked, MSE on them",
                          frozen=() if p.train_extractor else ("frontend",)),
        ]
