"""TokenFormer (the thesis): the VQ tokenizer's token ids through a learned embedding and the
shared encoder; pretrained BERT-style (masked tokens, cross-entropy)."""

from __future__ import annotations

from mirformer.kinds.base import InputSpec, ModelKind, PretrainStage, check_window, register_kind
from mirformer.models.former import Former, load_former
from mirformer.objectives.token_masking import TokenObjective


@register_kind
class TokenFormer(ModelKind):
    name = "tokenformer"

    def input(self, cfg):
        # Window None: the seconds of a mel window, unless token_snippet_frames says otherwise.
        return InputSpec("tokens", "tokens", window=cfg.token_snippet_frames)

    def check(self, cfg, window, eval_window):
        check_window("tokens", window, cfg.encoder.max_len)

    def build(self, cfg, inp, *, n_outputs, head, pooling):
        codebook = inp.rep.codebook()
        return Former(kind=self.name, encoder=cfg.encoder, input_dim=inp.rep.vocab_size, n_classes=n_outputs,
                      codebook_dim=codebook.shape[1], head=head, pooling=pooling)

    def load(self, path, *, n_outputs=None, head=None, pooling="cls"):
        return load_former(path, n_classes=n_outputs, head=head or self.head, pooling=pooling)

    def pretraining(self, cfg, inp):
        return [PretrainStage("pretrain", TokenObjective(cfg.token_mask, vocab_size=inp.rep.vocab_size),
                              cfg.pretrain, "masked tokens, cross-entropy")]
