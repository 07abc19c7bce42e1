"""External representations as rows of a comparison: each ``--representation`` spec (or
``representations=[...]``) becomes an input, and each input one probe setup per probing strategy
and, with ``probe.layer: all``, per layer; ``weighted`` probes a learned mix of the layers.

A spec's own ``layer`` is set from ``probe.layer`` unless the spec names one: a number (or
``last``) reads that layer alone, ``all`` and ``weighted`` read every layer, stacked in one
feature store; None leaves each spec's own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mirformer.errors import ConfigError
from mirformer.experiments.downstream import Setup
from mirformer.kinds import KINDS
from mirformer.kinds.probe import PROBES
from mirformer.models.probe import WEIGHTED


def spec_label(spec: str) -> str:
    """A row-name prefix for a spec: its prefix and the file or folder it names (an encoder file
    by its folder), e.g. ``hf-hubert-base`` for ``hf:models/hubert-base,layer=all``."""
    prefix, _, rest = spec.partition(":")
    path = Path(rest.split(",")[0])
    stem = path.stem if path.suffix in (".pt", ".pth", ".npy", ".csv", ".tar") else path.name
    if stem in ("encoder", "vqvae.pth"):  # a generic file name: its folder says more
        stem = path.parent.name
    return f"{prefix}-{stem}"


def probe_setups(cfg, prepared, labels: dict[str, str], strategies: list[str]) -> list[Setup]:
    """The probe setups of the prepared inputs ``labels`` names (input name -> row prefix)."""
    kind, stage = KINDS["probe"], cfg.probe.stage
    bad = [s for s in strategies if s not in PROBES]
    if bad:
        raise ConfigError(f"representations are probed with {PROBES}; {bad} would train what is frozen")
    setups = []
    for name, label in labels.items():
        rep = prepared.inputs[name].representation
        layers = {"all": list(range(rep.layers)), WEIGHTED: [WEIGHTED]}.get(cfg.probe.layer, [-1])
        for strategy in strategies:
            for layer in layers:
                at = "" if cfg.probe.layer not in ("all", WEIGHTED) else (
                    f"-{layer}" if layer == WEIGHTED else f"-L{layer}")
                about = {"representation": name, "label": label, "layer": layer, "layers": rep.layers}
                setups.append(Setup(f"{label}{at}-{strategy}", kind.at(layer),
                                    dataclasses.replace(stage, strategy=strategy), input=name, about=about))
    return setups


def unique_labels(specs: list[str], taken: list[str] = ()) -> dict[str, str]:
    """Each spec's label, numbered where two would read alike."""
    labels = {s: spec_label(s) for s in specs}
    names = list(labels.values()) + list(taken)
    counts: dict[str, int] = {}
    for spec, label in labels.items():
        if names.count(label) > 1:
            counts[label] = counts.get(label, 0) + 1
            labels[spec] = f"{label}-{counts[label]}"
    return labels
