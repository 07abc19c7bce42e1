"""SpectroFormer (the thesis): standardised log-mel frames, linearly projected, through the shared
encoder; pretrained by reconstructing masked frame and band blocks (Huber loss)."""

from __future__ import annotations

from mirformer.kinds.base import InputSpec, ModelKind, PretrainStage, check_window, register_kind
from mirformer.models.former import Former, load_former
from mirformer.objectives.spectro_masking import SpectroObjective


@register_kind
class SpectroFormer(ModelKind):
    name = "spectroformer"

    def input(self, cfg):
        return InputSpec("mel", "mel", mel=cfg.mel, scaling="standardise", window=cfg.snippet_frames)

    def check(self, cfg, window, eval_window):
        check_window("mel", window, cfg.encoder.max_len)

    def build(self, cfg, inp, *, n_outputs, head, pooling):
        return Former(kind=self.name, encoder=cfg.encoder, input_dim=inp.rep.dim, n_classes=n_outputs, head=head,
                      pooling=pooling)

    def load(self, path, *, n_outputs=None, head=None, pooling="cls"):
        return load_former(path, n_classes=n_outputs, head=head or self.head, pooling=pooling)

    def pretraining(self, cfg, inp):
        return [PretrainStage("pretrain", SpectroObjective(cfg.mask), cfg.pretrain,
                              "masked frame and channel blocks, Huber loss")]
