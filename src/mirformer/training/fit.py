"""One training stage with Lightning: checkpoints, resume, TensorBoard + CSV logs, history.

A stage directory holds ``checkpoints/{last,best}.ckpt``, ``logs/`` and, once finished,
whatever the caller writes as its completion marker. Calling ``fit_stage`` again on an
interrupted stage resumes from ``last.ckpt``, written at the end of every epoch: weights,
optimiser, schedule, per-epoch history and the random number generators' states, so the resumed
stage draws the same crops, shuffles and dropout masks and ends with the same weights as an
uninterrupted one. Checkpoints are written atomically (``AtomicCheckpointIO``).
"""

from __future__ import annotations

import logging
import random
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import DDPStrategy

from mirformer import distributed
from mirformer.atomic import write_json, write_torch


@dataclass
class TrainerConfig:
    """Passed through to ``lightning.Trainer`` (``--accelerator``, ``--devices``, ``--precision``...)."""

    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"  # "bf16-mixed" on CPU or GPU, "16-mixed" (loss scaling) on GPU
    num_workers: int = 0  # data loader workers; reading a memory map is cheap, 0 is fastest on 2 cores
    progress: bool = True
    log_every_n_steps: int = 10
    # Validate after every k-th epoch (the best checkpoint is chosen among those); 1: every epoch.
    val_every_n_epochs: int = 1
    # A torch.compile backend ("inductor" on a GPU) for each part of the network; None: eager.
    compile: str | None = None


class History(Callback):
    """Per-epoch metrics (every ``train/*`` and ``val/*`` value, as ``train_loss``, ``val_roc_auc``...),
    kept in the checkpoint so a resumed run keeps its curves. ``val/*`` values appear only in the
    epochs that validated (``val_every_n_epochs``), never carried over from an earlier one."""

    def __init__(self):
        self.rows: list[dict] = []
        self._validated = False

    def on_validation_epoch_end(self, trainer, pl_module):
        self._validated = not trainer.sanity_checking

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        keep = ("train/", "val/") if self._validated else ("train/",)
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        row.update({k.replace("/", "_"): float(v) for k, v in sorted(m.items()) if k.startswith(keep) and v.numel() == 1})
        self.rows.append(row)
        self._validated = False

    def state_dict(self):
        return {"rows": self.rows}

    def load_state_dict(self, state):
        self.rows = list(state["rows"])


def _rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                       "has_gauss": has_gauss, "gauss": gauss}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Throughput(Callback):
    """Training windows per second of training steps (forward, backward, optimiser; data loading
    and validation excluded), over every epoch the stage ran, resumed runs included (it is kept in
    the checkpoint). Windows are counted over every process."""

    def __init__(self):
        self.windows, self.seconds, self._t0 = 0, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seconds += time.perf_counter() - self._t0
        first = batch["x"] if isinstance(batch, dict) else batch[0] if isinstance(batch, (tuple, list)) else batch
        self.windows += len(first) * distributed.world_size()

    def summary(self) -> dict:
        return {"windows": self.windows, "seconds": self.seconds,
                "windows_per_second": self.windows / self.seconds if self.seconds else None}

    def state_dict(self):
        return {"windows": self.windows, "seconds": self.seconds}

    def load_state_dict(self, state):
        self.windows, self.seconds = state["windows"], state["seconds"]


