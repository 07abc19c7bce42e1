"""One setting varied inside one comparison: ``sweep: {key: tokenizer.codebooks, values: [1, 2, 4, 8]}``.

The setups whose input the setting changes (or, for pretrained setups, whose pretraining it
changes: ``pretrain.fraction``) run once per value, named ``<setup>@<leaf>=<value>``
(``tokenformer-scratch@codebooks=2``), their pretraining and inputs too; every other setup runs
once. All of them share the run folder, the test clips and so the report's intervals and paired
tests; the report adds a question (each value against the first, per model and mode) and a plot
of test score against the value. Which setups vary is read from the kinds' declared inputs and
pretraining settings, never from names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mirformer.config_tree import from_dict, merge, parse_overrides, to_dict
from mirformer.errors import ConfigError
from mirformer.kinds import parse_setup


@dataclass
class SweepConfig:
    """``key``: a dotted config key that a model kind's input reads (empty: no sweep); ``values``:
    what it takes, in the order the report plots them (the first is the one others are tested
    against)."""

    key: str = ""
    values: list = field(default_factory=list)


@dataclass(frozen=True)
class Variant:
    """The ``setups`` run under ``cfg``, their names and input names ending in ``tag``; ``value``
    is the swept key's (None for the setups the sweep does not change)."""

    tag: str
    value: object
    cfg: object

    def about(self, key: str) -> dict | None:
        """What ``results.json`` records of a setup's place in the sweep."""
        return None if self.tag == "" else {"key": key, "value": self.value}


def _with_setting(cfg, key: str, value):
    """``cfg`` with the dotted ``key`` set to ``value`` (unknown keys and bad types refused)."""
    return from_dict(type(cfg), merge(to_dict(cfg), parse_overrides([f"{key}={value}"])), where="")


def _pretraining(kind, cfg) -> tuple:
    """What a kind's pretraining reads of ``cfg``: the shared pretraining stage and its own section."""
    return cfg.pretrain, kind.settings(cfg)


def variants(cfg) -> list[Variant]:
    """The comparison as runs of one config each: one run without a sweep; with one, the setups
    the sweep leaves alone (if any), then the varied ones once per value."""
    sweep = cfg.sweep
    if not sweep.key:
        if sweep.values:
            raise ConfigError("sweep.values is set but sweep.key is not: name the config key they are values of")
        return [Variant("", None, cfg)]
    if not sweep.values or len(set(map(str, sweep.values))) != len(sweep.values):
        raise ConfigError(f"sweep.values must list distinct values of {sweep.key}, got {sweep.values!r}")
    swept = [_with_setting(cfg, sweep.key, v) for v in sweep.values]
    varied = []
    for name in cfg.setups:
        kind, mode = parse_setup(name)
        if kind.neural and any(kind.input(c) != kind.input(swept[0]) for c in swept[1:]):
            varied.append(name)
        elif kind.pretrains and mode != "scratch" and any(_pretraining(kind, c) != _pretraining(kind, swept[0])
                                                          for c in swept[1:]):
            varied.append(name)  # its input is the same, its pretraining is not (pretrain.fraction)
    if not varied:
        raise ConfigError(f"sweep.key={sweep.key} changes the input or pretraining of none of the setups {cfg.setups}; "
                          "sweep a setting of a representation they read (e.g. tokenizer.codebooks) or of their "
                          "pretraining (pretrain.fraction)")
    leaf = sweep.key.rsplit(".", 1)[-1]
    fixed = [n for n in cfg.setups if n not in varied]
    out = [Variant("", None, replace(cfg, setups=fixed))] if fixed else []
    return out + [Variant(f"@{leaf}={v}", v, replace(c, setups=varied)) for v, c in zip(sweep.values, swept)]
