"""Learning, not just running: on an easy task every setup of the comparison scores far above
chance on the test split, so a broken input, label or averaging path fails here even where every
other test only checks that numbers are in range.

The task: tones gated on and off, three classes by their duty cycle (always on, half the time, a
fifth of the time), at one of four pitches and random loudnesses and gating rates. Log-mel
frames, log-mel patches and the tokens of a small VQ-VAE trained on the training split all show
it. The floor, macro F1 0.6 on 36 test clips against chance 0.33, is far above what guessing
reaches, yet leaves room for the token models' spread across CPUs (0.75 to 1.0 over four data
and training seeds on one machine; floating-point order differs between CPUs).

Batches of 32 windows downstream and of 8 crops for the VQ-VAE: half the optimiser steps of
batches of 16 and 4 (each step costs about the same on these tiny models), the same spread.
"""

import json

import numpy as np
import pytest
import soundfile as sf

from mirformer.cli import main
from mirformer.experiments.config import SETUPS
from helpers import TINY, TINY_PATCHIFIER

SR = 16000
CLASSES = {"steady": 1.0, "half": 0.5, "sparse": 0.2}  # duty cycles
# Pitches shared by every class and split: the tokens of a tone recur in the test split, so a
# token model is asked to count its silences, not to generalise to tones it never saw.
PITCHES = (220.0, 330.0, 440.0, 660.0)
LEARN = [
    "--set", "pretrain.epochs=3", "--set", "finetune.epochs=16", "--set", "scratch.epochs=16",
    "--set", "pretrain.optim.lr=1e-3", "--set", "finetune.optim.lr=1e-3", "--set", "scratch.optim.lr=1e-3",
    "--set", "finetune.snippets_per_track=4", "--set", "scratch.snippets_per_track=4",
    "--set", "finetune.batch_size=32", "--set", "scratch.batch_size=32",
    "--set", "tokenizer.train={vqvae: {sample_rate: 16000, downs_t: [8], width: 16, depth: 1, emb_width: 16, "
             "l_bins: 64, mu: 0.8}, epochs: 5, crop_seconds: 0.24, crops_per_track: 2, batch_size: 8, lr: 2e-3, "
             "warmup: 10, bandwidth_seconds: 5}",
    "--set", TINY_PATCHIFIER, "--set", "patchifier.stage1={epochs: 3, snippets_per_track: 4}",
    "--set", "patchifier.stage2={epochs: 6, snippets_per_track: 1, optim: {lr: 1e-3}}",
    "--set", "evidence={n_resamples: 200, n_permutations: 200}",
    "--set", "setups=[" + ", ".join([*SETUPS[:-1], "patchifier-pretrained-finetuned", "patchifier-scratch",
                                     "mfcc-linear"]) + "]",
]


def _gated_tones(root):
    rng = np.random.default_rng(0)
    rows = ["path,label,split"]
    t = np.arange(2 * SR) / SR
    for i in range(180):
        label = list(CLASSES)[(i // 5) % 3]
        tone = 0.4 * rng.uniform(0.4, 1.0) * np.sin(2 * np.pi * rng.choice(PITCHES) * t)
        gate = (t * rng.uniform(2, 6) + rng.uniform()) % 1 < CLASSES[label]
        sf.write(root / f"c{i:02d}.wav", tone * gate + 0.005 * rng.standard_normal(len(t)), SR)
        rows.append(f"c{i:02d}.wav,{label},{('train', 'train', 'train', 'validation', 'test')[i % 5]}")
    (root / "clips.csv").write_text("\n".join(rows) + "\n")
    return root / "clips.csv"


@pytest.mark.slow
def test_every_setup_learns_an_easy_task(tmp_path):
    out = tmp_path / "run"
    assert main(["compare", "--preset", "quickstart", *TINY, *LEARN, "--set", "data.name=csv",
                 "--data-root", str(_gated_tones(tmp_path)), "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["counts"] == {"train": 108, "validation": 36, "test": 36}
    scores = {name: setup["splits"]["test"]["macro_f1"] for name, setup in results["setups"].items()}
    assert len(scores) == 9 and min(scores.values()) >= 0.6, scores  # chance: 0.33


@pytest.mark.slow
def test_models_over_several_codebooks_learn_the_easy_task(tmp_path):
    """TokenFormer (one embedding per codebook, summed) and CodebookFormer (the summed vectors) over
    the first 4 codebooks of a residual-VQ tokenizer, pretrained (one head per codebook) and not."""
    out = tmp_path / "run"
    setups = ["tokenformer-pretrained-finetuned", "tokenformer-scratch", "codebookformer-pretrained-finetuned",
              "codebookformer-scratch"]
    assert main(["compare", "--preset", "quickstart", *TINY, *LEARN, "--set", "data.name=csv",
                 "--set", "tokenizer.train.vqvae.codebooks=4", "--set", "tokenizer.codebooks=4",
                 "--set", f"setups=[{', '.join(setups)}]",
                 "--data-root", str(_gated_tones(tmp_path)), "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["representations"]["tokens"]["codebooks"] == 4
    scores = {name: setup["splits"]["test"]["macro_f1"] for name, setup in results["setups"].items()}
    assert list(scores) == setups and min(scores.values()) >= 0.6, scores  # chance: 0.33
