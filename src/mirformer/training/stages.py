"""What a training stage is configured by: pretraining stages and downstream stages (with what
trains, what the head reads, and a grid of settings selected on validation)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mirformer.errors import ConfigError
from mirformer.models.heads import HEADS, POOLINGS
from mirformer.training.modules import OptimConfig
from mirformer.training.strategies import check_strategy


@dataclass
class GridConfig:
    """A sweep over batch size x static learning rate, selected on the validation split.

    An empty list keeps the stage's own value; both empty: no sweep.
    """

    batch_size: list = field(default_factory=list)
    lr: list = field(default_factory=list)

    def __post_init__(self):
        # YAML 1.1 reads "2e-5" as a string; a list's items are not checked by the config loader.
        try:
            self.batch_size = [int(b) for b in self.batch_size]
            self.lr = [float(r) for r in self.lr]
        except (TypeError, ValueError):
            raise ConfigError(f"grid.batch_size must list integers and grid.lr numbers, got "
                              f"{self.batch_size!r} and {self.lr!r}") from None

    def points(self, batch_size: int, lr: float | None) -> list[tuple[int, float | None]]:
        return [(b, r) for b in (self.batch_size or [batch_size]) for r in (self.lr or [lr])]


@dataclass
class StageConfig:
    """A training stage: epochs, the global batch, random crops per clip and epoch, the optimiser."""

    epochs: int = 10
    batch_size: int = 64
    snippets_per_track: int = 1  # random crops drawn from each training clip per epoch
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class DownstreamConfig(StageConfig):
    """A downstream stage: also what trains (``mirformer.training.strategies``), what the head
    reads, which head, and the grid of settings it selects among on validation."""

    strategy: str = "full"  # full | linear-probe | mlp-probe | frozen-frontend | frozen-encoder
    pooling: str = "cls"  # cls | mean
    head: str | None = None  # linear | mlp | pooler; None: mlp for mlp-probe, else the model's own
    grid: GridConfig = field(default_factory=GridConfig)

    def __post_init__(self):
        check_strategy(self.strategy)
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.head is not None and self.head not in HEADS:
            raise ConfigError(f"head must be one of {HEADS} (or None), got {self.head!r}")
        if self.grid.lr and self.optim.lr is None:
            raise ConfigError("grid.lr sweeps a static learning rate; this stage uses the warmup schedule "
                              "(optim.lr is None): set optim.lr or leave grid.lr empty")
