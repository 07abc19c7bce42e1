"""One downstream setup, trained and scored: a neural kind fine-tuned from an encoder file or
trained from scratch (every point of a grid, selected on validation), or a kind that fits itself
(the MFCC baseline).

Each setup writes its own folder of the run directory: its checkpoints, ``predictions.csv``,
``outputs.npz`` (the clip outputs the report's evidence is computed from) and, once finished,
``result.json``; a rerun reuses finished setups and grid points and resumes an interrupted one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn as nn

from mirformer import distributed
from mirformer.atomic import write_json, write_text
from mirformer.experiments.cost import model_cost
from mirformer.experiments.outputs import OUTPUTS, save_outputs
from mirformer.experiments.prepare import Input, Prepared
from mirformer.experiments.pretrain import new_model
from mirformer.experiments.run import log
from mirformer.kinds import Kind
from mirformer.training.fit import fit_stage, load_module_weights
from mirformer.training.modules import DownstreamModule
from mirformer.training.predict import predict_clips
from mirformer.training.stages import DownstreamConfig
from mirformer.training.strategies import head_for


@dataclass(frozen=True)
class Setup:
    """A row of the report: ``kind`` trained with ``stage`` (None for a kind that fits itself),
    from the encoder file ``encoder`` or from scratch, reading the prepared input ``input``;
    ``about`` goes into its result as it is (a probe's representation and layer)."""

    name: str
    kind: Kind
    stage: DownstreamConfig | None = None
    encoder: Path | None = None
    input: str | None = None
    about: dict = field(default_factory=dict)


def stage_of(cfg, mode: str) -> DownstreamConfig:
    """The downstream stage of a setup mode: ``scratch``, the ``finetune`` stage for
    ``pretrained-finetuned``, or ``finetune`` with the strategy a mode names."""
    if mode == "scratch":
        return cfg.scratch
    return cfg.finetune if mode == "pretrained-finetuned" else replace(cfg.finetune, strategy=mode)


def run_setup(setup: Setup, prepared: Prepared, run_dir: Path) -> dict:
    """Train and score ``setup`` (or reuse its finished result); ``{}`` on ranks other than 0 for
    a kind that fits itself (it runs on rank 0 alone)."""
    done = Path(run_dir) / setup.name / "result.json"
    if done.exists():
        log(f"{setup.name}: reusing {done}", prepared.progress)
        return json.loads(done.read_text())
    if not setup.kind.neural:
        return _fit_itself(setup, prepared, run_dir) if distributed.is_main() else {}
    return _train(setup, prepared, run_dir)


def _fit_itself(setup: Setup, prepared: Prepared, run_dir: Path) -> dict:
    folder = Path(run_dir) / setup.name
    log(f"{setup.name}: {setup.kind.label}", prepared.progress)
    t0 = time.time()
    cfg = prepared.cfg
    tracks = [t for ts in prepared.tracks.values() for t in ts]
    result, outputs = setup.kind.fit(tracks, prepared.task, setup.kind.settings(cfg), seed=cfg.seed,
                                     workers=cfg.workers, progress=prepared.progress)
    save_outputs(folder / OUTPUTS, outputs)
    result.update(seconds=time.time() - t0, outputs=str((folder / OUTPUTS).relative_to(run_dir)))
    write_json(folder / "result.json", result)
    return result


def _point_name(batch_size: int, lr: float | None) -> str:
    """A grid point's folder: ``bs16-lr2e-05``; ``bs16`` under the warmup schedule."""
    return f"bs{batch_size}" + ("" if lr is None else f"-lr{lr:g}")


def _train(setup: Setup, prepared: Prepared, run_dir: Path) -> dict:
    """Every grid point (or the stage's one setting), selected on validation; only the selected
    setting is scored on the test split. Each grid point is its own resumable stage folder."""
    stage, folder, task = setup.stage, Path(run_dir) / setup.name, prepared.task
    points = stage.grid.points(stage.batch_size, stage.optim.lr)
    t0, trained = time.time(), []
    for batch_size, lr in points:
        point = replace(stage, batch_size=batch_size, optim=replace(stage.optim, lr=lr))
        trained.append(_train_point(setup, point, folder if len(points) == 1 else folder / _point_name(batch_size, lr),
                                    prepared))
    monitor = task.monitor
    best = max(trained, key=lambda p: p["best"].get(f"val_{monitor}", float("-inf")))
    result = {"name": setup.name, "model": setup.kind.name, "input": setup.input, "pretrained": setup.encoder is not None,
              "task": task.name, "strategy": stage.strategy, "pooling": stage.pooling, "checkpoint": best["checkpoint"],
              "history": best["history"], "seconds": time.time() - t0, **setup.about}
    if len(points) > 1:
        result["grid"] = [{k: p[k] for k in ("batch_size", "lr", "best", "checkpoint")} for p in trained]
        result["selected"] = {"batch_size": best["batch_size"], "lr": best["lr"], "monitor": f"val_{monitor}"}
        log(f"{setup.name}: selected {_point_name(best['batch_size'], best['lr'])} on validation {monitor}",
            prepared.progress)
    if distributed.is_main():  # scored once, on every clip, by one process
        module = downstream_module(setup, replace(stage, batch_size=best["batch_size"]), prepared)
        load_module_weights(module, Path(best["checkpoint"]))
        inp = prepared.inputs[setup.input]
        result.update(score(module.model, prepared, inp, folder, run_dir))
        seconds = inp.eval_window / inp.representation.frames_per_second if inp.representation.frames_per_second else None
        result["cost"] = {**result.pop("cost"), **prepared.input_cost(setup.input),
                          **model_cost(module.model, prepared.tiled("test", inp)[0], seconds),
                          "training": best.get("throughput")}
        write_json(folder / "result.json", result)
    return result


def downstream_module(setup: Setup, stage: DownstreamConfig, prepared: Prepared) -> DownstreamModule:
    """A fresh downstream model (the pretrained encoder, or a seeded random one) in its Lightning module."""
    kind, task = setup.kind, prepared.task
    head = head_for(stage.strategy, stage.head or kind.head)
    if setup.encoder is not None:
        torch.manual_seed(prepared.cfg.seed)  # the new head's initialisation
        model = kind.load(setup.encoder, n_outputs=task.n_outputs, head=head, pooling=stage.pooling)
    else:
        model = new_model(kind, prepared, prepared.inputs[setup.input], task.n_outputs, head=head,
                          pooling=stage.pooling)
    return DownstreamModule(model, task=task, optim=stage.optim, val_targets=task.targets(prepared.tracks["validation"]),
                            frozen=kind.freezes[stage.strategy] + kind.pretraining_only)


def _train_point(setup: Setup, stage: DownstreamConfig, folder: Path, prepared: Prepared) -> dict:
    """Train one setting of a downstream stage (or reuse it); return its history and best checkpoint."""
    done = folder / "fit.json"
    if done.exists():
        return json.loads(done.read_text())
    cfg, task, inp = prepared.cfg, prepared.task, prepared.inputs[setup.input]
    lr = "warmup schedule" if stage.optim.lr is None else f"lr {stage.optim.lr:g}"
    log(f"training {setup.name} ({task.name}, {stage.strategy}, batch {stage.batch_size}, {lr})", prepared.progress)
    module = downstream_module(setup, stage, prepared)
    t0 = time.time()
    history, best = fit_stage(
        module,
        prepared.loader(prepared.random_snippets("train", stage.snippets_per_track, inp), stage.batch_size, True),
        prepared.loader(prepared.epoch_validation(inp), cfg.eval_batch_size, False),
        stage_dir=folder, epochs=stage.epochs, monitor=f"val/{task.monitor}", mode="max",
        trainer_cfg=cfg.trainer, seed=cfg.seed)
    key = f"val_{task.monitor}"
    scored = [row for row in history if row.get(key) is not None and math.isfinite(row[key])]
    best_row = max(scored, key=lambda row: row[key]) if scored else {}
    measured = folder / "throughput.json"  # the training steps' speed (training.fit.Throughput)
    point = {"batch_size": stage.batch_size, "lr": stage.optim.lr, "checkpoint": str(best),
             "history": history, "best": {k: v for k, v in best_row.items() if k.startswith("val_") or k == "epoch"},
             "seconds": time.time() - t0, "throughput": json.loads(measured.read_text()) if measured.exists() else None}
    if distributed.is_main():
        write_json(done, point)
    return point


def _csv(text: str) -> str:
    """A predictions.csv cell: quoted when it holds a comma or a quote."""
    return '"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text


def device_of(cfg) -> str:
    """Where final scores are computed: the GPU when the trainer may use one, else the CPU."""
    return "cuda" if cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"


def score(model: nn.Module, prepared: Prepared, inp: Input, folder: Path, run_dir: Path) -> dict:
    """Clip-level metrics on every split; predictions saved beside them as CSV, and the clip
    outputs with their track ids and targets as ``outputs.npz`` (the report's evidence)."""
    cfg, task = prepared.cfg, prepared.task
    device = device_of(cfg)
    splits, rows, saved, spent = {}, ["split,track_id,target,predicted"], {}, {}
    for split, tracks in prepared.tracks.items():
        t0 = time.perf_counter()
        outputs = predict_clips(model, prepared.tiled(split, inp), batch_size=cfg.eval_batch_size,
                                precision=cfg.trainer.precision, device=device).float().numpy()
        spent[split] = time.perf_counter() - t0
        targets = task.targets(tracks)
        splits[split] = task.metrics(outputs, targets)
        rows += [f"{split},{t.id},{_csv(task.describe(t))},{_csv(task.describe_output(o))}"
                 for t, o in zip(tracks, outputs)]
        saved[split] = ([t.id for t in tracks], targets, outputs)
    write_text(folder / "predictions.csv", "\n".join(rows) + "\n")
    save_outputs(folder / OUTPUTS, saved)
    # The model alone on the stored frames of the test clips (their extraction is the input's cost).
    audio = sum(inp.store.seconds(t.id) for t in prepared.tracks["test"])
    return {"splits": splits, "outputs": str((folder / OUTPUTS).relative_to(run_dir)),
            "cost": {"inference_x_realtime": audio / spent["test"] if spent["test"] else None}}
