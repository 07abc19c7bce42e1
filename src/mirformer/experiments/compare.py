"""The comparison runner: pretraining, then every downstream setup, then the report.

``run_compare`` is ``mirformer pretrain`` followed by ``mirformer evaluate``: each model kind
with a pretrained setup is pretrained on the pretraining data (``pretrain.data``, by default the
comparison's own data, labels unread) into a self-contained encoder checkpoint, and the
downstream setups read that file alone. It loops over the registered model kinds
(``mirformer.kinds``) and never names one.

Each stage writes its result into its own folder of the run directory when it finishes, so a
rerun skips finished stages and resumes an interrupted one from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from mirformer import __version__, distributed, paths
from mirformer.atomic import atomic_path, write_json, write_text
from mirformer.encoder_file import save_encoder
from mirformer.experiments.config import CompareConfig
from mirformer.experiments.data import Inputs, PreparedData, kinds_of
from mirformer.experiments.evidence import OUTPUTS, evidence_of_run, save_outputs
from mirformer.experiments.plots import plot_examples
from mirformer.kinds import KINDS, MODES, ModelKind
from mirformer.training.evaluate import predict_clips
from mirformer.training.fit import fit_stage, load_module_weights
from mirformer.training.loaders import make_loader, per_device_batch
from mirformer.training.modules import DownstreamModule, PretrainModule
from mirformer.training.strategies import freeze_groups, head_for


def config_hash(cfg: CompareConfig) -> str:
    """Hash of everything that changes results: not progress bars, loader or render processes,
    nor the resamples of the report's intervals (recomputed from saved outputs at every finish).

    Precision, devices and strategy stay in: a bf16 or multi-GPU run never reuses fp32 results.
    """
    d = asdict(cfg)
    for key in ("progress", "num_workers", "log_every_n_steps"):
        d["trainer"].pop(key)
    d.pop("workers")
    d.pop("evidence")
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:8]


def distributed_settings(cfg: CompareConfig) -> dict:
    """How the run is split over processes: each stage's global batch and what one process reads.

    Batch sizes in the config are global (``mirformer.training.loaders``), so the learning rates
    apply unchanged whatever the number of devices and nodes.
    """
    stages = {name: (st.batch_size, st.optim.lr) for name, st in (
        ("pretrain", cfg.pretrain), ("finetune", cfg.finetune), ("scratch", cfg.scratch),
        ("patchifier.stage1", cfg.patchifier.stage1), ("patchifier.stage2", cfg.patchifier.stage2))}
    stages["tokenizer.train"] = (cfg.tokenizer.train.batch_size, cfg.tokenizer.train.lr)
    for st in (cfg.finetune, cfg.scratch):  # grid points too
        for b in st.grid.batch_size:
            per_device_batch(b)
    return {"world_size": distributed.world_size(),
            "rule": "batch_size is the global batch; each process reads batch_size / world_size; lr as configured",
            "stages": {name: {"batch_size": b, "per_process": per_device_batch(b), "lr": "schedule" if lr is None else lr}
                       for name, (b, lr) in stages.items()}}


def versions() -> dict:
    import lightning

    return {"mirformer": __version__, "python": platform.python_version(), "torch": str(torch.__version__),
            "lightning": lightning.__version__, "numpy": np.__version__, "platform": platform.platform()}


def _csv(text: str) -> str:
    """A predictions.csv cell: quoted when it holds a comma or a quote."""
    return '"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text


def _point_name(batch_size: int, lr: float | None) -> str:
    """A grid point's folder: ``bs16-lr2e-05``; ``bs16`` under the warmup schedule."""
    return f"bs{batch_size}" + ("" if lr is None else f"-lr{lr:g}")


