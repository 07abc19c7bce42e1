"""The comparison runner: dataset -> log-mel and VQ tokens -> the Former setups + MFCC baseline -> report.

SpectroFormer reads normalised log-mel frames; TokenFormer and CodebookFormer read the token ids
of one VQ tokenizer (a given checkpoint, or a VQ-VAE first trained on the training split). All
setups see the same tracks: a file unusable in any representation is skipped for every setup.

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
from torch.utils.data import ConcatDataset, DataLoader

from mirformer import __version__, paths
from mirformer.atomic import write_json, write_text
from mirformer.audio import too_short
from mirformer.datasets.base import Track
from mirformer.datasets.registry import open_dataset
from mirformer.errors import ConfigError, MirformerError
from mirformer.experiments.config import MODEL_KINDS, CompareConfig
from mirformer.experiments.train_vqvae import train_vqvae, vqvae_run_dir
from mirformer.models.former import Former, load_former
from mirformer.objectives.spectro_masking import SpectroObjective
from mirformer.objectives.token_masking import TokenObjective
from mirformer.representations.base import Representation
from mirformer.representations.mel import LogMel
from mirformer.representations.store import FeatureStore
from mirformer.representations.vq import VQTokens, codebook_usage
from mirformer.tasks import make_task
from mirformer.training.evaluate import predict_clips
from mirformer.training.fit import fit_stage, load_module_weights
from mirformer.training.modules import DownstreamModule, PretrainModule
from mirformer.training.strategies import head_for
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


def _csv(text: str) -> str:
    """A predictions.csv cell: quoted when it holds a comma or a quote."""
    return '"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text


def _point_name(batch_size: int, lr: float | None) -> str:
    """A grid point's folder: ``bs16-lr2e-05``; ``bs16`` under the warmup schedule."""
    return f"bs{batch_size}" + ("" if lr is None else f"-lr{lr:g}")


# Which input each model kind reads.
INPUT_OF = {"spectroformer": "mel", "tokenformer": "tokens", "codebookformer": "tokens"}