class RandomState(Callback):
    """The random number generators' states (torch, CUDA, numpy, Python), saved in every checkpoint
    and restored on resume: Lightning restores weights, optimiser and schedule, not these, and
    without them a resumed stage would crop, shuffle and drop out differently from an
    uninterrupted one. Under DDP every rank's states are saved (Lightning writes rank 0's
    checkpoint only) and each rank gets its own back. numpy's state is stored as a tensor so
    the checkpoint loads with ``weights_only=True``."""

    def state_dict(self):
        state = _rng_state()
        if distributed.world_size() == 1:
            return state
        states = [None] * distributed.world_size()
        torch.distributed.all_gather_object(states, state)  # Lightning builds the checkpoint on every rank
        return {"ranks": states}

    def load_state_dict(self, state):
        if "ranks" in state:  # a checkpoint of a DDP run; resumed with another world size, rank 0's
            ranks = state["ranks"]
            state = ranks[distributed.rank()] if len(ranks) == distributed.world_size() else ranks[0]
        _set_rng_state(state)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic on any filesystem: the file is written beside its
    target and renamed onto it, so a killed job leaves the previous checkpoint intact.

    Lightning's own writer serialises into memory, writes to a file in the system temporary
    folder and moves it into place: a rename only where that folder shares the checkpoint's
    filesystem (not, typically, on a cluster's shared storage), a copy otherwise, which a kill
    can interrupt half-way.
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        write_torch(path, checkpoint)


def compile_parts(model: torch.nn.Module, backend: str) -> None:
    """Compile each direct part of ``model`` (frontend, encoder, heads...) in place with
    ``torch.compile``: every call of a part runs compiled, whichever method of the model makes it
    (``forward``, ``forward_pretrain``), and parameter names and checkpoints stay as they are."""
    for part in model.children():
        part.compile(backend=backend)


class Compiled(Callback):
    """Compiles the module's network (``compile_parts``) before its first step."""

    def __init__(self, backend: str):
        self.backend = backend

    def setup(self, trainer, pl_module, stage):
        compile_parts(pl_module.model, self.backend)


def make_trainer(trainer_cfg: TrainerConfig, *, stage_dir: Path, epochs: int, monitor: str,
                 mode: str) -> tuple[L.Trainer, History, ModelCheckpoint, Throughput]:
    """The Lightning trainer of one stage, with its history, best-checkpoint and throughput callbacks.

    Under DDP (processes started by ``mirformer.distributed.launch``, or by SLURM) it joins the
    running process group. Buffers are synchronised once, not at every forward: evaluation splits
    every window once over the ranks, so they may run a batch more or less, and a collective in
    every forward would wait forever. Under SLURM, SIGUSR1 (``sbatch --signal=SIGUSR1@90``) saves a
    checkpoint and requeues the job, which then resumes from ``last.ckpt``.
    """
    ckpt_dir = stage_dir / "checkpoints"
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                           save_on_train_epoch_end=True, enable_version_counter=False)
    # Its own callback: Lightning's save_last only writes when the monitored metric improved, so
    # an interrupted stage would go back to its best epoch instead of its last.
    last = ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, save_on_train_epoch_end=True,
                           enable_version_counter=False)
    history, throughput = History(), Throughput()
    strategy = trainer_cfg.strategy
    if distributed.world_size() > 1 and strategy in ("auto", "ddp"):
        strategy = DDPStrategy(forward_sync_buffers=False)
    plugins = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=True, requeue_signal=signal.SIGUSR1))
    # A resumed stage logs CSV into a new folder: Lightning's CSV writer would wipe the old one.
    launch = len(list((stage_dir / "logs").glob("csv-*"))) if (stage_dir / "logs").exists() else 0
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=trainer_cfg.accelerator,
        devices=trainer_cfg.devices,
        num_nodes=trainer_cfg.num_nodes,
        strategy=strategy,
        precision=trainer_cfg.precision,
        callbacks=[history, RandomState(), throughput, best, last,
                   *([Compiled(trainer_cfg.compile)] if trainer_cfg.compile else [])],
        plugins=plugins,
        logger=[TensorBoardLogger(stage_dir / "logs", name="", version="tensorboard"),
                CSVLogger(stage_dir / "logs", name="", version=f"csv-{launch}")],
        default_root_dir=stage_dir,
        use_distributed_sampler=False,  # mirformer's loaders split the data (training.loaders)
        enable_progress_bar=trainer_cfg.progress,
        enable_model_summary=False,
        log_every_n_steps=trainer_cfg.log_every_n_steps,
        check_val_every_n_epoch=trainer_cfg.val_every_n_epochs,
        num_sanity_val_steps=0,
    )
    return trainer, history, best, throughput


def fit_stage(module: L.LightningModule, train_loader, val_loader, *, stage_dir: Path, epochs: int,
              monitor: str, mode: str, trainer_cfg: TrainerConfig, seed: int) -> tuple[list[dict], Path]:
    """Train (or resume) one stage; return (per-epoch history, path of the best checkpoint). Its
    training throughput is written to ``throughput.json`` in ``stage_dir`` (``Throughput``)."""
    t0 = time.time()
    L.seed_everything(seed, workers=True, verbose=False)
    # Lightning's start-up banners (GPU/TPU availability, logger tips) drown mirformer's own progress lines.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    trainer, history, best, throughput = make_trainer(trainer_cfg, stage_dir=stage_dir, epochs=epochs, monitor=monitor,
                                                      mode=mode)
    resume = stage_dir / "checkpoints" / "last.ckpt"
    with warnings.catch_warnings():
        # Noise from Lightning's internals on torch 2.13, not actionable by users.
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
        warnings.filterwarnings("ignore", message=r".*exists and is not empty.*")
        # Frozen parts are in eval mode on purpose (no dropout, batch-norm statistics fixed).
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
        warnings.filterwarnings("ignore", message=r".*all_gather is deprecated.*")  # inside Lightning's all_gather
        # Advice that does not apply: loader workers are chosen by trainer.num_workers on purpose, and
        # small splits have fewer batches than the logging interval.
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
        # With val_every_n_epochs > 1 the epochs between validations have no score to compare;
        # the best checkpoint is chosen among the validated epochs.
        warnings.filterwarnings("ignore", message=r".*could not find the monitored key.*")
        # Our own checkpoints hold tensors and primitives only, so they load with weights_only=True.
        trainer.fit(module, train_loader, val_loader, ckpt_path=resume if resume.exists() else None, weights_only=True)
    if trainer.interrupted:  # Lightning may swallow Ctrl-C; the stage must not count as finished
        raise KeyboardInterrupt
    best_path = Path(best.best_model_path) if best.best_model_path else resume
    if distributed.is_main():
        write_json(stage_dir / "throughput.json", throughput.summary())
    if trainer_cfg.progress and distributed.is_main():
        print(f"[mirformer] {stage_summary(stage_dir.name, history.rows, monitor, mode)} in {time.time() - t0:.0f} s",
              flush=True)
    return history.rows, best_path


def stage_summary(name: str, rows: list[dict], monitor: str, mode: str) -> str:
    """``"<name>: best val_f1 0.4100 at epoch 12 of 20"`` from a stage's per-epoch history."""
    key = monitor.replace("/", "_")
    scored = [r for r in rows if key in r]
    if not scored:
        return f"{name}: {len(rows)} epoch(s), no {key}"
    pick = max if mode == "max" else min
    best = pick(scored, key=lambda r: r[key])
    return f"{name}: best {key} {best[key]:.4f} at epoch {best['epoch'] + 1} of {len(rows)}"


def load_module_weights(module: L.LightningModule, ckpt_path: Path) -> None:
    """Load a Lightning checkpoint's weights into ``module`` (weights-only)."""
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
