"""Optimiser settings and parameter groups: weight decay on matrices and kernels only.

As BERT and nanoGPT: decay shrinks the weights of linear maps and convolutions, but not biases,
norm gains, the CLS vector, Patchifier's mask token, learned position tables or embedding tables,
which are offsets and lookup rows rather than maps whose size decay should keep in check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from mirformer.errors import ConfigError
from mirformer.models.encoder import Encoder

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclass
class OptimConfig:
    name: str = "adam"  # or "adamw" (decoupled weight decay; Patchifier's)
    lr: float | None = None  # a static rate (fine-tuning); None: the warmup / inverse-sqrt schedule
    lr_scale: float = 1.0  # multiplies the scheduled rate
    warmup: int = 8000  # steps
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0  # matrices and convolution kernels only (``param_groups``)

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"optim.name must be one of {sorted(OPTIMIZERS)}, got {self.name!r}")


def no_decay(model: nn.Module) -> set[int]:
    """``id`` of each parameter of ``model`` that weight decay leaves alone: every one with fewer
    than two dimensions (biases, norm gains, CLS, mask token), learned position tables and
    ``nn.Embedding`` tables."""
    ids = {id(p) for p in model.parameters() if p.ndim < 2}
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            ids.add(id(m.weight))
        if isinstance(m, Encoder) and isinstance(m.positions, nn.Parameter):
            ids.add(id(m.positions))
    return ids


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The trainable parameters of ``model`` as optimiser groups.

    Parameters
    ----------
    model : nn.Module
        Parameters with ``requires_grad`` off (frozen parts) are left out.
    weight_decay : float >= 0
        Decay of the matrices and convolution kernels; the others (``no_decay``) get 0.

    Returns
    -------
    groups : list of dict
        ``[{"params": decaying, "weight_decay": weight_decay}, {"params": others, "weight_decay": 0.0}]``,
        empty groups dropped; with ``weight_decay == 0`` one group of all, as a plain parameter list
        gives (the same optimiser state, step for step).
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    if weight_decay == 0:
        return [{"params": trainable}]
    keep = no_decay(model)
    groups = [{"params": [p for p in trainable if id(p) not in keep], "weight_decay": weight_decay},
              {"params": [p for p in trainable if id(p) in keep], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
