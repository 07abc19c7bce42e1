"""``mirformer compare``: pretrain, then evaluate every setup, then report.

Each model kind with a pretrained setup is pretrained on the pretraining data (``pretrain.data``,
by default the comparison's own data, labels unread) into a self-contained encoder file; then
every setup trains downstream, a pretrained one from its encoder file alone; then the report.
It loops over the registered kinds and names none; a swept setting (``experiments.sweep``) runs
the setups it changes once per value; with ``deform`` settings, every setup is then scored on
deformed test clips too (``experiments.robustness``). Every stage writes its result into its own
folder of the run directory, so a rerun skips finished stages and resumes an interrupted one.
"""

from __future__ import annotations

import time
from pathlib import Path

from mirformer import distributed
from mirformer.experiments.downstream import Setup, stage_of
from mirformer.experiments.evaluate import evaluate, finish
from mirformer.experiments.prepare import Prepared, kinds_of, prepare
from mirformer.experiments.probes import probe_setups, unique_labels
from mirformer.experiments.pretrain import pretrain_kinds
from mirformer.experiments.robustness import score_robustness
from mirformer.experiments.run import default_run_dir, start_run
from mirformer.experiments.sweep import Variant, variants
from mirformer.kinds import KINDS
from mirformer.kinds.probe import probe_inputs


def run_compare(cfg, run_dir: Path | None = None, *, progress: bool = True) -> dict:
    """Run (or resume) every setup of ``cfg`` and write results.json and the report.

    Returns the results on rank 0, ``{}`` on the other ranks of a DDP run.
    """
    t0 = time.time()
    distributed.launch(cfg.trainer)  # every rank runs what follows; rank 0 alone writes the run folder
    run_dir = start_run(run_dir or default_run_dir(cfg), cfg)  # a batch that does not divide fails here
    everything, results = None, {}
    for i, variant in enumerate(variants(cfg)):  # one, unless a setting is swept
        # The probed representations do not depend on a swept setting: they run once, with the first.
        prepared, setups, histories = _variant(variant, run_dir, probes=i == 0, progress=progress)
        scored = evaluate(setups, prepared, run_dir)
        score_robustness(setups, scored, prepared, run_dir)
        for name, result in scored.items():
            results[name] = {**result, "sweep": variant.about(cfg.sweep.key)} if variant.tag else result
            if name in histories:  # the pretraining curves beside the fine-tuning's
                stages = histories[name]
                results[name]["pretrain_history"] = list(stages.values())[-1]
                if len(stages) > 1:
                    results[name]["pretrain_stages"] = stages
        everything = prepared if everything is None else everything.including(prepared)
    return finish(everything, results, run_dir, t0)


def _variant(variant: Variant, run_dir: Path, *, probes: bool, progress: bool) -> tuple[Prepared, list[Setup], dict]:
    """Pretrain what ``variant``'s setups start from and prepare their inputs (with ``probes``, the
    probed representations too); return the prepared data, its setups (names and input names
    ending in the variant's tag) and the pretraining histories of the pretrained ones, by setup."""
    cfg, tag = variant.cfg, variant.tag
    pretrained = pretrain_kinds(cfg, kinds_of(cfg, pretrained=True), run_dir, tag=tag, progress=progress)
    specs = cfg.representations if probes else []
    prepared = prepare(cfg, encoders=[path for path, _ in pretrained.values()], inputs=probe_inputs(cfg, specs),
                       progress=progress).tagged(tag)
    setups = probe_setups(cfg, prepared, {s + tag: label for s, label in unique_labels(specs).items()},
                          cfg.probe.strategies)
    histories = {}
    for kind in KINDS.values():
        for name, mode in kind.setups().items():
            if name not in cfg.setups:
                continue
            if not kind.neural:
                setups.append(Setup(name, kind))
            elif mode == "scratch":
                setups.append(Setup(name + tag, kind, stage_of(cfg, mode), input=kind.input(cfg).name + tag))
            else:
                encoder, histories[name + tag] = pretrained[kind.name]
                clips = prepared.encoders[str(encoder)].about["tracks"]["train"]  # what it was pretrained on
                setups.append(Setup(name + tag, kind, stage_of(cfg, mode), encoder, str(encoder),
                                    about={"pretrain_clips": clips}))
    return prepared, setups, histories
