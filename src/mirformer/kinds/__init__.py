"""Model kinds: importing this package registers every kind module in it (``KINDS`` in report order)."""

from mirformer.kinds.base import (
    KINDS,
    MODES,
    InputSpec,
    Kind,
    ModelKind,
    PretrainStage,
    known_setups,
    parse_setup,
)
from mirformer.registry import import_submodules

import_submodules(__name__)

__all__ = ["KINDS", "MODES", "InputSpec", "Kind", "ModelKind", "PretrainStage", "known_setups", "parse_setup"]
