"""External representations as rows of a comparison: each ``--representation`` spec (or
``representations=[...]``) is an input (``kinds.probe.probe_inputs``), and each input one probe
setup per probing strategy and, with ``probe.layer: all``, per layer; ``weighted`` probes a
learned mix of the layers. Rows are named after the spec (``hf-hubert-base-linear-probe``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mirformer.experiments.downstream import Setup
from mirformer.kinds.probe import ProbeKind
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
    setups = []
    for name, label in labels.items():
        rep, chosen = prepared.inputs[name].representation, cfg.probe.layer
        layers = {"all": list(range(rep.layers)), WEIGHTED: [WEIGHTED]}.get(chosen, [-1])
        if isinstance(chosen, int) and rep.layers > 1:  # a stack its spec could not narrow (precomputed files)
            layers = [chosen]
        for strategy in strategies:
            for layer in layers:
                at = {"all": f"-L{layer}", WEIGHTED: f"-{WEIGHTED}"}.get(cfg.probe.layer, "")
                about = {"representation": name, "label": label, "layer": layer, "layers": rep.layers}
                setups.append(Setup(f"{label}{at}-{strategy}", ProbeKind(layer),
                                    dataclasses.replace(cfg.probe.stage, strategy=strategy), input=name, about=about))
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
