"""Fine-tuning strategies: which parts of a Former train and which head reads the encoder.

- ``full``: everything trains (the thesis' fine-tuning).
- ``linear-probe``: frontend and encoder frozen, a linear head on the pooled states.
- ``mlp-probe``: frontend and encoder frozen, an MLP head (MARBLE's probe).
- ``frozen-frontend``: the input projection / embedding frozen, encoder and head train
  (Patchifier's "frozen feature extractor").

Frozen parts stay in eval mode (no dropout) even while the module trains.
"""

from __future__ import annotations

import torch.nn as nn

from mirformer.errors import ConfigError

STRATEGIES = ("full", "linear-probe", "mlp-probe", "frozen-frontend")


def head_for(strategy: str) -> str:
    check_strategy(strategy)
    return "mlp" if strategy == "mlp-probe" else "linear"


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown fine-tuning strategy {strategy!r}; known: {list(STRATEGIES)}")


def freeze(model: nn.Module, strategy: str) -> list[nn.Module]:
    """Turn off gradients of the parts ``strategy`` freezes; return those parts."""
    check_strategy(strategy)
    parts = {"full": [], "frozen-frontend": [model.frontend]}.get(strategy, [model.frontend, model.encoder])
    for part in parts:
        part.requires_grad_(False)
    return parts
