"""An interrupted stage resumes where its last checkpoint left it and ends bit for bit where an
uninterrupted run ends: a training stage, a ``compare`` stage, VQ-VAE training.

Each run is interrupted by ``crash_once`` (conftest) one optimiser step into an epoch, so the
rerun must restore weights, optimiser, schedule, history and random state from ``last.ckpt``.
"""

import dataclasses
import json

import pytest
import torch
from torch.utils.data import DataLoader

from conftest import SimulatedCrash
from mirformer.cli import main
from mirformer.experiments.train_vqvae import train_vqvae
from mirformer.representations.vqvae.train_config import VQVAETrainConfig
from mirformer.models.encoder import EncoderConfig
from mirformer.models.former import Former
from mirformer.tasks.classification import Classification
from mirformer.training.fit import fit_stage
from mirformer.training.modules import DownstreamModule, OptimConfig
from helpers import TINY_RUN, TINY_VQVAE, TRAINER, Toy

# Dropout on, so a resumed run that drew other dropout masks would end elsewhere.
ENC = EncoderConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.1, max_len=64)


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _fit(stage_dir, data, epochs=5):
    torch.manual_seed(0)
    model = Former(frontend="projection", encoder=ENC, input_dim=8, n_classes=3)
    # The warmup schedule: a scheduler restarted from step 0 would change every later step.
    module = DownstreamModule(model, task=Classification(["a", "b", "c"]), optim=OptimConfig(lr=None, warmup=10), val_targets=data.y)
    history, _ = fit_stage(module, DataLoader(data, batch_size=5, shuffle=True), DataLoader(data, batch_size=8),
                           stage_dir=stage_dir, epochs=epochs, monitor="val/macro_f1", mode="max",
                           trainer_cfg=TRAINER, seed=0)
    return module, history


def test_interrupted_stage_resumes_to_the_same_weights(tmp_path, crash_once):
    data = Toy()  # 24 items, batch 5: 5 steps per epoch
    reference, ref_history = _fit(tmp_path / "uninterrupted", data)

    starts = crash_once("interrupted", epoch=3)
    with pytest.raises(SimulatedCrash):
        _fit(tmp_path / "interrupted", data)
    last = torch.load(tmp_path / "interrupted" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, 15)  # the end of epoch 2; step 16 is lost
    resumed, history = _fit(tmp_path / "interrupted", data)

    assert starts[1:] == [("interrupted", 0), ("interrupted", 15)]  # the rerun started at step 15
    assert history == ref_history and [r["epoch"] for r in history] == [0, 1, 2, 3, 4]
    _assert_same_tensors(resumed.state_dict(), reference.state_dict())
    a, b = (torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)
            for d in (tmp_path / "uninterrupted", tmp_path / "interrupted"))
    assert a["lr_schedulers"] == b["lr_schedulers"] and a["global_step"] == b["global_step"] == 25
    for sa, sb in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        _assert_same_tensors(sa, sb)
    assert (tmp_path / "interrupted" / "logs" / "csv-1" / "metrics.csv").exists()  # each launch keeps its log


@pytest.mark.slow
@pytest.mark.parametrize("epoch", [0, 2])
def test_interrupted_compare_stage_resumes_to_the_same_results(tmp_path, crash_once, epoch, tiny_corpus):
    """Fine-tuning crashes in its first epoch (nothing saved yet: the rerun starts it afresh, after
    reusing the pretrained encoder) or in its third (the rerun resumes from ``last.ckpt``)."""
    run = ["compare", "--preset", "quickstart", *TINY_RUN, "--quiet", "--set", "setups=[spectroformer-pretrained-finetuned]",
           "--set", "pretrain.epochs=3", "--set", "finetune.epochs=3"]
    assert main([*run, "--out", str(tmp_path / "uninterrupted")]) == 0

    out = tmp_path / "interrupted"
    starts = crash_once("spectroformer-pretrained-finetuned", epoch=epoch)
    with pytest.raises(SimulatedCrash):
        main([*run, "--out", str(out)])
    stage = out / "spectroformer-pretrained-finetuned"
    assert not (stage / "fit.json").exists()
    last = stage / "checkpoints" / "last.ckpt"
    assert last.exists() == (epoch > 0)
    epoch_end = torch.load(last, weights_only=True)["global_step"] if epoch else 0
    before = len(starts)
    assert main([*run, "--out", str(out)]) == 0
    # Pretraining was finished and reused; fine-tuning started afresh or from the end of its epoch 1.
    assert starts[before:] == [("spectroformer-pretrained-finetuned", epoch_end)]

    def setups(run_dir):
        results = json.loads((run_dir / "results.json").read_text())
        for setup in results["setups"].values():
            setup.pop("seconds"), setup.pop("checkpoint"), setup.pop("input")  # paths in the run folders
            setup.pop("cost", None)  # timed: differs between any two runs
        return results["setups"]

    assert setups(out) == setups(tmp_path / "uninterrupted")


@pytest.mark.parametrize("codebooks", [1, 3])
def test_interrupted_vqvae_training_resumes_to_the_same_codebook(tmp_path, vq_tracks, crash_once, codebooks):
    """One codebook per level (Jukebox's) or three residual ones, each with its EMA statistics."""
    cfg = VQVAETrainConfig(vqvae=dataclasses.replace(TINY_VQVAE, codebooks=codebooks), crop_seconds=0.25,
                           crops_per_track=2, batch_size=4, epochs=3, lr=3e-3, warmup=5)
    reference = train_vqvae(vq_tracks, cfg, tmp_path / "uninterrupted", dataset_id="toy", trainer_cfg=TRAINER)
    starts = crash_once("interrupted", epoch=2)
    with pytest.raises(SimulatedCrash):
        train_vqvae(vq_tracks, cfg, tmp_path / "interrupted", dataset_id="toy", trainer_cfg=TRAINER)
    resumed = train_vqvae(vq_tracks, cfg, tmp_path / "interrupted", dataset_id="toy", trainer_cfg=TRAINER)
    assert starts[1:] == [("interrupted", 0), ("interrupted", 6)]  # 12 crops / batch 4 = 3 steps per epoch
    _assert_same_tensors(torch.load(resumed, weights_only=True)["model"],
                         torch.load(reference, weights_only=True)["model"])
    history = [json.loads((d / "history.json").read_text())["history"]
               for d in (tmp_path / "uninterrupted", tmp_path / "interrupted")]
    assert history[0] == history[1]
