"""What a model kind declares, and the registry of kinds.

A kind (SpectroFormer, TokenFormer, CodebookFormer, Patchifier) is one registered class: the
input it reads and how that input is scaled, how to build and load its network, its pretraining
stages in order, the parameter groups each fine-tuning strategy freezes and the downstream head
it uses by default. The comparison runner loops over kinds and never names one; adding a model
is one file in this package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch.nn as nn

from mirformer.errors import ConfigError
from mirformer.representations.mel import MelConfig
from mirformer.training.strategies import FREEZES, STRATEGIES

if TYPE_CHECKING:  # the runner's types; kinds only read attributes of them
    from mirformer.experiments.compare import Inputs
    from mirformer.experiments.config import CompareConfig, StageConfig


@dataclass(frozen=True)
class InputSpec:
    """The input a kind reads. Kinds with equal specs share one prepared input.

    ``representation`` is ``"mel"`` (log-mel frames of ``mel``) or ``"tokens"`` (the comparison's
    VQ tokenizer). Log-mel is scaled by ``scaling``: ``"standardise"`` (per band, with the training
    split's mean and std) or ``"paper"`` (dB x 0.01, Patchifier's). ``window`` is the frames of a
    training window (tokens: None, the seconds of a mel window); ``eval_window`` the frames of an
    evaluation window (None: ``window``).
    """

    name: str
    representation: str
    mel: MelConfig | None = None
    scaling: str = "standardise"
    window: int | None = None
    eval_window: int | None = None


@dataclass(frozen=True)
class PretrainStage:
    """One pretraining stage; the stages of a kind run in order, each starting from the last's weights.

    ``frames`` is the length of the training crops (None: the input's window; validation reads
    every crop of that length of each clip); ``frozen`` names the parameter groups of
    ``model.parts()`` that do not train.
    """

    name: str  # the stage folder is "<kind>-<name>"
    objective: Any  # objective(model, batch, generator) -> loss
    config: StageConfig  # epochs, batch size, crops per clip and epoch, optimiser
    description: str
    frames: int | None = None
    frozen: tuple[str, ...] = ()


class ModelKind(ABC):
    """One model kind. ``head`` is the downstream head unless the strategy or the config says
    otherwise; ``freezes`` maps each fine-tuning strategy to the parameter groups it freezes."""

    name: ClassVar[str]
    head: ClassVar[str] = "linear"
    freezes: ClassVar[dict[str, tuple[str, ...]]] = FREEZES

    @abstractmethod
    def input(self, cfg: CompareConfig) -> InputSpec:
        """The input this kind reads under ``cfg``."""

    @abstractmethod
    def check(self, cfg: CompareConfig, window: int, eval_window: int) -> None:
        """Raise ``ConfigError`` before any heavy work if windows of these frames do not fit the model."""

    @abstractmethod
    def build(self, cfg: CompareConfig, inp: Inputs, *, n_outputs: int, head: str, pooling: str) -> nn.Module:
        """A new, randomly initialised network (the caller seeds the generator)."""

    @abstractmethod
    def load(self, path: Path, *, n_outputs: int | None = None, head: str | None = None,
             pooling: str = "cls") -> nn.Module:
        """A saved network; with ``n_outputs``, a fresh downstream ``head`` reading ``pooling``."""

    @abstractmethod
    def pretraining(self, cfg: CompareConfig, inp: Inputs) -> list[PretrainStage]:
        """The pretraining stages, in order."""


def check_window(name: str, length: int, limit: int, *, unit: str = "frames", limit_key: str = "encoder.max_len",
                 hint: str = "snippet_frames / token_snippet_frames") -> None:
    """Refuse windows longer than a model's position table, naming the keys to change."""
    if length > limit:
        raise ConfigError(f"{name}: windows of {length} {unit} exceed {limit_key}={limit}; raise {limit_key} or "
                          f"shorten the window ({hint})")


KINDS: dict[str, ModelKind] = {}


def register_kind(cls):
    """Class decorator: make a model kind available by its ``name``."""
    KINDS[cls.name] = cls()
    return cls


# How a kind's model is trained downstream: pretrained then fine-tuned (``finetune``), from scratch
# (``scratch``), or pretrained then fine-tuned with one named strategy (``finetune`` with that strategy).
MODES = ("pretrained-finetuned", "scratch", *STRATEGIES)


def setup_names(kind: str) -> list[str]:
    """Every setup of ``kind``, in report order."""
    return [f"{kind}-{mode}" for mode in MODES]


def parse_setup(name: str) -> tuple[ModelKind, str]:
    """``"patchifier-linear-probe"`` -> (the Patchifier kind, ``"linear-probe"``)."""
    for kind in KINDS.values():
        prefix = f"{kind.name}-"
        if name.startswith(prefix) and name[len(prefix):] in MODES:
            return kind, name[len(prefix):]
    raise ConfigError(f"unknown setup {name!r}")
