"""``evaluate(setups, prepared) ->`` results, ``finish`` (the run's results.json, evidence and
report), and ``mirformer evaluate``: downstream setups from encoder files alone, on any dataset
and task.

The downstream audio is encoded with each encoder's own representation (resampled to its rate)
and statistics, never the config's; one table compares every encoder in every mode.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

from mirformer import distributed, paths
from mirformer.atomic import write_json
from mirformer.config_tree import sections, touched
from mirformer.deformations import parse_deforms
from mirformer.encoder_file import read_encoder
from mirformer.errors import ConfigError
from mirformer.experiments.cost import machine
from mirformer.experiments.downstream import Setup, run_setup
from mirformer.experiments.prepare import Prepared, prepare
from mirformer.experiments.probes import probe_setups, unique_labels
from mirformer.experiments.questions import evidence_of_run
from mirformer.experiments.robustness import describe, score_robustness
from mirformer.experiments.run import config_hash, log, start_run
from mirformer.kinds import KINDS
from mirformer.kinds.probe import PROBES, probe_inputs


def evaluate(setups: list[Setup], prepared: Prepared, run_dir: Path) -> dict[str, dict]:
    """Train and score every setup on ``prepared`` (finished ones reused), in order; by name."""
    results = {}
    for setup in setups:
        result = run_setup(setup, prepared, run_dir)
        if result:  # a kind that fits itself runs on rank 0 alone
            results[setup.name] = result
    return results


def finish(prepared: Prepared, setups: dict[str, dict], run_dir: Path, t0: float) -> dict:
    """``results.json`` with its evidence (intervals, paired tests) and the report, on rank 0;
    returns the results there, ``{}`` on the other ranks."""
    from mirformer.experiments.report import write_report

    if not distributed.is_main():
        return {}
    cfg, dataset, task, run_dir = prepared.cfg, prepared.dataset, prepared.task, Path(run_dir)
    results = {
        "name": cfg.name,
        "dataset": dataset.name,
        "dataset_root": str(dataset.root),
        "task": task.name,
        "monitor": task.monitor,
        "classes": task.names,
        "counts": {s: len(ts) for s, ts in prepared.tracks.items()},
        "representations": {name: inp.describe() for name, inp in prepared.inputs.items()},
        # Pretraining stages that drew validation examples (Patchifier's reconstructions).
        "examples": {p.parent.name: str(p.relative_to(run_dir)) for p in sorted(run_dir.glob("*/examples.png"))},
        "skipped": prepared.skipped,
        "flagged": prepared.flagged,
        "setups": setups,
        "seconds": time.time() - t0,
        "deformations": [describe(d) for d in parse_deforms(cfg.deform)],
        "machine": machine(),  # where the costs were measured
        "run_dir": str(run_dir),
    }
    log("confidence intervals and paired tests on the test clips", prepared.progress)
    results["evidence"] = evidence_of_run(results, run_dir, seed=cfg.seed, progress=prepared.progress,
                                          n_resamples=cfg.evidence.n_resamples,
                                          n_permutations=cfg.evidence.n_permutations)
    write_json(run_dir / "results.json", results)
    results["table"] = write_report(results, run_dir)
    return results


def check_input_overrides(cfg, overrides: dict, encoders: list[Path]) -> None:
    """Refuse settings that contradict an encoder's representation: evaluation encodes the
    downstream data with the encoder's own, so a different setting asked for would be silently
    ignored. A section of the encoder representation's config (wherever it sits in the tree, e.g.
    ``mel`` or ``patchifier.mel``) may be set only to the encoder's own values."""
    for path in encoders:
        rep = read_encoder(path).representation
        if rep.config_class is None:
            continue
        own = rep.settings()
        for key, section in sections(cfg, rep.config_class):
            if touched(overrides, key) and section != own:
                what = f"{rep.label} {own}" if own is not None else f"its own {rep.label} settings (embedded)"
                raise ConfigError(f"{path} reads {what}; evaluation encodes the downstream data with those settings, "
                                  f"so --set {key}=... would not apply: drop it, or pretrain an encoder with it")


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


def run_evaluate(cfg, encoders: list[str | Path] = (), *, representations: list[str] = (),
                 modes: list[str] | None = None, baseline: bool = False, run_dir: Path | None = None,
                 progress: bool = True) -> dict:
    """``mirformer evaluate``: fine-tune or probe every encoder in every mode (default:
    ``finetune.strategy``) on ``cfg``'s data and task, with ``finetune``'s pooling, head and grid;
    probe every representation spec (``experiments.probes``) with the probing modes among
    ``modes`` (default: ``probe.strategies``) at ``probe``'s layer and stage; with ``baseline``,
    every reference kind (the MFCC baseline) too; one run folder and report.

    With ``probe.layer`` set (not None), the encoders are probed as representations too: their
    frozen states (``encoder:PATH``), layer by layer or mixed, as any external encoder.

    Returns the results on rank 0, ``{}`` on the other ranks of a DDP run.
    """
    t0 = time.time()
    encoders, representations = [Path(p) for p in encoders], list(representations)
    if not encoders and not representations:
        raise ConfigError("evaluate needs at least one --encoder checkpoint or --representation")
    trained = [m for m in modes or () if m not in PROBES]
    if cfg.probe.layer is not None and encoders and trained:
        raise ConfigError(f"--layer probes the encoders' frozen states, layer by layer; --mode {trained[0]} would train "
                          "them: drop one of the two")
    modes = modes or [cfg.finetune.strategy]
    probing = [m for m in modes if m in PROBES] or cfg.probe.strategies
    labels = encoder_labels(encoders)
    probed = {}
    if cfg.probe.layer is not None:  # the encoders' states, as any representation's
        probed = {f"encoder:{path}": labels.pop(path) for path in encoders}
        encoders = []
    probed.update(unique_labels(representations, taken=list(probed.values())))
    references = [k for k in KINDS.values() if k.reference] if baseline else []
    cfg = replace(cfg, setups=[name for k in references for name in k.setups()])
    distributed.launch(cfg.trainer)
    if run_dir is None:
        key = hashlib.sha1(json.dumps([config_hash(cfg), modes, [str(p.resolve()) for p in encoders],
                                       sorted(probed)]).encode())
        run_dir = paths.runs_dir() / f"evaluate-{cfg.name}-{key.hexdigest()[:8]}"
    run_dir = start_run(run_dir, cfg, encoders=[str(p) for p in encoders], representations=list(probed), modes=modes)
    prepared = prepare(cfg, kinds=[], encoders=encoders, inputs=probe_inputs(cfg, list(probed)), progress=progress)
    setups = [Setup(f"{labels[path]}-{mode}", KINDS[prepared.encoders[str(path)].kind],
                    replace(cfg.finetune, strategy=mode), path, str(path)) for path in encoders for mode in modes]
    setups += probe_setups(cfg, prepared, probed, probing)
    setups += [Setup(name, kind) for kind in references for name in kind.setups()]
    results = evaluate(setups, prepared, run_dir)
    score_robustness(setups, results, prepared, run_dir)
    return finish(prepared, results, run_dir, t0)
