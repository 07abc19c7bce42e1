"""Saved networks: ``{"spec", "state_dict"}`` files of plain tensors and primitives, read with
``torch.load(weights_only=True)``; a downstream head may be swapped for a fresh one."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from mirformer.errors import CheckpointError


def read_saved(path: str | Path) -> dict:
    """A saved network's ``{"spec", "state_dict"}``; any file that is not one is refused by name."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is reported with the file
        raise CheckpointError(f"{path}: cannot load as a weights-only checkpoint: {exc}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("spec"), dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a saved network (no spec and state_dict)")
    return ckpt


def load_weights(model: nn.Module, state_dict: dict, path: str | Path, *, fresh_head: bool, what: str) -> nn.Module:
    """Load ``state_dict`` into ``model``; with ``fresh_head`` the file's downstream head is left out
    (``model`` has a new one). Only head keys may be missing: anything else raises ``CheckpointError``."""
    state = {k: v for k, v in state_dict.items() if not (fresh_head and k.startswith("head."))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad_missing = [k for k in missing if not k.startswith("head.")]
    if bad_missing or unexpected:
        raise CheckpointError(f"{path}: state does not match {what}: missing {bad_missing}, unexpected {unexpected}")
    return model
