"""CodebookFormer (the thesis): each token's codebook vector, standardised over the training
split's tokens and projected, through the shared encoder; pretrained like TokenFormer."""

from __future__ import annotations

from dataclasses import dataclass

from mirformer.kinds.base import register_kind
from mirformer.kinds.tokenformer import TokenFormer, TokenFormerConfig


@dataclass
class CodebookFormerConfig(TokenFormerConfig):
    """As TokenFormer's: the tokenizer it reads, its window and its masking."""


@register_kind
class CodebookFormer(TokenFormer):
    name, order, config_class = "codebookformer", 30, CodebookFormerConfig
    frontend = "codebook"

    def build(self, cfg, representation, statistics, *, n_outputs, head, pooling):
        model = super().build(cfg, representation, statistics, n_outputs=n_outputs, head=head, pooling=pooling)
        model.frontend.set_codebook(representation.codebook(), counts=statistics.counts)
        return model
