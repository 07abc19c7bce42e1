"""mirformer's residual-VQ tokenizer: the VQ-VAE with several EMA codebooks per level, each
quantising what the ones before it left. Shapes, the sum of codes as the latent, each added
codebook lowering the reconstruction error of trained audio, and the checkpoint round trip."""

import dataclasses

import numpy as np
import pytest
import torch

from helpers import TINY_VQVAE, TRAINER
from mirformer.experiments.train_vqvae import train_vqvae
from mirformer.representations.vq import VQTokens
from mirformer.representations.vqvae.checkpoint import load_jukebox_vqvae, official_state_dict, save_vqvae
from mirformer.representations.vqvae.model import VQVAE
from mirformer.representations.vqvae.train_config import VQVAETrainConfig

RVQ = dataclasses.replace(TINY_VQVAE, codebooks=4)


def test_shapes_and_the_latent_is_the_sum_of_codes():
    torch.manual_seed(0)
    model = VQVAE(RVQ).train()
    x = torch.randn(2, 256, 1) * 0.3
    out = model(x)  # the first batch initialises every stage's codebook
    assert out["tokens"][0].shape == (2, 256 // 8, 4)
    model.eval()
    ids = model.encode(x)[0]
    assert ids.shape == (2, 32, 4) and model.codebooks(0).shape == (4, 16, 8)
    books = model.codebooks(0)
    want = sum(books[c][ids[..., c]] for c in range(4))
    torch.testing.assert_close(model.dequantise(ids, 0), want)
    # Each stage quantised the residual the ones before it left: the first code is the nearest to
    # the encoder output, the second the nearest to what remains.
    h = model.encoders[0](x.permute(0, 2, 1)).permute(0, 2, 1).reshape(-1, 8)
    first = torch.cdist(h, books[0]).argmin(1)
    second = torch.cdist(h - books[0][first], books[1]).argmin(1)
    assert torch.equal(ids[..., 0].reshape(-1), first) and torch.equal(ids[..., 1].reshape(-1), second)
    assert model.decode([ids[..., :2]]).shape == (2, 256, 1)


def test_checkpoint_round_trip_keeps_every_codebook(tmp_path):
    torch.manual_seed(0)
    model = VQVAE(RVQ)
    for stage in model.bottleneck.level_blocks[0].stages:
        stage.k.normal_()
    save_vqvae(model, tmp_path / "rvq.pth.tar")
    again = load_jukebox_vqvae(tmp_path / "rvq.pth.tar")
    assert again.config.codebooks == 4 and torch.equal(again.codebooks(0), model.codebooks(0))
    assert sorted(k for k in official_state_dict(model) if ".k" in k) == [
        f"bottleneck.level_blocks.0.stages.{c}.k" for c in range(4)]
    # A one-codebook VQ-VAE keeps the layout (and the bytes) it always had.
    assert "codebooks" not in TINY_VQVAE.to_dict() and RVQ.to_dict()["codebooks"] == 4


@pytest.mark.slow
def test_each_added_codebook_lowers_the_reconstruction_error(tmp_path, vq_tracks):
    cfg = VQVAETrainConfig(vqvae=RVQ, crop_seconds=0.25, crops_per_track=4, batch_size=4, epochs=12, lr=3e-3,
                           warmup=5)
    ckpt = train_vqvae(vq_tracks, cfg, tmp_path / "rvq", dataset_id="toy", trainer_cfg=TRAINER)
    import soundfile as sf

    errors = []
    for n in range(1, 5):
        rep = VQTokens(ckpt, codebooks=n)
        squared, total = 0.0, 0.0
        for track in vq_tracks["train"]:
            y, _ = sf.read(track.path, dtype="float32")
            ids = rep.tokenizer.encode(y, codebooks=n)
            recon = rep.tokenizer.decode(ids)
            squared += float(np.sum((recon - y[: len(recon)]) ** 2))
            total += float(np.sum(y[: len(recon)] ** 2))
        errors.append(squared / total)
        assert rep.layout.codebooks == n and rep.encode(y).shape == ((len(y) // 8,) if n == 1 else (len(y) // 8, n))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
