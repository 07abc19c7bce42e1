"""The comparison runner: dataset -> features -> SpectroFormer setups + MFCC baseline -> report.

Each stage writes its result into its own folder of the run directory when it finishes, so a
rerun skips finished stages and resumes an interrupted one from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader

from mirformer import __version__, paths
from mirformer.atomic import write_json, write_text
from mirformer.datasets.base import Track
from mirformer.datasets.registry import open_dataset
from mirformer.errors import MirformerError
from mirformer.experiments.config import CompareConfig
from mirformer.models.former import Former, load_former
from mirformer.objectives.spectro_masking import SpectroObjective
from mirformer.representations.mel import LogMel
from mirformer.representations.store import FeatureStore
from mirformer.tasks import class_weights, classification_metrics
from mirformer.training.evaluate import predict_clips
from mirformer.training.fit import fit_stage, load_module_weights
from mirformer.training.modules import ClassifierModule, PretrainModule
from mirformer.training.snippets import RandomSnippets, TiledSnippets


def config_hash(cfg: CompareConfig) -> str:
    """Hash of everything that changes results: not progress bars, loader or render processes.

    Precision, devices and strategy stay in: a bf16 or multi-GPU run never reuses fp32 results.
    """
    d = asdict(cfg)
    for key in ("progress", "num_workers", "log_every_n_steps"):
        d["trainer"].pop(key)
    d.pop("workers")
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:8]


def versions() -> dict:
    import lightning

    return {"mirformer": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "lightning": lightning.__version__, "numpy": np.__version__, "platform": platform.platform()}


class Comparison:
    """State shared by the stages of one comparison run."""

    def __init__(self, cfg: CompareConfig, run_dir: Path | None = None, *, progress: bool = True):
        self.cfg = cfg
        self.progress = progress
        self.run_dir = Path(run_dir) if run_dir else paths.runs_dir() / f"{cfg.name}-{config_hash(cfg)}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.skipped: dict[str, str] = {}

    def log(self, msg: str) -> None:
        if self.progress:
            print(f"[mirformer] {msg}", flush=True)

    # ---- data --------------------------------------------------------------------------
    def prepare_data(self) -> None:
        cfg = self.cfg
        self.dataset = open_dataset(cfg.data.name, cfg.data.root, workers=cfg.workers, progress=self.progress,
                                    **cfg.data.options)
        self.dataset.prepare()
        tracks = self.dataset.tracks()
        self.classes = self.dataset.classes()
        self.label_index = {c: i for i, c in enumerate(self.classes)}
        self.rep = LogMel(cfg.mel)
        # The dataset's identity includes its root: two copies of a dataset never share features.
        root_hash = hashlib.sha1(str(self.dataset.root.resolve()).encode()).hexdigest()[:8]
        self.store = FeatureStore(paths.features_dir(), f"{self.dataset.name}-{root_hash}", self.rep)
        min_seconds = cfg.snippet_frames / self.rep.frames_per_second / 4  # a quarter window at least
        self.log(f"features: {self.store.dir}")
        failed = self.store.extract(tracks, workers=cfg.workers, min_seconds=min_seconds, progress=self.progress)
        self.skipped.update(failed)
        self.tracks = {s: [t for t in tracks if t.split == s and t.id not in failed]
                       for s in ("train", "validation", "test")}
        for split, ts in self.tracks.items():
            if not ts:
                raise MirformerError(f"no usable tracks in the {split} split of {self.dataset.name} at "
                                     f"{self.dataset.root} ({len(failed)} skipped as unreadable or too short)")
        self.mean, self.std = self.store.normalisation([t.id for t in self.tracks["train"]])
        y_train = [self.label_index[t.label] for t in self.tracks["train"]]
        self.weights = class_weights(y_train, len(self.classes))

    def targets(self, tracks: list[Track]) -> list[int]:
        return [self.label_index[t.label] for t in tracks]

    def random_snippets(self, split: str, copies: int) -> ConcatDataset:
        ts = self.tracks[split]
        one = RandomSnippets(self.store, [t.id for t in ts], self.targets(ts), length=self.cfg.snippet_frames,
                             mean=self.mean, std=self.std)
        return ConcatDataset([one] * copies)

    def tiled(self, split: str) -> TiledSnippets:
        ts = self.tracks[split]
        return TiledSnippets(self.store, [t.id for t in ts], self.targets(ts), length=self.cfg.snippet_frames,
                             mean=self.mean, std=self.std)

    def loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        workers = self.cfg.trainer.num_workers
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=False,
                          num_workers=workers, persistent_workers=workers > 0)

    # ---- stages ------------------------------------------------------------------------
    def new_model(self, n_classes: int) -> Former:
        torch.manual_seed(self.cfg.seed)
        return Former(kind="spectroformer", encoder=self.cfg.encoder, input_dim=self.rep.dim, n_classes=n_classes)

    def pretrain(self) -> Path:
        """Masked pretraining; returns the saved encoder (reused when present)."""
        stage = self.run_dir / "spectroformer-pretrain"
        encoder_path = stage / "encoder.pt"
        if encoder_path.exists():
            self.log(f"pretraining: reusing {encoder_path}")
            return encoder_path
        cfg = self.cfg
        self.log("pretraining SpectroFormer (masked frame and channel blocks, Huber loss)")
        module = PretrainModule(self.new_model(0), objective=SpectroObjective(cfg.mask), optim=cfg.pretrain.optim,
                                seed=cfg.seed)
        t0 = time.time()
        history, best = fit_stage(
            module,
            self.loader(self.random_snippets("train", cfg.pretrain.snippets_per_track), cfg.pretrain.batch_size, True),
            self.loader(self.tiled("validation"), cfg.eval_batch_size, False),
            stage_dir=stage, epochs=cfg.pretrain.epochs, monitor="val/loss", mode="min",
            trainer_cfg=cfg.trainer, seed=cfg.seed)
        load_module_weights(module, best)
        write_json(stage / "history.json", {"history": history, "seconds": time.time() - t0})
        module.model.save(encoder_path)
        return encoder_path

    def classify(self, name: str, stage_cfg, model: Former) -> dict:
        """Train a classifier stage (or reuse its result) and evaluate it on every split."""
        stage = self.run_dir / name
        done = stage / "result.json"
        if done.exists():
            self.log(f"{name}: reusing {done}")
            return json.loads(done.read_text())
        cfg = self.cfg
        self.log(f"training {name}")
        val = self.tiled("validation")
        module = ClassifierModule(model, class_weights=self.weights, optim=stage_cfg.optim,
                                  n_val_tracks=len(val.ids), val_targets=torch.tensor(val.targets))
        t0 = time.time()
        history, best = fit_stage(
            module,
            self.loader(self.random_snippets("train", stage_cfg.snippets_per_track), stage_cfg.batch_size, True),
            self.loader(val, cfg.eval_batch_size, False),
            stage_dir=stage, epochs=stage_cfg.epochs, monitor="val/macro_f1", mode="max",
            trainer_cfg=cfg.trainer, seed=cfg.seed)
        load_module_weights(module, best)
        result = {"name": name, "model": "spectroformer", "pretrained": "pretrained" in name,
                  "checkpoint": str(best), "history": history, "seconds": time.time() - t0}
        result.update(self.evaluate(module.model, stage))
        write_json(done, result)
        return result

    def evaluate(self, model: Former, stage: Path) -> dict:
        """Clip-level metrics on every split; predictions saved as CSV beside them."""
        device = "cuda" if self.cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"
        splits, rows = {}, ["split,track_id,label,predicted"]
        for split in ("train", "validation", "test"):
            tiled = self.tiled(split)
            logits = predict_clips(model, tiled, batch_size=self.cfg.eval_batch_size,
                                   precision=self.cfg.trainer.precision, device=device)
            targets = torch.tensor(tiled.targets)
            splits[split] = classification_metrics(logits, targets, n_classes=len(self.classes), weights=self.weights)
            rows += [f"{split},{tid},{self.classes[t]},{self.classes[p]}"
                     for tid, t, p in zip(tiled.ids, tiled.targets, logits.argmax(-1).tolist())]
        write_text(stage / "predictions.csv", "\n".join(rows) + "\n")
        return {"splits": splits}

    def baseline(self) -> dict:
        from mirformer.experiments.baseline import run_mfcc_baseline

        done = self.run_dir / "mfcc-logreg" / "result.json"
        if done.exists():
            self.log(f"mfcc-logreg: reusing {done}")
            return json.loads(done.read_text())
        self.log("classical baseline: MFCC statistics + logistic regression")
        t0 = time.time()
        tracks = [t for ts in self.tracks.values() for t in ts]
        result = run_mfcc_baseline(tracks, classes=self.classes, sample_rate=self.rep.sample_rate,
                                   max_seconds=self.cfg.baseline_seconds, seed=self.cfg.seed,
                                   workers=self.cfg.workers, progress=self.progress)
        result["seconds"] = time.time() - t0
        write_json(done, result)
        return result


def run_compare(cfg: CompareConfig, run_dir: Path | None = None, *, progress: bool = True) -> dict:
    """Run (or resume) every setup of ``cfg`` and write results.json and the report."""
    from mirformer.experiments.report import write_report

    t0 = time.time()
    cmp = Comparison(cfg, run_dir, progress=progress)
    write_json(cmp.run_dir / "config.json", {"config": asdict(cfg), "seed": cfg.seed, "versions": versions()})
    cmp.prepare_data()
    setups: dict[str, dict] = {}
    if "spectroformer-pretrained-finetuned" in cfg.setups:
        model = load_former(cmp.pretrain(), n_classes=len(cmp.classes))
        pre = json.loads((cmp.run_dir / "spectroformer-pretrain" / "history.json").read_text())
        setups["spectroformer-pretrained-finetuned"] = cmp.classify("spectroformer-pretrained-finetuned",
                                                                    cfg.finetune, model)
        setups["spectroformer-pretrained-finetuned"]["pretrain_history"] = pre["history"]
    if "spectroformer-scratch" in cfg.setups:
        setups["spectroformer-scratch"] = cmp.classify("spectroformer-scratch", cfg.scratch,
                                                       cmp.new_model(len(cmp.classes)))
    if "mfcc-logreg" in cfg.setups:
        setups["mfcc-logreg"] = cmp.baseline()
    results = {
        "name": cfg.name,
        "dataset": cmp.dataset.name,
        "dataset_root": str(cmp.dataset.root),
        "classes": cmp.classes,
        "counts": {s: len(ts) for s, ts in cmp.tracks.items()},
        "representation": {"name": cmp.rep.name, **cmp.rep.config_dict()},
        "skipped": cmp.skipped,
        "setups": setups,
        "seconds": time.time() - t0,
        "run_dir": str(cmp.run_dir),
    }
    write_json(cmp.run_dir / "results.json", results)
    results["table"] = write_report(results, cmp.run_dir)
    return results
