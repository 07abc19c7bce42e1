"""A tiny VQ-VAE trained with Jukebox's objective: loss falls, checkpoint loads (resume: test_resume.py)."""

import json

import numpy as np
import pytest
import torch

from helpers import TINY_VQVAE, TRAINER
from mirformer.errors import ConfigError
from mirformer.experiments.train_vqvae import train_vqvae
from mirformer.representations.vqvae.train_config import VQVAETrainConfig
from mirformer.representations.vq import VQTokens, codebook_usage



@pytest.mark.slow
def test_tiny_vqvae_trains_saves_and_tokenizes(tmp_path, vq_tracks):
    cfg = VQVAETrainConfig(vqvae=TINY_VQVAE, crop_seconds=0.25, crops_per_track=4, batch_size=4, epochs=16, lr=3e-3,
                           warmup=5)
    ckpt = train_vqvae(vq_tracks, cfg, tmp_path / "vq", dataset_id="toy", trainer_cfg=TRAINER)
    history = json.loads((tmp_path / "vq" / "history.json").read_text())["history"]
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"], history
    # The saved file is in the official layout and loads through the same path as OpenAI's.
    tok = VQTokens(ckpt, level=0)
    y = np.sin(np.arange(4000) / 8000 * 2 * np.pi * 300).astype(np.float32)
    ids = tok.encode(y)
    assert ids.shape == (4000 // 8,) and ids.dtype == np.int16 and ids.max() < 16
    assert tok.vectors(ids.astype(np.int64)).shape == (500, 8)
    assert VQTokens(ckpt, level=None).level == 0  # None: the top level
    with pytest.raises(ConfigError, match="levels 0..0"):
        VQTokens(ckpt, level=1)
    # Reused when done.
    assert train_vqvae(vq_tracks, cfg, tmp_path / "vq", dataset_id="toy", trainer_cfg=TRAINER) == ckpt


def test_codebook_usage_counts_and_entropy():
    u = codebook_usage(np.bincount([0, 0, 1, 3], minlength=8))
    assert u["codes_used"] == 3 and u["usage"] == 3 / 8 and u["n_tokens"] == 4
    assert u["entropy_bits"] == pytest.approx(1.5)  # p = (1/2, 1/4, 1/4)
    assert u["perplexity"] == pytest.approx(2**1.5)
    assert codebook_usage(np.ones(16))["entropy_bits"] == pytest.approx(4.0)


def test_same_seed_same_vqvae(tmp_path, vq_tracks):
    cfg = VQVAETrainConfig(vqvae=TINY_VQVAE, crop_seconds=0.25, crops_per_track=1, batch_size=4, epochs=1, warmup=5)
    weights = []
    for run in ("a", "b"):
        train_vqvae(vq_tracks, cfg, tmp_path / run, dataset_id="toy", trainer_cfg=TRAINER, seed=3)
        weights.append(torch.load(tmp_path / run / "vqvae.pth.tar", weights_only=True)["model"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
