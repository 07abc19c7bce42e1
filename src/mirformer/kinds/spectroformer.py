"""SpectroFormer (the thesis): standardised log-mel frames (or any representation of continuous
frames), linearly projected, through the shared encoder; pretrained by reconstructing masked
frame and band blocks (Huber loss)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mirformer.kinds.base import InputSettings, ModelKind, PretrainStage, check_window, configured_input, register_kind
from mirformer.models.former import Former, load_former
from mirformer.objectives.spectro_masking import SpectroMaskConfig, SpectroObjective


@dataclass
class SpectroFormerConfig(InputSettings):
    input: str = "mel"  # any representation of continuous frames
    mask: SpectroMaskConfig = field(default_factory=SpectroMaskConfig)


@register_kind
class SpectroFormer(ModelKind):
    name, order, config_class, architecture = "spectroformer", 10, SpectroFormerConfig, "former"
    frontend = "projection"

    def input(self, cfg):
        s = self.settings(cfg)
        return configured_input(cfg, s.input, scaling="standardise", window=s.window)

    def check(self, cfg, window, eval_window):
        check_window(self.name, window, cfg.encoder.max_len)

    def build(self, cfg, representation, statistics, *, n_outputs, head, pooling):
        return Former(frontend=self.frontend, encoder=cfg.encoder, input_dim=representation.dim, n_classes=n_outputs,
                      head=head, pooling=pooling)

    def load(self, path, *, n_outputs=None, head=None, pooling="cls"):
        return load_former(path, frontend=self.frontend, n_classes=n_outputs, head=head or self.head, pooling=pooling)

    def pretraining(self, cfg, representation) -> list[PretrainStage]:
        return [PretrainStage("pretrain", SpectroObjective(self.settings(cfg).mask), cfg.pretrain,
                              "masked frame and channel blocks, Huber loss")]