class Comparison(PreparedData):
    """A prepared dataset and the stages run on it, in one run folder."""

    def __init__(self, cfg: CompareConfig, run_dir: Path | None = None, *, progress: bool = True, data=None,
                 labelled: bool = True):
        super().__init__(cfg, data=data, labelled=labelled, progress=progress)
        self.run_dir = Path(run_dir) if run_dir else paths.runs_dir() / f"{cfg.name}-{config_hash(cfg)}"
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        """Training (``shuffle``) or evaluation batches; under DDP each rank reads its share."""
        return make_loader(dataset, batch_size, train=shuffle, seed=self.cfg.seed,
                           num_workers=self.cfg.trainer.num_workers)

    # ---- stages ------------------------------------------------------------------------
    def new_model(self, kind: ModelKind, n_outputs: int, *, head: str = "linear", pooling: str = "cls") -> nn.Module:
        """A seeded random network of ``kind`` with ``n_outputs`` downstream outputs (0: pretraining only)."""
        torch.manual_seed(self.cfg.seed)
        return kind.build(self.cfg, self.input_of(kind), n_outputs=n_outputs, head=head, pooling=pooling)

    def pretrain(self, kind: ModelKind) -> tuple[Path, dict[str, list]]:
        """Run ``kind``'s pretraining stages in order, each from the last one's weights; finished stages
        are reused. Returns the last stage's saved network and every stage's per-epoch history."""
        cfg, inp = self.cfg, self.input_of(kind)
        previous, histories = None, {}
        for stage in kind.pretraining(cfg, inp):
            folder = self.run_dir / f"{kind.name}-{stage.name}"
            encoder_path = folder / "encoder.pt"
            if encoder_path.exists():
                self.log(f"{kind.name} {stage.name}: reusing {encoder_path}")
            else:
                self.log(f"pretraining {kind.name} ({stage.description})")
                model = kind.load(previous) if previous else self.new_model(kind, 0)
                module = PretrainModule(model, objective=stage.objective, optim=stage.config.optim, seed=cfg.seed,
                                        frozen=freeze_groups(model, stage.frozen))
                t0 = time.time()
                history, best = fit_stage(
                    module,
                    self.loader(self.random_snippets("train", stage.config.snippets_per_track, kind, stage.frames),
                                stage.config.batch_size, True),
                    self.loader(self.epoch_validation(kind, stage.frames or inp.length), cfg.eval_batch_size, False),
                    stage_dir=folder, epochs=stage.config.epochs, monitor="val/loss", mode="min",
                    trainer_cfg=cfg.trainer, seed=cfg.seed)
                load_module_weights(module, best)
                if distributed.is_main():
                    write_json(folder / "history.json", {"history": history, "seconds": time.time() - t0})
                    self.save_examples(stage, module.model, folder, kind, stage.frames or inp.length)
                    self.save_encoder(encoder_path, kind, module.model, stage.name)
                distributed.barrier()  # every rank reads the encoder next
            histories[stage.name] = json.loads((folder / "history.json").read_text())["history"]
            previous = encoder_path
        return previous, histories

    def save_encoder(self, path: Path, kind: ModelKind, model: nn.Module, stage: str) -> None:
        """The self-contained encoder checkpoint: network, input settings, the scaling fitted on this
        (pretraining) data, and what it was pretrained on."""
        inp, spec = self.input_of(kind), kind.input(self.cfg)
        about = {"dataset": self.dataset.name, "dataset_identity": self.dataset.identity,
                 "dataset_root": str(self.dataset.root), "tracks": {s: len(ts) for s, ts in self.tracks.items()},
                 "stage": stage, "tokenizer": self.tokenizer, "config": asdict(self.cfg), "versions": versions()}
        save_encoder(path, kind=kind.name, model=model, representation=inp.rep, scaling=spec.scaling, mean=inp.mean,
                     std=inp.std, counts=inp.counts, window=inp.length, eval_window=inp.eval_length, about=about)

    def save_examples(self, stage, model: nn.Module, folder: Path, kind: ModelKind, frames: int) -> None:
        """A few validation examples of what the stage learned (input, masked input, reconstruction),
        for objectives that can show them: ``examples.npz`` and its picture ``examples.png``."""
        if not hasattr(stage.objective, "examples"):
            return
        batch = next(iter(DataLoader(self.tiled("validation", kind, frames), batch_size=8, shuffle=False)))
        generator = torch.Generator().manual_seed(self.cfg.seed)
        examples = {k: v.numpy() for k, v in stage.objective.examples(model.eval(), batch, generator).items()}
        with atomic_path(folder / "examples.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **examples)
        plot_examples(examples, folder / "examples.png", title=f"{folder.name}: validation examples")

    def downstream(self, name: str, kind: ModelKind, stage_cfg, pretrained: Path | None = None) -> dict:
        """Train a downstream stage (every grid point, if a grid is set), select on validation, evaluate.

        Only the selected setting is scored on the test split; the grid keeps every point's
        best validation scores. Each grid point is its own resumable stage folder.
        """
        stage = self.run_dir / name
        done = stage / "result.json"
        if done.exists():
            self.log(f"{name}: reusing {done}")
            return json.loads(done.read_text())
        points = stage_cfg.grid.points(stage_cfg.batch_size, stage_cfg.optim.lr)
        t0, trained = time.time(), []
        for batch_size, lr in points:
            point_cfg = replace(stage_cfg, batch_size=batch_size, optim=replace(stage_cfg.optim, lr=lr))
            folder = stage if len(points) == 1 else stage / _point_name(batch_size, lr)
            trained.append(self.train_point(name, folder, kind, point_cfg, pretrained))
        monitor = self.task.monitor
        best = max(trained, key=lambda p: p["best"].get(f"val_{monitor}", float("-inf")))
        result = {"name": name, "model": kind.name, "input": self.input_name(kind, pretrained),
                  "pretrained": pretrained is not None, "task": self.task.kind, "strategy": stage_cfg.strategy,
                  "pooling": stage_cfg.pooling, "checkpoint": best["checkpoint"], "history": best["history"],
                  "seconds": time.time() - t0}
        if len(points) > 1:
            result["grid"] = [{k: p[k] for k in ("batch_size", "lr", "best", "checkpoint")} for p in trained]
            result["selected"] = {"batch_size": best["batch_size"], "lr": best["lr"], "monitor": f"val_{monitor}"}
            self.log(f"{name}: selected {_point_name(best['batch_size'], best['lr'])} on validation {monitor}")
        if distributed.is_main():  # scored once, on every clip, by one process
            module = self.downstream_module(kind, replace(stage_cfg, batch_size=best["batch_size"]), pretrained)
            load_module_weights(module, Path(best["checkpoint"]))
            result.update(self.evaluate(module.model, stage, self.input_of(kind, pretrained)))
            write_json(done, result)
        return result

    def input_name(self, kind: ModelKind, encoder: Path | None) -> str:
        """A setup's input in results.json: the config's input name, or the encoder file it reads."""
        return str(encoder) if encoder is not None else kind.input(self.cfg).name

    def downstream_module(self, kind: str | ModelKind, stage_cfg, pretrained: Path | None) -> DownstreamModule:
        """A fresh downstream model (the pretrained encoder, or a seeded random one) in its Lightning module."""
        kind = KINDS[kind] if isinstance(kind, str) else kind
        head = head_for(stage_cfg.strategy, stage_cfg.head or kind.head)
        if pretrained is not None:
            torch.manual_seed(self.cfg.seed)  # the new head's initialisation
            model = kind.load(pretrained, n_outputs=self.task.n_outputs, head=head, pooling=stage_cfg.pooling)
        else:
            model = self.new_model(kind, self.task.n_outputs, head=head, pooling=stage_cfg.pooling)
        val = self.tracks["validation"]
        return DownstreamModule(model, task=self.task, optim=stage_cfg.optim, n_val_tracks=len(val),
                                val_targets=self.task.targets(val), strategy=stage_cfg.strategy, freezes=kind.freezes)

    def train_point(self, name: str, folder: Path, kind: ModelKind, stage_cfg, pretrained: Path | None) -> dict:
        """Train one setting of a downstream stage (or reuse it); return its history and best checkpoint."""
        done = folder / "fit.json"
        if done.exists():
            return json.loads(done.read_text())
        lr = "warmup schedule" if stage_cfg.optim.lr is None else f"lr {stage_cfg.optim.lr:g}"
        self.log(f"training {name} ({self.task.kind}, {stage_cfg.strategy}, batch {stage_cfg.batch_size}, {lr})")
        module = self.downstream_module(kind, stage_cfg, pretrained)
        t0 = time.time()
        inp = self.input_of(kind, pretrained)
        history, best = fit_stage(
            module,
            self.loader(self.random_snippets("train", stage_cfg.snippets_per_track, inp), stage_cfg.batch_size, True),
            self.loader(self.epoch_validation(inp), self.cfg.eval_batch_size, False),
            stage_dir=folder, epochs=stage_cfg.epochs, monitor=f"val/{self.task.monitor}", mode="max",
            trainer_cfg=self.cfg.trainer, seed=self.cfg.seed)
        key = f"val_{self.task.monitor}"
        scored = [row for row in history if row.get(key) is not None and math.isfinite(row[key])]
        best_row = max(scored, key=lambda row: row[key]) if scored else {}
        point = {"batch_size": stage_cfg.batch_size, "lr": stage_cfg.optim.lr, "checkpoint": str(best),
                 "history": history, "best": {k: v for k, v in best_row.items() if k.startswith("val_") or k == "epoch"},
                 "seconds": time.time() - t0}
        if distributed.is_main():
            write_json(done, point)
        return point

    def evaluate(self, model: nn.Module, stage: Path, inp: Inputs | str | ModelKind) -> dict:
        """Clip-level metrics on every split; predictions saved beside them as CSV, and the clip
        outputs with their track ids and targets as ``outputs.npz`` (the report's evidence)."""
        device = "cuda" if self.cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"
        splits, rows, saved = {}, ["split,track_id,target,predicted"], {}
        for split in ("train", "validation", "test"):
            tiled = self.tiled(split, inp)
            outputs = predict_clips(model, tiled, batch_size=self.cfg.eval_batch_size,
                                    precision=self.cfg.trainer.precision, device=device)
            targets = self.task.targets(self.tracks[split])
            splits[split] = self.task.metrics(outputs, targets)
            rows += [f"{split},{t.id},{_csv(self.task.describe(t))},{_csv(self.task.describe_output(o))}"
                     for t, o in zip(self.tracks[split], outputs)]
            saved[split] = ([t.id for t in self.tracks[split]], targets.numpy(), outputs.float().numpy())
        write_text(stage / "predictions.csv", "\n".join(rows) + "\n")
        save_outputs(stage / OUTPUTS, saved)  # the clip outputs the report's intervals and tests are computed from
        return {"splits": splits, "outputs": str((stage / OUTPUTS).relative_to(self.run_dir))}

    def baseline(self) -> dict:
        from mirformer.experiments.baseline import run_mfcc_baseline

        done = self.run_dir / "mfcc-linear" / "result.json"
        if done.exists():
            self.log(f"mfcc-linear: reusing {done}")
            return json.loads(done.read_text())
        self.log("classical baseline: MFCC statistics + a linear model")
        t0 = time.time()
        tracks = [t for ts in self.tracks.values() for t in ts]
        result = run_mfcc_baseline(tracks, classes=self.classes, task=self.task.kind, sample_rate=self.cfg.mel.sample_rate,
                                   max_seconds=self.cfg.baseline_seconds, seed=self.cfg.seed,
                                   workers=self.cfg.workers, progress=self.progress, outputs=done.parent / OUTPUTS)
        result["seconds"] = time.time() - t0
        result["outputs"] = str((done.parent / OUTPUTS).relative_to(self.run_dir))
        write_json(done, result)
        return result


def run_compare(cfg: CompareConfig, run_dir: Path | None = None, *, progress: bool = True) -> dict:
    """Run (or resume) every setup of ``cfg`` and write results.json and the report.

    The kinds with a pretrained setup are pretrained first (``pretrain.data``, labels unread);
    then every downstream setup trains, a pretrained one from its encoder checkpoint alone.
    Returns the results on rank 0, ``{}`` on the other ranks of a DDP run.
    """
    t0 = time.time()
    distributed.launch(cfg.trainer)  # every rank runs what follows; rank 0 alone writes the run folder
    split = distributed_settings(cfg)  # a batch that does not divide over the processes fails here
    cmp = Comparison(cfg, run_dir, progress=progress)
    if distributed.is_main():
        write_json(cmp.run_dir / "config.json", {"config": asdict(cfg), "seed": cfg.seed, "versions": versions(),
                                                 "distributed": split})
    pretrained = kinds_of(cfg, pretrained=True)
    encoders, stages = {}, {}
    if pretrained:
        pre = Comparison(cfg, cmp.run_dir, progress=progress, data=cfg.pretrain.data, labelled=False)
        pre.prepare_data(kinds=pretrained)
        for kind in pretrained:
            encoders[kind.name], stages[kind.name] = pre.pretrain(kind)
    cmp.prepare_data(encoders=list(encoders.values()))
    setups: dict[str, dict] = {}
    for kind in KINDS.values():
        for mode in MODES:
            name = f"{kind.name}-{mode}"
            if name not in cfg.setups:
                continue
            if mode == "scratch":
                setups[name] = cmp.downstream(name, kind, cfg.scratch)
                continue
            stage_cfg = cfg.finetune if mode == "pretrained-finetuned" else replace(cfg.finetune, strategy=mode)
            setups[name] = cmp.downstream(name, kind, stage_cfg, encoders[kind.name])
            setups[name]["pretrain_history"] = list(stages[kind.name].values())[-1]
            if len(stages[kind.name]) > 1:
                setups[name]["pretrain_stages"] = stages[kind.name]
    return finish_run(cmp, setups, t0)


def finish_run(cmp: Comparison, setups: dict[str, dict], t0: float) -> dict:
    """The baseline (if configured), ``results.json`` and the report, on rank 0; ``{}`` elsewhere."""
    from mirformer.experiments.report import write_report

    if not distributed.is_main():
        return {}
    if "mfcc-linear" in cmp.cfg.setups:
        setups["mfcc-linear"] = cmp.baseline()
    results = {
        "name": cmp.cfg.name,
        "dataset": cmp.dataset.name,
        "dataset_root": str(cmp.dataset.root),
        "task": cmp.task.kind,
        "monitor": cmp.task.monitor,
        "classes": cmp.classes,
        "counts": {s: len(ts) for s, ts in cmp.tracks.items()},
        "representations": {name: {"name": inp.rep.name, "window_frames": inp.length,
                                   "eval_window_frames": inp.eval_length,
                                   "frames_per_second": inp.rep.frames_per_second, **inp.rep.config_dict()}
                            for name, inp in cmp.inputs.items()},
        "tokenizer": cmp.tokenizer,
        # Pretraining stages that drew validation examples (Patchifier's reconstructions).
        "examples": {p.parent.name: str(p.relative_to(cmp.run_dir)) for p in sorted(cmp.run_dir.glob("*/examples.png"))},
        "skipped": cmp.skipped,
        "flagged": cmp.flagged,
        "setups": setups,
        "seconds": time.time() - t0,
        "run_dir": str(cmp.run_dir),
    }
    cmp.log("confidence intervals and paired tests on the test clips")
    results["evidence"] = evidence_of_run(results, cmp.run_dir, seed=cmp.cfg.seed, progress=cmp.progress,
                                          n_resamples=cmp.cfg.evidence.n_resamples,
                                          n_permutations=cmp.cfg.evidence.n_permutations)
    write_json(cmp.run_dir / "results.json", results)
    results["table"] = write_report(results, cmp.run_dir)
    return results
