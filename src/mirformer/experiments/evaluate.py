"""``mirformer pretrain`` and ``mirformer evaluate``: the two halves of a comparison, apart.

``run_pretrain`` writes self-contained encoder checkpoints (``mirformer.encoder_file``) into the
run folder a comparison with the same config uses, so ``compare`` later reuses them.
``run_evaluate`` trains and scores downstream setups from one or more encoder files alone, on
any dataset and task: the downstream audio is encoded with each encoder's own input settings
and scaling, and one table compares them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from mirformer import distributed, paths
from mirformer.atomic import write_json
from mirformer.encoder_file import read_encoder
from mirformer.errors import ConfigError
from mirformer.experiments.compare import Comparison, config_hash, distributed_settings, finish_run, versions
from mirformer.experiments.config import CompareConfig
from mirformer.experiments.data import kinds_of
from mirformer.kinds import KINDS
from mirformer.representations.mel import LogMel, MelConfig


def run_pretrain(cfg: CompareConfig, *, kinds: list[str] | None = None, run_dir: Path | None = None,
                 progress: bool = True) -> dict[str, Path]:
    """Pretrain ``kinds`` (default: those ``cfg``'s setups pretrain) on ``pretrain.data``; return
    each kind's encoder checkpoint (in the run folder ``compare`` with ``cfg`` reuses)."""
    distributed.launch(cfg.trainer)
    split = distributed_settings(cfg)
    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown:
        raise ConfigError(f"unknown model kind(s) {unknown}; known: {sorted(KINDS)}")
    chosen = [KINDS[k] for k in kinds] if kinds else kinds_of(cfg, pretrained=True)
    if not chosen:
        raise ConfigError(f"nothing to pretrain: name a model kind ({sorted(KINDS)}) or use a preset whose setups "
                          "start from a pretrained encoder")
    pre = Comparison(cfg, run_dir, progress=progress, data=cfg.pretrain.data, labelled=False)
    if distributed.is_main():
        write_json(pre.run_dir / "config.json", {"config": asdict(cfg), "seed": cfg.seed, "versions": versions(),
                                                 "distributed": split})
    pre.prepare_data(kinds=chosen)
    return {kind.name: pre.pretrain(kind)[0] for kind in chosen}


def check_input_overrides(overrides: dict, encoders: list[Path]) -> None:
    """Refuse input settings that contradict an encoder's: evaluation encodes the downstream audio
    with the encoder's own settings, and a different setting asked for would be silently ignored."""
    for path in encoders:
        encoder = read_encoder(path)
        rep = encoder.representation
        for key in ("mel", "patchifier"):
            asked = overrides.get(key, {})
            asked = asked.get("mel", {}) if key == "patchifier" else asked
            if asked and isinstance(rep, LogMel):
                wanted = MelConfig(**{**dataclasses.asdict(rep.config), **asked})
                if wanted != rep.config:
                    raise ConfigError(f"{path} reads log-mel {rep.config}; evaluation encodes the downstream data "
                                      f"with those settings, so --set {key}{'.mel' if key == 'patchifier' else ''}="
                                      f"{asked} would not apply: drop it, or pretrain an encoder with it")
        if overrides.get("tokenizer") and not isinstance(rep, LogMel):
            raise ConfigError(f"{path} carries its own VQ tokenizer; evaluation uses it, so tokenizer settings "
                              f"{overrides['tokenizer']} would not apply: drop them")


def encoder_labels(encoders: list[Path]) -> dict[Path, str]:
    """A row-name prefix per encoder: its kind and pretraining dataset, numbered when repeated."""
    names = {}
    for path in encoders:
        encoder = read_encoder(path)
        names[Path(path)] = f"{encoder.kind}-{encoder.about.get('dataset', 'unknown')}"
    counts: dict[str, int] = {}
    labels = {}
    for path, name in names.items():
        repeated = list(names.values()).count(name) > 1
        counts[name] = counts.get(name, 0) + 1
        labels[path] = f"{name}-{counts[name]}" if repeated else name
    return labels


def run_evaluate(cfg: CompareConfig, encoders: list[str | Path], *, modes: list[str] | None = None,
                 baseline: bool = False, run_dir: Path | None = None, progress: bool = True) -> dict:
    """Fine-tune or probe every encoder in every mode (default: ``finetune.strategy``) on ``cfg``'s
    data and task, with ``finetune``'s pooling, head and grid; one run folder and report for all.

    Returns the results on rank 0, ``{}`` on the other ranks of a DDP run.
    """
    t0 = time.time()
    encoders = [Path(p) for p in encoders]
    if not encoders:
        raise ConfigError("evaluate needs at least one --encoder checkpoint")
    labels = encoder_labels(encoders)
    modes = modes or [cfg.finetune.strategy]
    cfg = replace(cfg, setups=["mfcc-linear"] if baseline else [])
    distributed.launch(cfg.trainer)
    split = distributed_settings(cfg)
    if run_dir is None:
        key = hashlib.sha1(json.dumps([config_hash(cfg), modes, [str(p.resolve()) for p in encoders]]).encode())
        run_dir = paths.runs_dir() / f"evaluate-{cfg.name}-{key.hexdigest()[:8]}"
    cmp = Comparison(cfg, run_dir, progress=progress)
    if distributed.is_main():
        write_json(cmp.run_dir / "config.json", {"config": asdict(cfg), "encoders": [str(p) for p in encoders],
                                                 "modes": modes, "seed": cfg.seed, "versions": versions(),
                                                 "distributed": split})
    cmp.prepare_data(kinds=[], encoders=encoders)
    setups: dict[str, dict] = {}
    for path in encoders:
        kind = KINDS[cmp.encoders[path].kind]
        for mode in modes:
            name = f"{labels[path]}-{mode}"
            setups[name] = cmp.downstream(name, kind, replace(cfg.finetune, strategy=mode), path)
    return finish_run(cmp, setups, t0)
