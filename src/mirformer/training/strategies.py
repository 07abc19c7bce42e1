"""Fine-tuning strategies: which parameter groups of a model train and which head reads the encoder.

Every model names its groups in ``model.parts()``: ``frontend`` (input projection, embedding,
or Patchifier's CNN feature extractor), ``encoder`` (the transformer), ``head`` (downstream),
``decoder`` (the pretraining output) and, for Patchifier, ``mask`` (its mask token).

- ``full``: everything trains (the thesis' fine-tuning).
- ``linear-probe``: frontend and encoder frozen, a linear head on the pooled states.
- ``mlp-probe``: frontend and encoder frozen, an MLP head (MARBLE's probe).
- ``frozen-frontend``: the frontend frozen, encoder and head train (Patchifier's "frozen feature
  extractor").
- ``frozen-encoder``: the encoder frozen, frontend and head train (Patchifier's "frozen
  bottleneck").

Frozen parts stay in eval mode (no dropout, batch-norm statistics never move) even while the
module trains.
"""

from __future__ import annotations

import torch.nn as nn

from mirformer.errors import ConfigError

# strategy -> the parameter groups it freezes
FREEZES = {"full": (), "linear-probe": ("frontend", "encoder"), "mlp-probe": ("frontend", "encoder"),
           "frozen-frontend": ("frontend",), "frozen-encoder": ("encoder",)}
STRATEGIES = tuple(FREEZES)


def head_for(strategy: str, default: str = "linear") -> str:
    """The head a strategy reads the encoder with: an MLP for ``mlp-probe``, else ``default``."""
    check_strategy(strategy)
    return "mlp" if strategy == "mlp-probe" else default


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown fine-tuning strategy {strategy!r}; known: {list(STRATEGIES)}")


def freeze_groups(model: nn.Module, groups: tuple[str, ...]) -> list[nn.Module]:
    """Turn off gradients of ``model.parts()``'s ``groups`` (those it has); return their modules (to
    keep in eval mode)."""
    if not groups:
        return []
    parts = model.parts()
    frozen = [p for g in groups for p in parts.get(g, ())]
    for part in frozen:
        part.requires_grad_(False)
    return [p for p in frozen if isinstance(p, nn.Module)]
