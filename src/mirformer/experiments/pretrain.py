"""``pretrain(kind, prepared) ->`` an encoder file: a kind's pretraining stages in order, each from
the last one's weights, on prepared (unlabelled) data; and ``mirformer pretrain``.

Each stage writes its own folder of the run directory (``<kind>-<stage>/``) and, when it
finishes, its encoder file; a rerun reuses finished stages and resumes an interrupted one from
its last checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from mirformer import distributed
from mirformer.atomic import atomic_path, write_json
from mirformer.encoder_file import save_encoder
from mirformer.errors import ConfigError
from mirformer.experiments.prepare import Input, Prepared, kinds_of, prepare
from mirformer.experiments.run import default_run_dir, log, start_run, versions
from mirformer.experiments.sweep import variants
from mirformer.kinds import KINDS, ModelKind, PretrainStage
from mirformer.training.fit import fit_stage, load_module_weights
from mirformer.training.modules import PretrainModule
from mirformer.training.strategies import freeze_groups


def new_model(kind: ModelKind, prepared: Prepared, inp: Input, n_outputs: int, *, head: str = "linear",
              pooling: str = "cls") -> nn.Module:
    """A seeded random network of ``kind`` reading ``inp`` with ``n_outputs`` downstream outputs
    (0: pretraining only)."""
    torch.manual_seed(prepared.cfg.seed)
    return kind.build(prepared.cfg, inp.representation, inp.statistics, n_outputs=n_outputs, head=head,
                      pooling=pooling)


def pretrain(kind: ModelKind, prepared: Prepared, run_dir: Path, *, tag: str = "") -> tuple[Path, dict[str, list]]:
    """Run ``kind``'s pretraining stages in order, each from the last one's weights, in folders
    ``<kind>-<stage><tag>``; finished stages are reused. Returns the last stage's encoder file and
    every stage's per-epoch history."""
    cfg = prepared.cfg
    inp = prepared.inputs[kind.input(cfg).name]
    previous, histories = None, {}
    for stage in kind.pretraining(cfg, inp.representation):
        folder = Path(run_dir) / f"{kind.name}-{stage.name}{tag}"
        encoder_path = folder / "encoder.pt"
        if encoder_path.exists():
            log(f"{kind.name} {stage.name}: reusing {encoder_path}", prepared.progress)
        else:
            log(f"pretraining {kind.name} ({stage.description})", prepared.progress)
            model = kind.load(previous) if previous else new_model(kind, prepared, inp, 0)
            module = PretrainModule(model, objective=stage.objective, optim=stage.config.optim, seed=cfg.seed,
                                    frozen=freeze_groups(model, stage.frozen))
            frames = stage.frames or inp.window
            t0 = time.time()
            history, best = fit_stage(
                module,
                prepared.loader(prepared.random_snippets("train", stage.config.snippets_per_track, inp, stage.frames),
                                stage.config.batch_size, True),
                prepared.loader(prepared.epoch_validation(inp, frames), cfg.eval_batch_size, False),
                stage_dir=folder, epochs=stage.config.epochs, monitor="val/loss", mode="min",
                trainer_cfg=cfg.trainer, seed=cfg.seed)
            load_module_weights(module, best)
            if distributed.is_main():
                write_json(folder / "history.json", {"history": history, "seconds": time.time() - t0})
                _save_examples(stage, module.model, folder, prepared, inp, frames)
                _save_encoder(encoder_path, kind, module.model, prepared, inp, stage.name)
            distributed.barrier()  # every rank reads the encoder next
        histories[stage.name] = json.loads((folder / "history.json").read_text())["history"]
        previous = encoder_path
    return previous, histories


def _save_encoder(path: Path, kind: ModelKind, model: nn.Module, prepared: Prepared, inp: Input, stage: str) -> None:
    """The self-contained encoder file: network, input settings, the statistics fitted on this
    (pretraining) data, and what it was pretrained on."""
    dataset = prepared.dataset
    about = {"dataset": dataset.name, "dataset_identity": dataset.identity, "dataset_root": str(dataset.root),
             "tracks": {s: len(ts) for s, ts in prepared.tracks.items()}, "stage": stage, "input": inp.about,
             "config": asdict(prepared.cfg), "versions": versions()}
    save_encoder(path, kind=kind.name, model=model, representation=inp.representation,
                 scaling=inp.scaling or inp.representation.default_scaling, statistics=inp.statistics,
                 window=inp.window, eval_window=inp.eval_window, about=about)


def _save_examples(stage: PretrainStage, model: nn.Module, folder: Path, prepared: Prepared, inp: Input,
                   frames: int) -> None:
    """A few validation examples of what the stage learned (input, masked input, reconstruction),
    for objectives that can show them: ``examples.npz`` and its picture ``examples.png``."""
    if not hasattr(stage.objective, "examples"):
        return
    from mirformer.experiments.plots import plot_examples

    batch = next(iter(DataLoader(prepared.tiled("validation", inp, frames), batch_size=8, shuffle=False)))
    generator = torch.Generator().manual_seed(prepared.cfg.seed)
    examples = {k: v.numpy() for k, v in stage.objective.examples(model.eval(), batch, generator).items()}
    with atomic_path(folder / "examples.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **examples)
    plot_examples(examples, folder / "examples.png", title=f"{folder.name}: validation examples")


def pretrain_kinds(cfg, kinds: list[ModelKind], run_dir: Path, *, tag: str = "",
                   progress: bool = True) -> dict[str, tuple]:
    """Pretrain ``kinds`` on ``pretrain.data`` (by default the comparison's own data, its labels
    unread), with ``tag`` ending their stage folders; return each kind's (encoder file, stage histories)."""
    if not kinds:
        return {}
    prepared = prepare(cfg, data=cfg.pretrain.data, labelled=False, kinds=kinds, fraction=cfg.pretrain.fraction,
                       progress=progress)
    return {kind.name: pretrain(kind, prepared, run_dir, tag=tag) for kind in kinds}


def run_pretrain(cfg, *, kinds: list[str] | None = None, run_dir: Path | None = None,
                 progress: bool = True) -> dict[str, Path]:
    """``mirformer pretrain``: pretrain ``kinds`` (default: those ``cfg``'s setups pretrain), once
    per value of a sweep that changes their input; return each kind's encoder file, by kind name
    and sweep tag (in the run folder ``compare`` with ``cfg`` reuses)."""
    distributed.launch(cfg.trainer)
    neural = {name: k for name, k in KINDS.items() if k.pretrains}
    unknown = sorted(set(kinds or ()) - set(neural))
    if unknown:
        raise ConfigError(f"unknown model kind(s) {unknown}; known: {sorted(neural)}")
    runs = variants(cfg)
    varied = {k.name for run in runs if run.tag for k in kinds_of(run.cfg)}  # kinds a sweep runs once per value
    encoders = {}
    for run in runs:
        chosen = ([neural[k] for k in kinds if (k in varied) == bool(run.tag)] if kinds
                  else kinds_of(run.cfg, pretrained=True))
        if chosen:
            run_dir = start_run(run_dir or default_run_dir(cfg), cfg)
        for name, (path, _) in pretrain_kinds(run.cfg, chosen, run_dir, tag=run.tag, progress=progress).items():
            encoders[name + run.tag] = path
    if not encoders:
        raise ConfigError(f"nothing to pretrain: name a model kind ({sorted(neural)}) or use a preset whose setups "
                          "start from a pretrained encoder")
    return encoders
