"""A "Former": frontend -> shared encoder -> heads; the thesis' three models differ only in the frontend.

- ``projection``: normalised frames (B, L, F), e.g. log-mel, through a linear projection;
  pretrained by reconstructing masked cells (F outputs per position). SpectroFormer.
- ``embedding``: token ids (B, L) through a learned embedding; pretrained by predicting masked
  token ids (vocabulary-size outputs per position). TokenFormer.
- ``codebook``: token ids (B, L) looked up in the tokenizer's codebook, then projected;
  pretrained like the embedding. CodebookFormer.

Axis legend: B batch, L input positions, F input features per position (for the token kinds:
the vocabulary size), D d_model, C classes.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn as nn

from mirformer.errors import CheckpointError, ConfigError
from mirformer.models.encoder import Encoder, EncoderConfig, padding_if_any
from mirformer.models.frontends import CodebookProjection, SpectrogramProjection, TokenEmbedding
from mirformer.models.heads import HEADS, POOLINGS, PositionHead, make_head, pool
from mirformer.models.saved import load_weights, read_saved

# frontend -> factory(input_dim, d_model, codebook_dim, codebooks, combine); every Former predicts
# input_dim values per position (and codebook) in pretraining: frame cells, or token-id logits.
FRONTENDS = {
    "projection": lambda input_dim, d_model, codebook_dim, codebooks, combine: SpectrogramProjection(input_dim, d_model),
    "embedding": lambda input_dim, d_model, codebook_dim, codebooks, combine: TokenEmbedding(input_dim, d_model,
                                                                                             codebooks),
    "codebook": lambda input_dim, d_model, codebook_dim, codebooks, combine: CodebookProjection(
        input_dim, d_model, codebook_dim, codebooks, combine),
}


class Former(nn.Module):
    """Frontend + encoder + a pretraining head and (when ``n_classes > 0``) a downstream head.

    Parameters
    ----------
    frontend : str
        One of ``FRONTENDS``.
    encoder : EncoderConfig
        Size of the shared encoder.
    input_dim : int
        Features per input position F: frame values (projection) or vocabulary size (embedding, codebook).
    n_classes : int
        Downstream outputs C (classes, tags or regression targets); 0 for a pretraining-only model.
    codebook_dim : int
        Width of the codebook vectors (the codebook frontend only).
    codebooks : int
        Codebooks per position of token ids (B, L, C); 1: ids (B, L). Pretraining predicts every
        codebook's id, one output head per codebook.
    combine : str
        How the codebook frontend combines several codebooks' vectors: ``"sum"`` or ``"weighted"``.
    head : str
        Downstream head: ``"linear"`` (dropout + linear) or ``"mlp"`` (one hidden ReLU layer).
    pooling : str
        What the head reads: ``"cls"`` (the CLS state) or ``"mean"`` (mean of the non-padding states).
    """

    def __init__(self, *, frontend: str, encoder: EncoderConfig, input_dim: int, n_classes: int = 0,
                 codebook_dim: int = 64, codebooks: int = 1, combine: str = "sum", head: str = "linear",
                 pooling: str = "cls"):
        super().__init__()
        if frontend not in FRONTENDS:
            raise ConfigError(f"unknown frontend {frontend!r}; known: {sorted(FRONTENDS)}")
        if head not in HEADS or pooling not in POOLINGS:
            raise ConfigError(f"head must be one of {HEADS} and pooling one of {POOLINGS}, got {head!r}, {pooling!r}")
        self.head_kind, self.pooling = head, pooling
        self.frontend_name, self.encoder_cfg, self.input_dim, self.n_classes = frontend, encoder, input_dim, n_classes
        self.codebook_dim, self.codebooks, self.combine = codebook_dim, codebooks, combine
        self.frontend = FRONTENDS[frontend](input_dim, encoder.d_model, codebook_dim, codebooks, combine)
        self.encoder = Encoder(encoder)
        if codebooks == 1:
            self.pretrain_head = PositionHead(encoder.d_model, input_dim, eps=encoder.norm_eps)
        else:
            self.pretrain_head = nn.ModuleList(PositionHead(encoder.d_model, input_dim, eps=encoder.norm_eps)
                                               for _ in range(codebooks))
        self.head = make_head(head, encoder.d_model, n_classes, encoder.dropout) if n_classes else None

    def parts(self) -> dict[str, list[nn.Module]]:
        """Parameter groups by role: what the fine-tuning strategies freeze, what pretraining trains."""
        return {"frontend": [self.frontend], "encoder": [self.encoder], "decoder": [self.pretrain_head],
                "head": [self.head] if self.head is not None else []}

    def forward_encoder(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, F) frames, (B, L) or (B, L, C) token ids, (B, L) bool padding -> (B, L + 1, D) (CLS first)."""
        return self.encoder(self.frontend(x), padding_if_any(pad))

    frames_per_position = 1  # one input frame (or token) per encoder position

    def hidden_states(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Every encoder layer's states (``Encoder.layers``) and the positions' padding (B, L)."""
        return self.encoder.layers(self.frontend(x), padding_if_any(pad)), pad

    def forward_pretrain(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """Masked inputs -> (B, L, F) per-position predictions (cells, or token-id logits), or
        (B, L, C, F) with several codebooks (one head each)."""
        h = self.forward_encoder(x, pad)[:, 1:]
        if self.codebooks == 1:
            return self.pretrain_head(h)
        return torch.stack([head(h) for head in self.pretrain_head], -2)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """Inputs -> (B, C) outputs (logits, or regression values) from the pooled states."""
        assert self.head is not None, "model built with n_classes=0 has no downstream head"
        return self.head(pool(self.forward_encoder(x, pad), pad, self.pooling))

    # ---- checkpoints: plain tensors and primitives only, so torch.load(weights_only=True) reads them
    def spec(self) -> dict:
        return {"frontend": self.frontend_name, "encoder": asdict(self.encoder_cfg), "input_dim": self.input_dim,
                "n_classes": self.n_classes, "codebook_dim": self.codebook_dim, "codebooks": self.codebooks,
                "combine": self.combine, "head": self.head_kind, "pooling": self.pooling}

    def save(self, path: str | Path) -> None:
        from mirformer.atomic import write_torch

        write_torch(path, {"spec": self.spec(), "state_dict": self.state_dict()})


def load_former(path: str | Path, *, frontend: str | None = None, n_classes: int | None = None,
                head: str = "linear", pooling: str = "cls") -> Former:
    """Load a saved Former; with ``n_classes`` given, attach a fresh ``head`` reading ``pooling``.

    ``frontend``: the one the caller expects, which the file's spec must name (files of the first
    encoder format name their model kind instead, and take the caller's). Only the downstream
    head may be missing from the checkpoint (fine-tuning a pretrained encoder); any other
    mismatch raises ``CheckpointError``.
    """
    ckpt = read_saved(path)
    spec = dict(ckpt["spec"])
    spec.pop("kind", None)
    spec.setdefault("frontend", frontend)
    if spec["frontend"] is None or frontend not in (None, spec["frontend"]):
        raise CheckpointError(f"{path}: a Former with the {spec['frontend']!r} frontend, expected {frontend!r}")
    spec["encoder"] = EncoderConfig(**spec["encoder"])
    if n_classes is not None:
        spec.update(n_classes=n_classes, head=head, pooling=pooling)
    return load_weights(Former(**spec), ckpt["state_dict"], path, fresh_head=n_classes is not None,
                        what=f"the {spec['frontend']} Former")