@dataclass
class Inputs:
    """One input representation: its feature store, window length and (for features) normalisation."""

    rep: Representation
    store: FeatureStore
    length: int  # frames per model input window
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    counts: np.ndarray | None = None  # tokens: how often the training split uses each code


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
    def uses(self, kind: str) -> bool:
        return any(setup.startswith(f"{kind}-") for setup in self.cfg.setups)

    def prepare_data(self) -> None:
        cfg = self.cfg
        self.check_length("mel", cfg.snippet_frames)
        wants_tokens = self.uses("tokenformer") or self.uses("codebookformer")
        given = self.check_tokenizer() if wants_tokens else None  # bad settings fail before any heavy work
        self.dataset = open_dataset(cfg.data.name, cfg.data.root, workers=cfg.workers, progress=self.progress,
                                    **cfg.data.options)
        self.dataset.prepare()
        tracks = self.dataset.tracks()
        self.classes = self.dataset.classes()
        self.task = make_task(self.dataset.task, self.classes)
        mel = LogMel(cfg.mel)
        self.inputs = {"mel": Inputs(mel, FeatureStore(paths.features_dir(), self.dataset.identity, mel),
                                     cfg.snippet_frames)}
        self.extract("mel", tracks)
        self.tokenizer: dict | None = None
        if wants_tokens:
            self.inputs["tokens"] = self.prepare_tokenizer(tracks, given)
            self.extract("tokens", tracks)
        self.tracks = {s: [t for t in tracks if t.split == s and t.id not in self.skipped]
                       for s in ("train", "validation", "test")}
        for split, ts in self.tracks.items():
            if not ts:
                raise MirformerError(f"no usable tracks in the {split} split of {self.dataset.name} at "
                                     f"{self.dataset.root} ({len(self.skipped)} skipped as unreadable or too short)")
        train_ids = [t.id for t in self.tracks["train"]]
        mel_inputs = self.inputs["mel"]
        mel_inputs.mean, mel_inputs.std = mel_inputs.store.normalisation(train_ids)
        if self.tokenizer is not None:
            tokens = self.inputs["tokens"]
            # Counted per track: a large training split never holds all its tokens in memory at once.
            tokens.counts = sum(np.bincount(np.asarray(tokens.store.get(i), np.int64),
                                            minlength=tokens.rep.vocab_size) for i in train_ids)
            self.tokenizer.update(codebook_usage(tokens.counts))
            self.log(f"tokenizer: {self.tokenizer['codes_used']}/{tokens.rep.vocab_size} codes used on the training "
                     f"split, entropy {self.tokenizer['entropy_bits']:.2f} bits")
        self.task.fit(self.tracks["train"])

    def extract(self, name: str, tracks: list[Track]) -> None:
        """Store one input of every track; skip files that do not decode or are shorter than ``data.min_seconds``."""
        inp = self.inputs[name]
        self.log(f"{name} features: {inp.store.dir}")
        failed = inp.store.extract(tracks, workers=self.cfg.workers, progress=self.progress)
        for t in tracks:
            why = failed.get(t.id) or too_short(inp.store.seconds(t.id), self.cfg.data.min_seconds)
            if why:
                self.skipped[t.id] = self.dataset.explain(t.id, why)

    def token_window(self, tokens_per_second: float) -> int:
        """Token window: ``token_snippet_frames``, or the seconds of a mel window."""
        mel_frames_per_second = self.cfg.mel.sample_rate / self.cfg.mel.hop_length
        return self.cfg.token_snippet_frames or round(self.cfg.snippet_frames * tokens_per_second / mel_frames_per_second)

    def check_tokenizer(self) -> VQTokens | None:
        """Check the tokenizer settings; return the given checkpoint's tokenizer (None: one will be trained).

        A given checkpoint is loaded here (layout, keys, shapes and level checked); for one to be
        trained, the level and window length follow from its architecture.
        """
        tc = self.cfg.tokenizer
        if tc.checkpoint:
            checkpoint = Path(tc.checkpoint).expanduser()
            if not checkpoint.is_file():
                raise ConfigError(f"tokenizer.checkpoint {checkpoint}: no such file")
            rep = VQTokens(checkpoint, level=tc.level, trust_pickle=tc.trust_checkpoint)
            self.check_length("tokens", self.token_window(rep.frames_per_second))
            return rep
        vq = tc.train.vqvae
        level = vq.levels - 1 if tc.level is None else tc.level
        if not 0 <= level < vq.levels:
            raise ConfigError(f"tokenizer.level={tc.level} does not exist: tokenizer.train.vqvae has levels "
                              f"0..{vq.levels - 1}")
        self.check_length("tokens", self.token_window(vq.sample_rate / vq.hop_lengths[level]))
        return None

    def prepare_tokenizer(self, tracks: list[Track], given: VQTokens | None) -> Inputs:
        """The VQ tokenizer's inputs: the given checkpoint's, or those of a VQ-VAE trained on the training split."""
        cfg, tc = self.cfg, self.cfg.tokenizer
        if given is not None:
            rep, source, fit = given, "from the given checkpoint", {}
        else:
            out = vqvae_run_dir(self.dataset.identity, tc.train, seed=cfg.seed, trainer_cfg=cfg.trainer)
            self.log(f"tokenizer: training a VQ-VAE on the training split in {out}")
            by_split = {s: [t for t in tracks if t.split == s] for s in ("train", "validation")}
            checkpoint = train_vqvae(by_split, tc.train, out, dataset_id=self.dataset.identity, trainer_cfg=cfg.trainer,
                                     seed=cfg.seed, workers=cfg.workers, progress=self.progress)
            rep, source = VQTokens(checkpoint, level=tc.level), "trained on the training split"
            history = json.loads((out / "history.json").read_text())["history"]
            fit = {"epochs": len(history), "val_loss": history[-1].get("val_loss") if history else None}
        length = self.token_window(rep.frames_per_second)
        vq = rep.model.config
        self.tokenizer = {"source": source, "checkpoint": str(rep.checkpoint), "sha1": rep.sha1, "level": rep.level,
                          "levels": vq.levels, "sample_rate": rep.sample_rate, "hop_length": rep.hop_length,
                          "vocab_size": rep.vocab_size, "emb_width": vq.emb_width, "window_frames": length, **fit}
        return Inputs(rep, FeatureStore(paths.features_dir(), self.dataset.identity, rep), length)

    def check_length(self, name: str, length: int) -> None:
        if length > self.cfg.encoder.max_len:
            raise ConfigError(f"{name}: windows of {length} frames exceed encoder.max_len={self.cfg.encoder.max_len}; "
                              "raise encoder.max_len or shorten the window (snippet_frames / token_snippet_frames)")

    def targets(self, tracks: list[Track]) -> list:
        return [self.task.target(t) for t in tracks]

    def random_snippets(self, split: str, copies: int, kind: str) -> ConcatDataset:
        ts, inp = self.tracks[split], self.inputs[INPUT_OF[kind]]
        one = RandomSnippets(inp.store, [t.id for t in ts], self.targets(ts), length=inp.length, mean=inp.mean,
                             std=inp.std)
        return ConcatDataset([one] * copies)

    def tiled(self, split: str, kind: str) -> TiledSnippets:
        ts, inp = self.tracks[split], self.inputs[INPUT_OF[kind]]
        return TiledSnippets(inp.store, [t.id for t in ts], self.targets(ts), length=inp.length, mean=inp.mean,
                             std=inp.std)

    def loader(self, dataset, batch_size: int, shuffle: bool) -> DataLoader:
        workers = self.cfg.trainer.num_workers
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=False,
                          num_workers=workers, persistent_workers=workers > 0)

    # ---- stages ------------------------------------------------------------------------
    def new_model(self, kind: str, n_classes: int, **head) -> Former:
        """A seeded random ``kind``; ``head`` (``head``, ``pooling``) configures the downstream head."""
        torch.manual_seed(self.cfg.seed)
        inp = self.inputs[INPUT_OF[kind]]
        rep = inp.rep
        if kind == "spectroformer":
            return Former(kind=kind, encoder=self.cfg.encoder, input_dim=rep.dim, n_classes=n_classes, **head)
        codebook = rep.codebook()
        model = Former(kind=kind, encoder=self.cfg.encoder, input_dim=rep.vocab_size, n_classes=n_classes,
                       codebook_dim=codebook.shape[1], **head)
        if kind == "codebookformer":
            model.frontend.set_codebook(codebook, counts=inp.counts)
        return model

    def objective(self, kind: str):
        if kind == "spectroformer":
            return SpectroObjective(self.cfg.mask)
        return TokenObjective(self.cfg.token_mask, vocab_size=self.inputs["tokens"].rep.vocab_size)

    def pretrain(self, kind: str) -> Path:
        """Masked pretraining of ``kind``; returns the saved encoder (reused when present)."""
        stage = self.run_dir / f"{kind}-pretrain"
        encoder_path = stage / "encoder.pt"
        if encoder_path.exists():
            self.log(f"{kind} pretraining: reusing {encoder_path}")
            return encoder_path
        cfg = self.cfg
        what = "masked frame and channel blocks, Huber loss" if kind == "spectroformer" else \
            "masked tokens, cross-entropy"
        self.log(f"pretraining {kind} ({what})")
        module = PretrainModule(self.new_model(kind, 0), objective=self.objective(kind), optim=cfg.pretrain.optim,
                                seed=cfg.seed)
        t0 = time.time()
        history, best = fit_stage(
            module,
            self.loader(self.random_snippets("train", cfg.pretrain.snippets_per_track, kind), cfg.pretrain.batch_size,
                        True),
            self.loader(self.tiled("validation", kind), cfg.eval_batch_size, False),
            stage_dir=stage, epochs=cfg.pretrain.epochs, monitor="val/loss", mode="min",
            trainer_cfg=cfg.trainer, seed=cfg.seed)
        load_module_weights(module, best)
        write_json(stage / "history.json", {"history": history, "seconds": time.time() - t0})
        module.model.save(encoder_path)
        return encoder_path

    def downstream(self, name: str, kind: str, stage_cfg, pretrained: Path | None = None) -> dict:
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
        module = self.downstream_module(kind, replace(stage_cfg, batch_size=best["batch_size"]), pretrained)
        load_module_weights(module, Path(best["checkpoint"]))
        result = {"name": name, "model": kind, "input": INPUT_OF[kind], "pretrained": pretrained is not None,
                  "task": self.task.kind, "strategy": stage_cfg.strategy, "pooling": stage_cfg.pooling,
                  "checkpoint": best["checkpoint"], "history": best["history"], "seconds": time.time() - t0}
        if len(points) > 1:
            result["grid"] = [{k: p[k] for k in ("batch_size", "lr", "best", "checkpoint")} for p in trained]
            result["selected"] = {"batch_size": best["batch_size"], "lr": best["lr"], "monitor": f"val_{monitor}"}
            self.log(f"{name}: selected {_point_name(best['batch_size'], best['lr'])} on validation {monitor}")
        result.update(self.evaluate(module.model, stage, kind))
        write_json(done, result)
        return result

    def downstream_module(self, kind: str, stage_cfg, pretrained: Path | None) -> DownstreamModule:
        """A fresh downstream model (the pretrained encoder, or a seeded random one) in its Lightning module."""
        head = head_for(stage_cfg.strategy)
        if pretrained is not None:
            torch.manual_seed(self.cfg.seed)  # the new head's initialisation
            model = load_former(pretrained, n_classes=self.task.n_outputs, head=head, pooling=stage_cfg.pooling)
        else:
            model = self.new_model(kind, self.task.n_outputs, head=head, pooling=stage_cfg.pooling)
        val = self.tracks["validation"]
        return DownstreamModule(model, task=self.task, optim=stage_cfg.optim, n_val_tracks=len(val),
                                val_targets=self.task.targets(val), strategy=stage_cfg.strategy)

    def train_point(self, name: str, folder: Path, kind: str, stage_cfg, pretrained: Path | None) -> dict:
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
        write_json(done, point)
        return point

    def evaluate(self, model: Former, stage: Path, kind: str) -> dict:
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
        result = run_mfcc_baseline(tracks, classes=self.classes, task=self.task.kind, sample_rate=self.inputs["mel"].rep.sample_rate,
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
    for kind in MODEL_KINDS:
        name = f"{kind}-pretrained-finetuned"
        if name in cfg.setups:
            encoder = cmp.pretrain(kind)
            pre = json.loads((cmp.run_dir / f"{kind}-pretrain" / "history.json").read_text())
            setups[name] = cmp.downstream(name, kind, cfg.finetune, encoder)
            setups[name]["pretrain_history"] = pre["history"]
        name = f"{kind}-scratch"
        if name in cfg.setups:
            setups[name] = cmp.downstream(name, kind, cfg.scratch)
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
        "representations": {name: {"name": inp.rep.name, "window_frames": inp.length,
                                   "frames_per_second": inp.rep.frames_per_second, **inp.rep.config_dict()}
                            for name, inp in cmp.inputs.items()},
        "tokenizer": cmp.tokenizer,
        "skipped": cmp.skipped,
        "setups": setups,
        "seconds": time.time() - t0,
        "run_dir": str(cmp.run_dir),
    }
    write_json(cmp.run_dir / "results.json", results)
    results["table"] = write_report(results, cmp.run_dir)
    return results
