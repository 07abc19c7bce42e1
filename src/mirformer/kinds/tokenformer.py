"""TokenFormer (the thesis): a tokenizer's token ids through a learned embedding and the shared
encoder; pretrained BERT-style (masked tokens, cross-entropy)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mirformer.kinds.base import InputSettings, ModelKind, PretrainStage, check_window, configured_input, register_kind
from mirformer.models.former import Former, load_former
from mirformer.objectives.token_masking import TokenMaskConfig, TokenObjective


@dataclass
class TokenFormerConfig(InputSettings):
    input: str = "vq-tokens"  # any representation of discrete ids
    mask: TokenMaskConfig = field(default_factory=TokenMaskConfig)


@register_kind
class TokenFormer(ModelKind):
    name, order, config_class, architecture = "tokenformer", 20, TokenFormerConfig, "former"
    reads = ("ids",)
    frontend = "embedding"

    def input(self, cfg):
        s = self.settings(cfg)
        return configured_input(cfg, s.input, window=s.window)

    def check(self, cfg, window, eval_window):
        check_window(self.name, window, cfg.encoder.max_len)

    def frontend_options(self, cfg) -> dict:
        """Settings of this kind's frontend beyond the representation's shape."""
        return {}

    def build(self, cfg, representation, statistics, *, n_outputs, head, pooling):
        layout = representation.layout
        return Former(frontend=self.frontend, encoder=cfg.encoder, input_dim=layout.vocab, n_classes=n_outputs,
                      codebook_dim=representation.codebook_vectors().shape[-1], codebooks=layout.codebooks,
                      head=head, pooling=pooling, **self.frontend_options(cfg))

    def load(self, path, *, n_outputs=None, head=None, pooling="cls"):
        return load_former(path, frontend=self.frontend, n_classes=n_outputs, head=head or self.head, pooling=pooling)

    def pretraining(self, cfg, representation) -> list[PretrainStage]:
        return [PretrainStage("pretrain", TokenObjective(self.settings(cfg).mask, vocab_size=representation.layout.vocab),
                              cfg.pretrain, "masked tokens, cross-entropy")]
