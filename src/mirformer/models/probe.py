"""A probe on frozen frames: their mean over a window, of one layer or a learned mix of layers,
read by a linear or MLP head. The frames are another model's embeddings (a HEAR module, a
Hugging Face encoder, precomputed files, a mirformer encoder's states); nothing below the head
trains, except the mix's layer weights (MARBLE's weighted sum of layers)."""

from __future__ import annotations

import torch
import torch.nn as nn

from mirformer.models.heads import make_head

WEIGHTED = "weighted"


class Probe(nn.Module):
    """Frames (B, T, layers * width), padding (B, T) -> outputs (B, n_outputs).

    Parameters
    ----------
    width : int
        Values of one layer in a frame.
    layers : int
        Layers a frame stacks, first layer first.
    layer : int or "weighted"
        Which layer is read (0-based in the stack; negative from the end), or ``"weighted"``: a
        sum of the layers with softmax weights learned with the head (all equal at the start).
    n_outputs : int
    head : {"linear", "mlp"}
    dropout : float
    """

    def __init__(self, *, width: int, layers: int, layer: int | str, n_outputs: int, head: str = "linear",
                 dropout: float = 0.1):
        super().__init__()
        self.width, self.layers, self.layer, self.n_classes = width, layers, layer, n_outputs
        self.layer_weights = nn.Parameter(torch.zeros(layers)) if layer == WEIGHTED else None
        self.head = make_head(head, width, n_outputs, dropout)

    def parts(self) -> dict[str, list]:
        """Parameter groups as the fine-tuning strategies name them: only a head (and its layer weights)."""
        return {"head": [self.head] + ([self.layer_weights] if self.layer_weights is not None else [])}

    def pooled(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of the real frames of each window, per layer: (B, layers, width)."""
        x = x.reshape(*x.shape[:2], self.layers, self.width)
        if pad is None:
            return x.mean(1)
        keep = pad.logical_not().to(x.dtype)[:, :, None, None]  # (B, T, 1, 1)
        return (x * keep).sum(1) / keep.sum(1).clamp_min(1.0)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        h = self.pooled(x, pad)
        if self.layer_weights is None:
            h = h[:, self.layer]
        else:
            h = (h * self.layer_weights.softmax(0)[None, :, None]).sum(1)
        return self.head(h)
