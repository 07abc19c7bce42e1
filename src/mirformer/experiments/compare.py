"""The comparison runner: dataset -> inputs (log-mel, VQ tokens) -> every setup -> report.

It loops over the registered model kinds (``mirformer.kinds``) and never names one: each kind
declares its input, network, pretraining stages and fine-tuning groups. Kinds that read equal
inputs share them, and inputs with equal settings share one feature store. All setups see the
same tracks: a file unusable in any input is skipped for every setup.

Each stage writes its result into its own folder of the run directory when it finishes, so a
rerun skips finished stages and resumes an interrupted one from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import ConcatDataset, DataLoader

from mirformer import __version__, distributed, paths
from mirformer.atomic import atomic_path, write_json, write_text
from mirformer.audio import too_short
from mirformer.datasets.base import Track
from mirformer.datasets.registry import open_dataset
from mirformer.errors import MirformerError
from mirformer.experiments.config import CompareConfig
from mirformer.experiments.plots import plot_examples
from mirformer.experiments.tokenizer import check_tokenizer, prepare_tokenizer, token_window
from mirformer.kinds import KINDS, MODES, InputSpec, ModelKind, parse_setup
from mirformer.representations.base import Representation
from mirformer.representations.mel import LogMel
from mirformer.representations.store import FeatureStore
from mirformer.representations.vq import codebook_usage
from mirformer.tasks import make_task
from mirformer.training.evaluate import predict_clips
from mirformer.training.fit import fit_stage, load_module_weights
from mirformer.training.modules import DownstreamModule, PretrainModule
from mirformer.training.loaders import make_loader, per_device_batch
from mirformer.training.snippets import RandomSnippets, TiledSnippets
from mirformer.training.strategies import freeze_groups, head_for

# Patchifier's "paper" scaling, dB x 0.01, as the (x - mean) / std every input goes through.
PAPER_SCALE = 100.0


def config_hash(cfg: CompareConfig) -> str:
    """Hash of everything that changes results: not progress bars, loader or render processes.

    Precision, devices and strategy stay in: a bf16 or multi-GPU run never reuses fp32 results.
    """
    d = asdict(cfg)
    for key in ("progress", "num_workers", "log_every_n_steps"):
        d["trainer"].pop(key)
    d.pop("workers")
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

    return {"mirformer": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "lightning": lightning.__version__, "numpy": np.__version__, "platform": platform.platform()}


def _csv(text: str) -> str:
    """A predictions.csv cell: quoted when it holds a comma or a quote."""
    return '"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text


def _point_name(batch_size: int, lr: float | None) -> str:
    """A grid point's folder: ``bs16-lr2e-05``; ``bs16`` under the warmup schedule."""
    return f"bs{batch_size}" + ("" if lr is None else f"-lr{lr:g}")


def kinds_of(cfg: CompareConfig) -> list[ModelKind]:
    """The kinds ``cfg``'s setups use, in registry order."""
    used = {parse_setup(s)[0].name for s in cfg.setups if s != "mfcc-linear"}
    return [k for k in KINDS.values() if k.name in used]


def input_specs(cfg: CompareConfig) -> dict[str, InputSpec]:
    """Each distinct input those kinds read, by name, log-mel first."""
    specs = {}
    for kind in kinds_of(cfg):
        spec = kind.input(cfg)
        specs.setdefault(spec.name, spec)
    return dict(sorted(specs.items(), key=lambda item: item[1].representation != "mel"))


@dataclass
class Inputs:
    """One prepared input: its feature store, window lengths and scaling ((x - mean) / std per dimension)."""

    rep: Representation
    store: FeatureStore
    length: int  # frames per training window
    eval_length: int  # frames per evaluation window
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    counts: np.ndarray | None = None  # tokens: how often the training split uses each code


