"""Train a VQ-VAE on a dataset's training split and save it in the official checkpoint layout."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from mirformer import distributed, paths
from mirformer.atomic import write_json
from mirformer.audio import too_short
from mirformer.datasets.base import Track
from mirformer.representations.store import FeatureStore
from mirformer.representations.vqvae.checkpoint import save_vqvae
from mirformer.representations.vqvae.losses import compute_bandwidth
from mirformer.representations.vqvae.model import VQVAE
from mirformer.representations.vqvae.train_config import VQVAETrainConfig
from mirformer.representations.waveform import Waveform
from mirformer.training.fit import TrainerConfig, fit_stage, load_module_weights
from mirformer.training.loaders import make_loader
from mirformer.training.snippets import CentredSnippets, RandomSnippets, TiledSnippets
from mirformer.training.vqvae_module import VQVAEModule


def vqvae_run_dir(dataset_id: str, cfg: VQVAETrainConfig, *, seed: int, trainer_cfg: TrainerConfig) -> Path:
    """The folder of the VQ-VAE trained on ``dataset_id`` with ``cfg``: every comparison (and
    ``mirformer train-vqvae``) with the same settings shares it instead of training again."""
    blob = json.dumps({"dataset": dataset_id, "config": asdict(cfg), "seed": seed,
                       "precision": trainer_cfg.precision, "devices": trainer_cfg.devices,
                       "strategy": trainer_cfg.strategy}, sort_keys=True, default=str)
    return paths.runs_dir() / "vqvae" / f"{dataset_id}-{hashlib.sha1(blob.encode()).hexdigest()[:8]}"


def train_vqvae(tracks: dict[str, list[Track]], cfg: VQVAETrainConfig, out_dir: Path, *, dataset_id: str,
                trainer_cfg: TrainerConfig, seed: int = 0, workers: int = 1, progress: bool = True) -> Path:
    """Train on ``tracks["train"]`` (validate on ``tracks["validation"]``); return the checkpoint path.

    Reuses ``out_dir / "vqvae.pth.tar"`` when present; an interrupted run resumes from its last
    Lightning checkpoint, which carries the EMA codebook statistics, so it ends as an uninterrupted run.
    """
    final = out_dir / "vqvae.pth.tar"
    if final.exists():
        return final
    vq = cfg.vqvae
    top_hop = vq.hop_lengths[-1]
    crop = max(top_hop, int(cfg.crop_seconds * vq.sample_rate) // top_hop * top_hop)
    store = FeatureStore(paths.features_dir(), dataset_id, Waveform(vq.sample_rate))
    both = tracks["train"] + tracks["validation"]
    # Under DDP each rank encodes its shard of the clips; the last to finish consolidates.
    store.extract(both, workers=workers, progress=progress and distributed.is_main(), shard=distributed.shard_spec())
    distributed.barrier()
    store.reload()
    failed = store.failures(both)
    for t in both:  # a clip must hold one whole crop
        why = failed.get(t.id) or too_short(store.seconds(t.id), crop / vq.sample_rate)
        if why:
            failed[t.id] = why
    train_ids = [t.id for t in tracks["train"] if t.id not in failed]
    val_ids = [t.id for t in tracks["validation"] if t.id not in failed]
    bandwidth = compute_bandwidth(_audio_for_bandwidth(store, train_ids, cfg.bandwidth_seconds * vq.sample_rate),
                                  segment_length=crop)
    train = ConcatDataset([RandomSnippets(store, train_ids, None, length=crop)] * cfg.crops_per_track)
    # Validation: the same crops every epoch, every one of each clip or its centred one.
    val = (TiledSnippets if cfg.val_crops == "tiled" else CentredSnippets)(store, val_ids, None, length=crop)
    torch.manual_seed(seed)  # the initial weights: the same VQ-VAE from the same seed
    module = VQVAEModule(VQVAE(vq), bandwidth=bandwidth, lr=cfg.lr, warmup=cfg.warmup)
    history, best = fit_stage(module, make_loader(train, cfg.batch_size, train=True, seed=seed, drop_last=True),
                              make_loader(val, cfg.batch_size, train=False), stage_dir=out_dir, epochs=cfg.epochs,
                              monitor="val/loss", mode="min", trainer_cfg=trainer_cfg, seed=seed)
    if distributed.is_main():
        load_module_weights(module, best)
        write_json(out_dir / "history.json", {"history": history, "bandwidth": asdict(bandwidth),
                                              "config": asdict(cfg), "skipped": failed})
        save_vqvae(module.model.eval(), final, step=module.global_step)
    distributed.barrier()  # every rank reads the VQ-VAE next
    return final


def _audio_for_bandwidth(store: FeatureStore, ids: list[str], max_samples: float):
    """Whole training clips, in order, until ``max_samples`` samples."""
    total = 0
    for tid in ids:
        if total >= max_samples:
            return
        y = np.asarray(store.get(tid), dtype=np.float32)
        total += len(y)
        yield y
