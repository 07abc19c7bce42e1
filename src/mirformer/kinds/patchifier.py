"""Patchifier ("Spectrograms are sequences of patches"): log-mel in dB x 0.01 cut into 64 x 32
patches, a CNN per patch, a BERT-style bottleneck with learned positions; pretrained in two
stages (patch autoencoding, then masked patch modelling); BERT pooler head downstream."""

from __future__ import annotations

from mirformer.errors import ConfigError
from mirformer.kinds.base import InputSpec, ModelKind, PretrainStage, check_window, register_kind
from mirformer.models.patchifier import Patchifier as PatchifierModel
from mirformer.models.patchifier import load_patchifier
from mirformer.objectives.patch_masking import MaskedPatchModelling, PatchAutoencoding


@register_kind
class Patchifier(ModelKind):
    name = "patchifier"
    head = "pooler"

    def input(self, cfg):
        p = cfg.patchifier
        frames = p.model.patch_frames
        # Training reads windows of window_patches; evaluation whole clips, up to the position table.
        return InputSpec("patchifier-mel", "mel", mel=p.mel, scaling=p.scaling, window=p.window_patches * frames,
                         eval_window=p.model.encoder.max_len * frames)

    def check(self, cfg, window, eval_window):
        p = cfg.patchifier
        if p.mel.n_mels != p.model.n_mels:
            raise ConfigError(f"patchifier.mel.n_mels={p.mel.n_mels} differs from patchifier.model.n_mels="
                              f"{p.model.n_mels}, the patch height")
        check_window("patchifier", p.window_patches, p.model.encoder.max_len, unit="patches",
                     limit_key="patchifier.model.encoder.max_len", hint="patchifier.window_patches")

    def build(self, cfg, inp, *, n_outputs, head, pooling):
        return PatchifierModel(cfg.patchifier.model, n_classes=n_outputs, head=head, pooling=pooling)

    def load(self, path, *, n_outputs=None, head=None, pooling="cls"):
        return load_patchifier(path, n_classes=n_outputs, head=head or self.head, pooling=pooling)

    def pretraining(self, cfg, inp):
        p = cfg.patchifier
        frames = p.model.patch_frames
        return [
            PretrainStage("pretrain-1", PatchAutoencoding(p.mask, frames), p.stage1,
                          "stage I: autoencoding random patches, MSE", frames=frames, frozen=("encoder", "mask")),
            PretrainStage("pretrain-2", MaskedPatchModelling(p.mask, frames), p.stage2,
                          f"stage II: {p.mask.mask_ratio:.0%} of the patches masked, MSE on them",
                          frozen=() if p.train_extractor else ("frontend",)),
        ]
