"""One training stage with Lightning: checkpoints, resume, TensorBoard + CSV logs, history.

A stage directory holds ``checkpoints/{last,best}.ckpt``, ``logs/`` and, once finished,
whatever the caller writes as its completion marker. Calling ``fit_stage`` again on an
interrupted stage resumes from ``last.ckpt``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger


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


class History(Callback):
    """Per-epoch metrics (every ``train/*`` and ``val/*`` value, as ``train_loss``, ``val_roc_auc``...),
    kept in the checkpoint so a resumed run keeps its curves."""

    def __init__(self):
        self.rows: list[dict] = []

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        row.update({k.replace("/", "_"): float(v) for k, v in sorted(m.items())
                    if k.startswith(("train/", "val/")) and v.numel() == 1})
        self.rows.append(row)

    def state_dict(self):
        return {"rows": self.rows}

    def load_state_dict(self, state):
        self.rows = list(state["rows"])


def fit_stage(module: L.LightningModule, train_loader, val_loader, *, stage_dir: Path, epochs: int,
              monitor: str, mode: str, trainer_cfg: TrainerConfig, seed: int) -> tuple[list[dict], Path]:
    """Train (or resume) one stage; return (per-epoch history, path of the best checkpoint)."""
    L.seed_everything(seed, workers=True, verbose=False)
    # Lightning's start-up banners (GPU/TPU availability, logger tips) drown mirformer's own progress lines.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    ckpt_dir = stage_dir / "checkpoints"
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                           save_last=True, save_on_train_epoch_end=True, enable_version_counter=False)
    history = History()
    # A resumed stage logs CSV into a new folder: Lightning's CSV writer would wipe the old one.
    launch = len(list((stage_dir / "logs").glob("csv-*"))) if (stage_dir / "logs").exists() else 0
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=trainer_cfg.accelerator,
        devices=trainer_cfg.devices,
        num_nodes=trainer_cfg.num_nodes,
        strategy=trainer_cfg.strategy,
        precision=trainer_cfg.precision,
        callbacks=[history, best],
        logger=[TensorBoardLogger(stage_dir / "logs", name="", version="tensorboard"),
                CSVLogger(stage_dir / "logs", name="", version=f"csv-{launch}")],
        enable_progress_bar=trainer_cfg.progress,
        enable_model_summary=False,
        log_every_n_steps=trainer_cfg.log_every_n_steps,
        num_sanity_val_steps=0,
    )
    last = ckpt_dir / "last.ckpt"
    with warnings.catch_warnings():
        # Noise from Lightning's internals on torch 2.13, not actionable by users.
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
        warnings.filterwarnings("ignore", message=r".*exists and is not empty.*")
        # Our own checkpoints hold tensors and primitives only, so they load with weights_only=True.
        trainer.fit(module, train_loader, val_loader, ckpt_path=last if last.exists() else None, weights_only=True)
    if trainer.interrupted:  # Lightning may swallow Ctrl-C; the stage must not count as finished
        raise KeyboardInterrupt
    best_path = Path(best.best_model_path) if best.best_model_path else last
    return history.rows, best_path


def load_module_weights(module: L.LightningModule, ckpt_path: Path) -> None:
    """Load a Lightning checkpoint's weights into ``module`` (weights-only)."""
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