class Comparison:
    """State shared by the stages of one comparison run."""

    def __init__(self, cfg: CompareConfig, run_dir: Path | None = None, *, progress: bool = True):
        self.cfg = cfg
        self.progress = progress and distributed.is_main()
        self.run_dir = Path(run_dir) if run_dir else paths.runs_dir() / f"{cfg.name}-{config_hash(cfg)}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.skipped: dict[str, str] = {}
        self.tokenizer: dict | None = None

    def log(self, msg: str) -> None:
        if self.progress:  # rank 0 only
            print(f"[mirformer] {msg}", flush=True)

    # ---- data --------------------------------------------------------------------------
    def input_of(self, kind: str | ModelKind) -> Inputs:
        kind = KINDS[kind] if isinstance(kind, str) else kind
        return self.inputs[kind.input(self.cfg).name]

    def prepare_data(self) -> None:
        cfg = self.cfg
        specs = input_specs(cfg)
        # Bad settings fail here, before any data is built or any tokenizer trained.
        given, tokens_per_second = check_tokenizer(cfg) if any(s.representation == "tokens" for s in specs.values()) \
            else (None, None)
        for kind in kinds_of(cfg):
            spec = kind.input(cfg)
            window = spec.window or token_window(cfg, tokens_per_second)
            kind.check(cfg, window, spec.eval_window or window)
        self.dataset = open_dataset(cfg.data.name, cfg.data.root, workers=cfg.workers, progress=self.progress,
                                    **cfg.data.options)
        with distributed.main_first():  # rendering the built-in corpus: once, the other ranks then find it done
            self.dataset.prepare()
        tracks = self.dataset.tracks()
        self.classes = self.dataset.classes()
        self.task = make_task(self.dataset.task, self.classes)
        self.inputs: dict[str, Inputs] = {}
        for name, spec in specs.items():
            if spec.representation == "mel":
                rep = LogMel(spec.mel, dtype=cfg.feature_dtype)
            else:
                rep, self.tokenizer = prepare_tokenizer(cfg, self.dataset, tracks, given, log=self.log,
                                                        progress=self.progress)
            window = spec.window or token_window(cfg, rep.frames_per_second)
            self.inputs[name] = Inputs(rep, FeatureStore(paths.features_dir(), self.dataset.identity, rep), window,
                                       spec.eval_window or window)
            self.extract(name, tracks)
        self.tracks = {s: [t for t in tracks if t.split == s and t.id not in self.skipped]
                       for s in ("train", "validation", "test")}
        for split, ts in self.tracks.items():
            if not ts:
                raise MirformerError(f"no usable tracks in the {split} split of {self.dataset.name} at "
                                     f"{self.dataset.root} ({len(self.skipped)} skipped as unreadable or too short)")
        train_ids = [t.id for t in self.tracks["train"]]
        for name, spec in specs.items():
            inp = self.inputs[name]
            if spec.scaling == "paper":
                inp.mean, inp.std = np.zeros(inp.rep.dim, np.float32), np.full(inp.rep.dim, PAPER_SCALE, np.float32)
            elif spec.representation == "mel":
                with distributed.main_first():  # computed once and cached beside the features
                    inp.mean, inp.std = inp.store.normalisation(train_ids)
            else:
                # Counted per track: a large training split never holds all its tokens in memory at once.
                inp.counts = sum(np.bincount(np.asarray(inp.store.get(i), np.int64), minlength=inp.rep.vocab_size)
                                 for i in train_ids)
                self.tokenizer.update(codebook_usage(inp.counts))
                self.log(f"tokenizer: {self.tokenizer['codes_used']}/{inp.rep.vocab_size} codes used on the training "
                         f"split, entropy {self.tokenizer['entropy_bits']:.2f} bits")
        self.task.fit(self.tracks["train"])

    def extract(self, name: str, tracks: list[Track]) -> None:
        """Store one input of every track; skip files that do not decode or are shorter than ``data.min_seconds``.

        Under DDP each rank encodes its own shard of the tracks and the last to finish consolidates.
        """
        inp = self.inputs[name]
        self.log(f"{name} features: {inp.store.dir}")
        inp.store.extract(tracks, workers=self.cfg.workers, progress=self.progress, shard=distributed.shard_spec())
        distributed.barrier()
        inp.store.reload()
        failed = inp.store.failures(tracks)
        for t in tracks:
            why = failed.get(t.id) or too_short(inp.store.seconds(t.id), self.cfg.data.min_seconds)
            if why:
                self.skipped[t.id] = self.dataset.explain(t.id, why)

    def targets(self, tracks: list[Track]) -> list:
        return [self.task.target(t) for t in tracks]

    def random_snippets(self, split: str, copies: int, kind: str | ModelKind, frames: int | None = None) -> ConcatDataset:
        """``copies`` random crops of ``frames`` (default: the training window) per clip of ``split``."""
        ts, inp = self.tracks[split], self.input_of(kind)
        one = RandomSnippets(inp.store, [t.id for t in ts], self.targets(ts), length=frames or inp.length,
                             mean=inp.mean, std=inp.std)
        return ConcatDataset([one] * copies)

    def tiled(self, split: str, kind: str | ModelKind, frames: int | None = None) -> TiledSnippets:
        """Every window of ``frames`` (default: the evaluation window) of every clip of ``split``."""
        ts, inp = self.tracks[split], self.input_of(kind)
        return TiledSnippets(inp.store, [t.id for t in ts], self.targets(ts), length=frames or inp.eval_length,
                             mean=inp.mean, std=inp.std)

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
                    self.loader(self.tiled("validation", kind, stage.frames or inp.length), cfg.eval_batch_size, False),
                    stage_dir=folder, epochs=stage.config.epochs, monitor="val/loss", mode="min",
                    trainer_cfg=cfg.trainer, seed=cfg.seed)
                load_module_weights(module, best)
                if distributed.is_main():
                    write_json(folder / "history.json", {"history": history, "seconds": time.time() - t0})
                    self.save_examples(stage, module.model, folder, kind, stage.frames or inp.length)
                    module.model.save(encoder_path)
                distributed.barrier()  # every rank reads the encoder next
            histories[stage.name] = json.loads((folder / "history.json").read_text())["history"]
            previous = encoder_path
        return previous, histories

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
        result = {"name": name, "model": kind.name, "input": kind.input(self.cfg).name,
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
            result.update(self.evaluate(module.model, stage, kind))
            write_json(done, result)
        return result

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
        history, best = fit_stage(
            module,
            self.loader(self.random_snippets("train", stage_cfg.snippets_per_track, kind), stage_cfg.batch_size, True),
            self.loader(self.tiled("validation", kind), self.cfg.eval_batch_size, False),
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

    def evaluate(self, model: nn.Module, stage: Path, kind: str | ModelKind) -> dict:
        """Clip-level metrics on every split; predictions saved as CSV beside them."""
        device = "cuda" if self.cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"
        splits, rows = {}, ["split,track_id,target,predicted"]
        for split in ("train", "validation", "test"):
            tiled = self.tiled(split, kind)
            outputs = predict_clips(model, tiled, batch_size=self.cfg.eval_batch_size,
                                    precision=self.cfg.trainer.precision, device=device)
            splits[split] = self.task.metrics(outputs, self.task.targets(self.tracks[split]))
            rows += [f"{split},{t.id},{_csv(self.task.describe(t))},{_csv(self.task.describe_output(o))}"
                     for t, o in zip(self.tracks[split], outputs)]
        write_text(stage / "predictions.csv", "\n".join(rows) + "\n")
        return {"splits": splits}

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
                                   workers=self.cfg.workers, progress=self.progress)
        result["seconds"] = time.time() - t0
        write_json(done, result)
        return result


def run_compare(cfg: CompareConfig, run_dir: Path | None = None, *, progress: bool = True) -> dict:
    """Run (or resume) every setup of ``cfg`` and write results.json and the report."""
    from mirformer.experiments.report import write_report

    t0 = time.time()
    distributed.launch(cfg.trainer)  # every rank runs what follows; rank 0 alone writes the run folder
    split = distributed_settings(cfg)  # a batch that does not divide over the processes fails here
    cmp = Comparison(cfg, run_dir, progress=progress)
    if distributed.is_main():
        write_json(cmp.run_dir / "config.json", {"config": asdict(cfg), "seed": cfg.seed, "versions": versions(),
                                                 "distributed": split})
    cmp.prepare_data()
    setups: dict[str, dict] = {}
    for kind in KINDS.values():
        for mode in MODES:
            name = f"{kind.name}-{mode}"
            if name not in cfg.setups:
                continue
            if mode == "scratch":
                setups[name] = cmp.downstream(name, kind, cfg.scratch)
                continue
            encoder, stages = cmp.pretrain(kind)
            stage_cfg = cfg.finetune if mode == "pretrained-finetuned" else replace(cfg.finetune, strategy=mode)
            setups[name] = cmp.downstream(name, kind, stage_cfg, encoder)
            setups[name]["pretrain_history"] = list(stages.values())[-1]
            if len(stages) > 1:
                setups[name]["pretrain_stages"] = stages
    if not distributed.is_main():
        return {}
    if "mfcc-linear" in cfg.setups:
        setups["mfcc-linear"] = cmp.baseline()
    results = {
        "name": cfg.name,
        "dataset": cmp.dataset.name,
        "dataset_root": str(cmp.dataset.root),
        "task": cmp.task.kind,
        "monitor": cmp.task.monitor,
        "classes": cmp.classes,
        "counts": {s: len(ts) for s, ts in cmp.tracks.items()},
        "representations": {name: {"name": inp.rep.name, "window_frames": inp.length, "eval_window_frames": inp.eval_length,
                                   "frames_per_second": inp.rep.frames_per_second, **inp.rep.config_dict()}
                            for name, inp in cmp.inputs.items()},
        "tokenizer": cmp.tokenizer,
        # Pretraining stages that drew validation examples (Patchifier's reconstructions).
        "examples": {p.parent.name: str(p.relative_to(cmp.run_dir)) for p in sorted(cmp.run_dir.glob("*/examples.png"))},
        "skipped": cmp.skipped,
        "setups": setups,
        "seconds": time.time() - t0,
        "run_dir": str(cmp.run_dir),
    }
    write_json(cmp.run_dir / "results.json", results)
    results["table"] = write_report(results, cmp.run_dir)
    return results
