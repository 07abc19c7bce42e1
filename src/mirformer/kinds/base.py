"""What a model kind declares, and the registry of kinds.

A kind (SpectroFormer, TokenFormer, CodebookFormer, Patchifier, the MFCC baseline) is one
registered class in its own file of this package: its config (reached in a comparison's config
tree under the kind's name), the input it reads (a representation, of a layout it can read, and
how that input is scaled), how to build and load its network, its pretraining stages in order,
the parameter groups each fine-tuning strategy freezes and those only pretraining uses, its
default downstream head, and what reports need to know to compare it (its architecture; whether
it is the reference the others are compared against). The runner loops over kinds and never
names one; adding a model is one file in this package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch.nn as nn

from mirformer.errors import ConfigError
from mirformer.models.encoder import EncoderConfig
from mirformer.representations import Representation, Statistics, representation_class
from mirformer.training.stages import StageConfig
from mirformer.training.strategies import FREEZES, STRATEGIES


class Comparison(Protocol):
    """What kinds read of a comparison's config: their own section (``getattr(cfg, kind.config_key)``),
    the representations' sections, and these shared settings."""

    encoder: EncoderConfig  # the encoder the kinds of one architecture share
    window_seconds: float  # a training window, unless a kind sets its own length in frames


@dataclass
class InputSettings:
    """The part of a kind's config that says what it reads: ``input``, a registered representation
    (configured in its own section of the comparison's config), and ``window``, the frames of a
    training window (None: the comparison's ``window_seconds``)."""

    input: str = ""
    window: int | None = None


@dataclass(frozen=True)
class InputSpec:
    """The input a kind reads. Kinds with equal specs share one prepared input.

    ``name`` is the input's name in results; ``representation`` a registered representation and
    ``config`` its config. ``scaling`` is one of ``representations.base.SCALINGS`` (None: the
    representation's default). ``window`` is the frames of a training window (None: the
    comparison's ``window_seconds``, or ``seconds`` when set); ``eval_window`` the frames of an
    evaluation window (None: ``window``).
    """

    name: str
    representation: str
    config: Any
    scaling: str | None = None
    window: int | None = None
    eval_window: int | None = None
    seconds: float | None = None

    def frames(self, cfg: Comparison, rate: float | None = None) -> tuple[int, int]:
        """(training window, evaluation window) in frames, at ``rate`` frames per second (None:
        the rate the representation's config gives)."""
        rate = representation_class(self.representation).frame_rate(self.config) if rate is None else rate
        window = self.window or max(1, round((self.seconds or cfg.window_seconds) * rate))  # rate 0: one vector per clip
        return window, self.eval_window or window


def configured_input(cfg: Comparison, representation: str, **fields) -> InputSpec:
    """The input of ``representation`` as the comparison configures it (its ``config_key`` section)."""
    cls = representation_class(representation)
    if cls.config_key is None or not hasattr(cfg, cls.config_key):
        raise ConfigError(f"representation {representation!r} has no section in the comparison's config; "
                          "a model can read it only from an encoder file")
    return InputSpec(cls.input_name, cls.name, getattr(cfg, cls.config_key), **fields)


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


class Kind(ABC):
    """Anything a setup of a comparison names. ``order`` places its setups in reports;
    ``reference`` kinds are what every other setup is compared against, under ``label``."""

    name: ClassVar[str]
    order: ClassVar[int]
    config_class: ClassVar[type]
    neural: ClassVar[bool] = True
    pretrains: ClassVar[bool] = False  # has an encoder of its own to pretrain into an encoder file
    reference: ClassVar[bool] = False
    label: ClassVar[str] = ""

    @property
    def config_key(self) -> str:
        """Where its config lives in a comparison's config tree: its name, as an identifier."""
        return self.name.replace("-", "_")

    def settings(self, cfg):
        """This kind's section of the comparison config ``cfg``."""
        return getattr(cfg, self.config_key)

    @abstractmethod
    def setups(self) -> dict[str, str | None]:
        """Its setup names, each with its mode (None: the kind's only setup)."""


# How a kind's network is trained downstream: pretrained then fine-tuned (``finetune``), from
# scratch (``scratch``), or pretrained then fine-tuned with one named strategy.
MODES = ("pretrained-finetuned", "scratch", *STRATEGIES)


class ModelKind(Kind):
    """A neural model kind. ``architecture``: kinds that share one differ only in their input (the
    report compares their inputs); ``reads``: the layouts it takes (``"frames"``, ``"ids"``);
    ``head``: the downstream head unless the strategy or config says otherwise; ``freezes``: the
    parameter groups each strategy freezes; ``pretraining_only``: the groups only pretraining
    uses, frozen downstream."""

    architecture: ClassVar[str]
    pretrains = True
    reads: ClassVar[tuple[str, ...]] = ("frames",)
    head: ClassVar[str] = "linear"
    freezes: ClassVar[dict[str, tuple[str, ...]]] = FREEZES
    pretraining_only: ClassVar[tuple[str, ...]] = ("decoder",)

    def setups(self) -> dict[str, str | None]:
        return {f"{self.name}-{mode}": mode for mode in MODES}

    @abstractmethod
    def input(self, cfg: Comparison) -> InputSpec:
        """The input this kind reads under ``cfg``."""

    def check(self, cfg: Comparison, window: int, eval_window: int) -> None:
        """Raise ``ConfigError`` before any heavy work if windows of these frames do not fit the model."""

    def check_input(self, representation: Representation) -> None:
        """Refuse a representation whose layout this kind cannot read."""
        layout = "ids" if representation.layout.discrete else "frames"
        if layout not in self.reads:
            raise ConfigError(f"{self.name} reads {' or '.join(self.reads)}; {representation.name} gives {layout}")

    @abstractmethod
    def build(self, cfg: Comparison, representation: Representation, statistics: Statistics, *, n_outputs: int,
              head: str, pooling: str) -> nn.Module:
        """A new, randomly initialised network for ``representation`` (the caller seeds the generator)."""

    @abstractmethod
    def load(self, path: Path, *, n_outputs: int | None = None, head: str | None = None,
             pooling: str = "cls") -> nn.Module:
        """A saved network; with ``n_outputs``, a fresh downstream ``head`` reading ``pooling``."""

    @abstractmethod
    def pretraining(self, cfg: Comparison, representation: Representation) -> list[PretrainStage]:
        """The pretraining stages, in order."""


def check_window(name: str, length: int, limit: int, *, unit: str = "frames", limit_key: str = "encoder.max_len",
                 hint: str = "window_seconds, or the kind's window") -> None:
    """Refuse windows longer than a model's position table, naming the keys to change."""
    if length > limit:
        raise ConfigError(f"{name}: windows of {length} {unit} exceed {limit_key}={limit}; raise {limit_key} or "
                          f"shorten the window ({hint})")


KINDS: dict[str, Kind] = {}


def register_kind(cls):
    """Class decorator: make a kind available by its ``name``; ``KINDS`` keeps report order."""
    KINDS[cls.name] = cls()
    for name in sorted(KINDS, key=lambda n: KINDS[n].order):
        KINDS[name] = KINDS.pop(name)
    return cls


def parse_setup(name: str) -> tuple[Kind, str | None]:
    """``"patchifier-linear-probe"`` -> (the Patchifier kind, ``"linear-probe"``)."""
    for kind in KINDS.values():
        modes = kind.setups()
        if name in modes:
            return kind, modes[name]
    raise ConfigError(f"unknown setup {name!r}; known: {known_setups()}")


def known_setups() -> list[str]:
    """Every setup a comparison can run, in report order."""
    return [name for kind in KINDS.values() for name in kind.setups()]
