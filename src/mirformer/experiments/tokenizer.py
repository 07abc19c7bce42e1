"""A VQ-VAE tokenizer trained on a dataset's training split, in the folder every comparison (and
``mirformer train-vqvae``) with the same settings shares, so it trains once."""

from __future__ import annotations

import json
from pathlib import Path

from mirformer.datasets.base import Dataset, Track
from mirformer.experiments.run import log
from mirformer.experiments.train_vqvae import train_vqvae, vqvae_run_dir
from mirformer.representations.vqvae.train_config import VQVAETrainConfig


def train_tokenizer(cfg, dataset: Dataset, tracks: dict[str, list[Track]], train_config: VQVAETrainConfig, *,
                    out: Path | None = None, progress: bool = True) -> tuple[Path, dict]:
    """Train (or reuse) a VQ-VAE on ``tracks["train"]``, validated on ``tracks["validation"]``, with
    ``cfg``'s seed, trainer and workers; return its checkpoint (the official Jukebox layout) and its
    fit (``epochs``, final ``val_loss``). ``out``: the folder (default: the shared one)."""
    out = Path(out) if out else vqvae_run_dir(dataset.identity, train_config, seed=cfg.seed, trainer_cfg=cfg.trainer)
    log(f"tokenizer: training a VQ-VAE on the training split in {out}", progress)
    checkpoint = train_vqvae({s: tracks[s] for s in ("train", "validation")}, train_config, out,
                             dataset_id=dataset.identity, trainer_cfg=cfg.trainer, seed=cfg.seed,
                             workers=cfg.workers, progress=progress)
    history = json.loads((out / "history.json").read_text())["history"]
    return checkpoint, {"epochs": len(history), "val_loss": history[-1].get("val_loss") if history else None}
