"""CodebookFormer (the thesis): each token's VQ codebook vector, standardised over the training
split's tokens and projected, through the shared encoder; pretrained like TokenFormer."""

from __future__ import annotations

from mirformer.kinds.base import register_kind
from mirformer.kinds.tokenformer import TokenFormer


@register_kind
class CodebookFormer(TokenFormer):
    name = "codebookformer"

    def build(self, cfg, inp, *, n_outputs, head, pooling):
        model = super().build(cfg, inp, n_outputs=n_outputs, head=head, pooling=pooling)
        model.frontend.set_codebook(inp.rep.codebook(), counts=inp.counts)
        return model
