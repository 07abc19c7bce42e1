"""``mirformer compare``: pretrain, then evaluate every setup, then report.

Each model kind with a pretrained setup is pretrained on the pretraining data (``pretrain.data``,
by default the comparison's own data, labels unread) into a self-contained encoder file; then
every setup trains downstream, a pretrained one from its encoder file alone; then the report.
It loops over the registered kinds and names none. Every stage writes its result into its own
folder of the run directory, so a rerun skips finished stages and resumes an interrupted one.
"""

from __future__ import annotations

import time
from pathlib import Path

from mirformer import distributed
from mirformer.experiments.downstream import Setup, stage_of
from mirformer.experiments.evaluate import evaluate, finish
from mirformer.experiments.prepare import kinds_of, prepare
from mirformer.experiments.pretrain import pretrain_kinds
from mirformer.experiments.run import default_run_dir, start_run
from mirformer.kinds import KINDS


def run_compare(cfg, run_dir: Path | None = None, *, progress: bool = True) -> dict:
    """Run (or resume) every setup of ``cfg`` and write results.json and the report.

    Returns the results on rank 0, ``{}`` on the other ranks of a DDP run.
    """
    t0 = time.time()
    distributed.launch(cfg.trainer)  # every rank runs what follows; rank 0 alone writes the run folder
    run_dir = start_run(run_dir or default_run_dir(cfg), cfg)  # a batch that does not divide fails here
    pretrained = pretrain_kinds(cfg, kinds_of(cfg, pretrained=True), run_dir, progress=progress)
    prepared = prepare(cfg, encoders=[path for path, _ in pretrained.values()], progress=progress)
    setups, histories = [], {}
    for kind in KINDS.values():
        for name, mode in kind.setups().items():
            if name not in cfg.setups:
                continue
            if not kind.neural:
                setups.append(Setup(name, kind))
            elif mode == "scratch":
                setups.append(Setup(name, kind, stage_of(cfg, mode), input=kind.input(cfg).name))
            else:
                encoder, histories[name] = pretrained[kind.name]
                setups.append(Setup(name, kind, stage_of(cfg, mode), encoder, str(encoder)))
    results = evaluate(setups, prepared, run_dir)
    for name, stages in histories.items():  # the pretraining curves beside each fine-tuning's
        if name in results:
            results[name]["pretrain_history"] = list(stages.values())[-1]
            if len(stages) > 1:
                results[name]["pretrain_stages"] = stages
    return finish(prepared, results, run_dir, t0)
