"""The probe: frozen frames of any continuous representation (another's encoder, precomputed
embeddings, a mirformer encoder's states), pooled per window and read by a linear or MLP head,
scored per clip by averaging its windows, as MARBLE and the HEAR kit probe external encoders.

A probe has no setup name of its own in a comparison's ``setups``: its rows come from the
representations given (``--representation``, ``representations=[...]``), one per representation,
probing strategy and, with ``layer: all``, layer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mirformer.errors import ConfigError
from mirformer.kinds.base import InputSpec, ModelKind, register_kind
from mirformer.models.probe import WEIGHTED, Probe
from mirformer.representations.base import parse_spec
from mirformer.training.modules import OptimConfig
from mirformer.training.stages import DownstreamConfig

PROBES = ("linear-probe", "mlp-probe")
LAYERS = ("last", "all", WEIGHTED)  # besides a layer's number


@dataclass
class ProbeConfig:
    """How representations are probed.

    ``strategies``: ``linear-probe`` and/or ``mlp-probe``. ``layer``, for representations with
    layers: None (each one's own: a spec's ``layer``, else its default), a number, ``last``,
    ``all`` (one probe per layer, the layer chosen on validation) or ``weighted`` (a learned
    softmax-weighted sum of the layers); when set, ``evaluate`` probes its encoders' states too.
    ``window_seconds``: the windows pooled (None: the comparison's ``window_seconds``). ``stage``:
    how the head trains (only the head trains, so its learning rate is a probe's, not fine-tuning's).
    """

    strategies: list = field(default_factory=lambda: ["linear-probe"])
    layer: int | str | None = None
    window_seconds: float | None = None
    stage: DownstreamConfig = field(default_factory=lambda: DownstreamConfig(
        epochs=20, batch_size=32, pooling="mean", optim=OptimConfig(lr=1e-3), strategy="linear-probe"))

    def __post_init__(self):
        bad = [s for s in self.strategies if s not in PROBES]
        if bad or not self.strategies:
            raise ConfigError(f"probe.strategies must list some of {PROBES}, got {self.strategies!r}")
        if not (isinstance(self.layer, int) and not isinstance(self.layer, bool)) and self.layer not in (None, *LAYERS):
            raise ConfigError(f"probe.layer must be a layer's number or one of {LAYERS}, got {self.layer!r}")
        if self.window_seconds is not None and not self.window_seconds > 0:
            raise ConfigError(f"probe.window_seconds must be > 0 or None, got {self.window_seconds!r}")


@register_kind
class ProbeKind(ModelKind):
    """A probe reading layer ``layer`` of its input's stack (an index, or ``"weighted"``)."""

    name, order, config_class, architecture = "probe", 900, ProbeConfig, "probe"
    pretrains = False  # the frames it reads are another model's, frozen
    freezes = {s: () for s in PROBES}  # nothing below the head to freeze: the frames are fixed
    pretraining_only = ()

    def __init__(self, layer: int | str = -1):
        self.layer = layer

    def setups(self) -> dict[str, str | None]:
        return {}

    def input(self, cfg):
        raise ConfigError("a probe reads the representations given to it (--representation, representations=[...])")

    def check_input(self, representation) -> None:
        super().check_input(representation)
        if representation.dim % representation.layers:
            raise ConfigError(f"{representation.name}: {representation.dim} values per frame do not split into "
                              f"{representation.layers} layers")

    def build(self, cfg, representation, statistics, *, n_outputs, head, pooling):
        if pooling != "mean":
            raise ConfigError(f"a probe pools the frames of a window by their mean; pooling {pooling!r} is not "
                              "available (set probe.stage.pooling=mean)")
        layers = representation.layers
        if self.layer != WEIGHTED and not -layers <= self.layer < layers:
            raise ConfigError(f"{representation.name} stacks {layers} layer(s); layer {self.layer} does not exist")
        return Probe(width=representation.dim // layers, layers=layers, layer=self.layer, n_outputs=n_outputs,
                     head=head)

    def load(self, path, *, n_outputs=None, head=None, pooling="mean"):
        raise ConfigError(f"{path}: a probe has no encoder file to load")

    def pretraining(self, cfg, representation):
        return []


def probe_inputs(cfg, specs: list[str]) -> dict[str, InputSpec]:
    """Each spec as an input named by the spec, standardised, in windows of
    ``probe.window_seconds`` (or the comparison's). A spec's own ``layer`` setting is set from
    ``probe.layer`` unless the spec names one: a number (or ``last``) reads that layer alone,
    ``all`` and ``weighted`` read every layer, stacked in one feature store; None leaves each
    spec's own."""
    inputs = {}
    for spec in specs:
        cls, config = parse_spec(spec)
        if cls.discrete:
            raise ConfigError(f"{spec}: a probe reads continuous frames; {cls.name} gives ids")
        layer = {None: None, "last": -1, "all": "all", WEIGHTED: "all"}.get(cfg.probe.layer, cfg.probe.layer)
        if layer is not None and "layer" in {f.name for f in dataclasses.fields(config)} and ",layer=" not in spec:
            config = dataclasses.replace(config, layer=layer)
        if spec in inputs:
            raise ConfigError(f"representation {spec!r} is given twice")
        inputs[spec] = InputSpec(spec, cls.name, config, scaling="standardise", seconds=cfg.probe.window_seconds)
    return inputs
