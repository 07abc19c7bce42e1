"""CodebookFormer (the thesis): each token's codebook vector, standardised over the training
split's tokens and projected, through the shared encoder; pretrained like TokenFormer. With
several codebooks it reads their sum, the tokenizer's quantised latent, or a learned weighted sum
(``codebookformer.combine``)."""

from __future__ import annotations

from dataclasses import dataclass

from mirformer.errors import ConfigError
from mirformer.kinds.base import register_kind
from mirformer.kinds.tokenformer import TokenFormer, TokenFormerConfig


@dataclass
class CodebookFormerConfig(TokenFormerConfig):
    """As TokenFormer's (the tokenizer it reads, its window and its masking), and how several
    codebooks' vectors combine: "sum" (the quantised latent) or "weighted" (DASB's learned weights)."""

    combine: str = "sum"

    def __post_init__(self):
        if self.combine not in ("sum", "weighted"):
            raise ConfigError(f"codebookformer.combine must be 'sum' or 'weighted', got {self.combine!r}")


@register_kind
class CodebookFormer(TokenFormer):
    name, order, config_class = "codebookformer", 30, CodebookFormerConfig
    frontend = "codebook"

    def frontend_options(self, cfg) -> dict:
        return {"combine": self.settings(cfg).combine}

    def build(self, cfg, representation, statistics, *, n_outputs, head, pooling):
        model = super().build(cfg, representation, statistics, n_outputs=n_outputs, head=head, pooling=pooling)
        model.frontend.set_codebook(representation.codebook_vectors(), counts=statistics.counts)
        return model
