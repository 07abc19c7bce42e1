"""The comparison's VQ tokenizer: a given checkpoint (OpenAI's ``vqvae.pth.tar`` or any file in its
layout), or a VQ-VAE first trained on the dataset's training split."""

from __future__ import annotations

import json
from pathlib import Path

from mirformer.datasets.base import Dataset, Track
from mirformer.errors import ConfigError
from mirformer.experiments.train_vqvae import train_vqvae, vqvae_run_dir
from mirformer.representations.vq import VQTokens


def token_window(cfg, tokens_per_second: float) -> int:
    """Token window: ``token_snippet_frames``, or the seconds of a mel window."""
    mel_frames_per_second = cfg.mel.sample_rate / cfg.mel.hop_length
    return cfg.token_snippet_frames or round(cfg.snippet_frames * tokens_per_second / mel_frames_per_second)


def check_tokenizer(cfg) -> tuple[VQTokens | None, float]:
    """Check the tokenizer settings before any heavy work; return (the given checkpoint's tokenizer or
    None when one will be trained, tokens per second).

    A given checkpoint is loaded here (layout, keys, shapes and level checked); for one to be
    trained, the level and rate follow from its architecture.
    """
    tc = cfg.tokenizer
    if tc.checkpoint:
        checkpoint = Path(tc.checkpoint).expanduser()
        if not checkpoint.is_file():
            raise ConfigError(f"tokenizer.checkpoint {checkpoint}: no such file")
        rep = VQTokens(checkpoint, level=tc.level, trust_pickle=tc.trust_checkpoint)
        return rep, rep.frames_per_second
    vq = tc.train.vqvae
    level = vq.levels - 1 if tc.level is None else tc.level
    if not 0 <= level < vq.levels:
        raise ConfigError(f"tokenizer.level={tc.level} does not exist: tokenizer.train.vqvae has levels "
                          f"0..{vq.levels - 1}")
    return None, vq.sample_rate / vq.hop_lengths[level]


def prepare_tokenizer(cfg, dataset: Dataset, tracks: list[Track], given: VQTokens | None, *,
                      log, progress: bool) -> tuple[VQTokens, dict]:
    """The tokenizer (``given``, or a VQ-VAE trained on the training split) and its description for
    the report: source, file and SHA-1, levels, rate, codes and, if trained, its fit."""
    tc = cfg.tokenizer
    if given is not None:
        rep, source, fit = given, "from the given checkpoint", {}
    else:
        out = vqvae_run_dir(dataset.identity, tc.train, seed=cfg.seed, trainer_cfg=cfg.trainer)
        log(f"tokenizer: training a VQ-VAE on the training split in {out}")
        by_split = {s: [t for t in tracks if t.split == s] for s in ("train", "validation")}
        checkpoint = train_vqvae(by_split, tc.train, out, dataset_id=dataset.identity, trainer_cfg=cfg.trainer,
                                 seed=cfg.seed, workers=cfg.workers, progress=progress)
        rep, source = VQTokens(checkpoint, level=tc.level), "trained on the training split"
        history = json.loads((out / "history.json").read_text())["history"]
        fit = {"epochs": len(history), "val_loss": history[-1].get("val_loss") if history else None}
    vq = rep.model.config
    about = {"source": source, "checkpoint": str(rep.checkpoint), "sha1": rep.sha1, "level": rep.level,
             "levels": vq.levels, "sample_rate": rep.sample_rate, "hop_length": rep.hop_length,
             "vocab_size": rep.vocab_size, "emb_width": vq.emb_width, "window_frames": token_window(cfg, rep.frames_per_second),
             **fit}
    return rep, about
