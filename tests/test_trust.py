"""A VQ-VAE checkpoint that holds pickled objects (as OpenAI's ``hps`` may: numpy scalars) is
refused by every command that reads one unless the user says they trust it, and then works.

The tokenizer is a real VQ-VAE, trained here for one epoch on tones, re-saved with a numpy
scalar in its ``hps``.
"""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from mirformer.cli import main
from mirformer.datasets.base import Track
from mirformer.experiments.train_vqvae import train_vqvae
from mirformer.representations.vqvae.train_config import VQVAETrainConfig
from mirformer.representations.vqvae.config import VQVAEConfig
from helpers import TINY_RUN, TRAINER

SR = 16000
# One level, hop 256 at 16 kHz: tokens at the rate of TINY_RUN's mel frames.
VQ = VQVAEConfig(sample_rate=SR, levels=1, downs_t=(8,), strides_t=(2,), emb_width=8, l_bins=32, width=8, depth=1,
                 multipliers=(1,))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """(plain, pickled) checkpoints of one tiny trained VQ-VAE, and a tone to tokenize."""
    root = tmp_path_factory.mktemp("vq")
    t = np.arange(2 * SR) / SR
    tracks = {"train": [], "validation": []}
    for i, freq in enumerate([220.0, 330.0, 440.0, 660.0]):
        sf.write(root / f"t{i}.wav", 0.4 * np.sin(2 * np.pi * freq * t), SR)
        split = "train" if i < 3 else "validation"
        tracks[split].append(Track(f"t{i}", root / f"t{i}.wav", split))
    cfg = VQVAETrainConfig(vqvae=VQ, crop_seconds=0.5, crops_per_track=2, batch_size=2, epochs=1, warmup=2)
    plain = train_vqvae(tracks, cfg, root / "trained", dataset_id="tones", trainer_cfg=TRAINER)
    ckpt = torch.load(plain, weights_only=True)
    ckpt["hps"]["l_mu"] = np.float64(ckpt["hps"]["l_mu"])  # a pickled global, as in Jukebox's released file
    pickled = root / "pickled.pth.tar"
    torch.save(ckpt, pickled)
    return plain, pickled, root / "t0.wav"


def test_extract_tokens_refuses_a_pickled_checkpoint_without_the_flag(checkpoints, tmp_path, capsys):
    plain, pickled, audio = checkpoints
    assert main(["extract", "tokens", str(audio), "--vqvae", str(pickled), "--level", "0",
                 "--out", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert "holds pickled Python objects" in err and "--trust-checkpoint" in err and "numpy" in err
    assert not (tmp_path / "no" / "t0.npy").exists()
    assert main(["extract", "tokens", str(audio), "--vqvae", str(pickled), "--level", "0", "--trust-checkpoint",
                 "--out", str(tmp_path / "yes")]) == 0
    assert main(["extract", "tokens", str(audio), "--vqvae", str(plain), "--level", "0",
                 "--out", str(tmp_path / "plain")]) == 0
    tokens = np.load(tmp_path / "yes" / "t0.npy")
    assert tokens.shape == (2 * SR // 256,) and np.array_equal(tokens, np.load(tmp_path / "plain" / "t0.npy"))


def test_probe_invariance_refuses_then_probes_the_real_tokenizer(checkpoints, tmp_path, capsys):
    _, pickled, audio = checkpoints
    run = ["probe-invariance", str(audio), "--vqvae", str(pickled), "--level", "0", "--out", str(tmp_path),
           "--n-fft", "512", "--hop", "256", "--n-mels", "32"]
    assert main(run) == 2 and "--trust-checkpoint" in capsys.readouterr().err
    assert main([*run, "--trust-checkpoint"]) == 0
    df = pd.read_csv(tmp_path / "invariance.csv").set_index("transform")
    assert df.loc["identity", "token_agreement"] == 1.0 and df.loc["identity", "vector_distance"] == 0.0
    assert (df["n_tokens"] >= 2 * SR // 256 - 1).all()
    assert (df.drop(index="identity")["token_agreement"] < 1.0).any()  # a real encoder hears some change


@pytest.mark.slow
def test_compare_refuses_a_pickled_tokenizer_until_trusted(checkpoints, tmp_path, capsys, tiny_corpus):
    _, pickled, _ = checkpoints
    run = ["compare", "--preset", "quickstart", *TINY_RUN, "--set", f"tokenizer.checkpoint={pickled}",
           "--set", "setups=[tokenformer-scratch]", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(run) == 2
    assert "--set tokenizer.trust_checkpoint=true" in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.json").exists()
    assert main([*run, "--set", "tokenizer.trust_checkpoint=true"]) == 0
    tokenizer = json.loads((tmp_path / "run" / "results.json").read_text())["representations"]["tokens"]["about"]
    assert tokenizer["source"] == "from the given checkpoint" and tokenizer["checkpoint"] == str(pickled)
    assert (tokenizer["hop_length"], tokenizer["vocab_size"], tokenizer["window_frames"]) == (256, 32, 48)
