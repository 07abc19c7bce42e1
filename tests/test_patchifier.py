"""Patchifier: patch slicing, shapes, masking statistics, the two pretraining stages, the four
fine-tuning modes, and the model-kind registry that builds every model."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mirformer.cli import main
from mirformer.kinds import KINDS
from mirformer.models.encoder import EncoderConfig
from mirformer.models.patchifier import (
    Patchifier,
    PatchifierConfig,
    load_patchifier,
    patchify,
    unpatchify,
)
from mirformer.objectives.patch_masking import (
    PatchAutoencoding,
    PatchMaskConfig,
    random_patch_mask,
    rescale_time,
)
from mirformer.tasks.classification import Classification
from mirformer.training.fit import TrainerConfig, fit_stage
from mirformer.training.modules import DownstreamModule, OptimConfig
from helpers import TINY_PATCHIFIER, TINY_RUN

TINY = PatchifierConfig(n_mels=32, filters=4, decoder_width=32,
                        encoder=EncoderConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, max_len=12,
                                              positions="learned", scale_inputs=False))
TRAINER = TrainerConfig(accelerator="cpu", devices=1, progress=False, log_every_n_steps=1)



def test_patchify_and_unpatchify_are_exact_inverses():
    x = torch.randn(3, 5 * 32 + 7, 32)  # 7 frames past the last whole patch
    patches = patchify(x, 32)
    assert patches.shape == (3, 5, 32, 32)
    # A patch is bands x frames: patch 2's column 4 is frame 2 * 32 + 4.
    assert torch.equal(patches[:, 2, :, 4], x[:, 68])
    assert torch.equal(unpatchify(patches), x[:, : 5 * 32])
    assert torch.equal(patchify(unpatchify(patches), 32), patches)


@pytest.mark.parametrize("n_patches", [1, 3, 12])
def test_shapes_through_extractor_bottleneck_and_decoder(n_patches):
    torch.manual_seed(0)
    model = Patchifier(TINY, n_classes=5).eval()
    x = torch.randn(2, n_patches * 32, 32)
    pad = torch.zeros(2, n_patches * 32, dtype=torch.bool)
    pad[1, 32 * n_patches - 10:] = True  # the second window's last patch is partly padding
    h, ppad = model.forward_encoder(x, pad)
    assert h.shape == (2, n_patches + 1, 32) and ppad.shape == (2, n_patches)
    assert ppad[1, -1] and not ppad[0].any()
    assert model.extract(patchify(x, 32)).shape == (2, n_patches, 32)
    assert model.forward_decoder(h[:, 1:].reshape(-1, 32)).shape == (2 * n_patches, 32, 32)
    assert model(x, pad).shape == (2, 5)


def test_padding_patches_change_nothing():
    """Windows of any length: padding patches are neither attended to nor seen by batch norm."""
    torch.manual_seed(0)
    model = Patchifier(TINY, n_classes=2).eval()
    x = torch.randn(1, 3 * 32, 32)
    longer = torch.cat([x, 100 * torch.randn(1, 4 * 32, 32)], dim=1)
    pad = torch.zeros(1, 7 * 32, dtype=torch.bool)
    pad[:, 3 * 32:] = True
    torch.testing.assert_close(model(longer, pad), model(x), atol=1e-5, rtol=1e-5)


def test_mask_covers_the_ratio_at_uniform_positions():
    g = torch.Generator().manual_seed(0)
    ppad = torch.zeros(4000, 8, dtype=torch.bool)
    ppad[2000:, 6:] = True  # half the windows have 6 real patches
    mask = random_patch_mask(ppad, 0.75, g)
    assert (mask.sum(1)[:2000] == 6).all() and (mask.sum(1)[2000:] == round(0.75 * 6)).all()
    assert not (mask & ppad).any()  # padding is never masked
    # Each real position is masked with probability 6/8 (full windows) and 4/6 (shorter ones).
    np.testing.assert_allclose(mask[:2000].float().mean(0).numpy(), 0.75, atol=0.04)
    np.testing.assert_allclose(mask[2000:, :6].float().mean(0).numpy(), 4 / 6, atol=0.04)
    assert random_patch_mask(torch.zeros(1, 2, dtype=torch.bool), 0.75, g).sum() == 1  # one patch is left


def test_rescale_stretches_time_and_pads_the_end():
    x = torch.linspace(0, 1, 100)[None, :, None].repeat(2, 1, 4)
    pad = torch.zeros(2, 100, dtype=torch.bool)
    out, out_pad = rescale_time(x, pad, (0.9, 0.9), torch.Generator().manual_seed(0))
    assert (out_pad.sum(1) == 10).all()  # 90 frames remain
    np.testing.assert_allclose(out[0, :90, 0].numpy(), np.linspace(0, 1, 100)[::1][:100][
        np.round(np.linspace(0, 99, 90)).astype(int)], atol=0.02)


def _patches(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Smooth, structured patches: a few horizontal bands with random levels.
    levels = torch.rand(n, 4, 1, generator=g)
    return levels.repeat_interleave(8, 1).expand(n, 32, 32).transpose(1, 2).contiguous()  # (n, P, F)


def test_stage_one_loss_falls_on_a_tiny_set():
    torch.manual_seed(0)
    model = Patchifier(TINY)
    objective = PatchAutoencoding(PatchMaskConfig(rescale=[], intensity=[]), 32)
    batch = {"x": _patches(), "pad": torch.zeros(24, 32, dtype=torch.bool)}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = objective(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.2 * np.mean(losses[:5]), losses[::10]


def _run(tmp_path, *extra):
    out = tmp_path / "run"
    args = ["compare", "--preset", "quickstart", *TINY_RUN, "--set", TINY_PATCHIFIER, "--out", str(out), "--quiet",
            *extra]
    assert main(args) == 0
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_stage_two_starts_from_stage_one(tmp_path, monkeypatch, tiny_corpus):
    import mirformer.training.fit as fit

    seen = {}

    def record(self, trainer, pl_module):
        seen[trainer.checkpoint_callback.dirpath] = {k: v.clone() for k, v in pl_module.model.state_dict().items()}

    monkeypatch.setattr(fit.History, "on_train_start", record, raising=False)
    out, _ = _run(tmp_path, "--set", "setups=[patchifier-pretrained-finetuned]")
    stage_one = torch.load(out / "patchifier-pretrain-1" / "encoder.pt", weights_only=True)["state_dict"]
    start_two = seen[str(out / "patchifier-pretrain-2" / "checkpoints")]
    assert stage_one.keys() == start_two.keys()
    assert all(torch.equal(stage_one[k], start_two[k]) for k in stage_one)  # weights and batch-norm buffers
    for stage in ("patchifier-pretrain-1", "patchifier-pretrain-2"):  # drawn as each stage ends
        assert (out / stage / "examples.png").exists() and f"({stage}/examples.png)" in (out / "report.md").read_text()


def _frozen_modes_data(n=12):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.randn(n, 64, 32, generator=g) * 0.1
    x[y == 1, :, :8] += 1.0
    return [{"x": x[i], "pad": torch.zeros(64, dtype=torch.bool), "y": int(y[i]), "track": i} for i in range(n)], y


# mode -> the parameter groups that must train
TRAINS = {"linear-probe": {"head"}, "frozen-frontend": {"encoder", "head"}, "frozen-encoder": {"frontend", "head"},
          "full": {"frontend", "encoder", "head"}}


@pytest.mark.parametrize("mode", list(TRAINS))
def test_each_mode_freezes_what_it_says(tmp_path, mode):
    torch.manual_seed(0)
    items, y = _frozen_modes_data()
    model = Patchifier(TINY, n_classes=2)
    kind = KINDS["patchifier"]
    module = DownstreamModule(model, task=Classification(["a", "b"]), optim=OptimConfig(lr=1e-2), val_targets=y,
                              frozen=kind.freezes[mode] + kind.pretraining_only)
    groups = {name: {id(p) for part in parts for p in ([part] if isinstance(part, torch.nn.Parameter)
                                                          else part.parameters())}
              for name, parts in model.parts().items()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == set().union(*(groups[g] for g in TRAINS[mode]))  # decoder and mask token never train
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit_stage(module, DataLoader(items, batch_size=4, shuffle=True), DataLoader(items, batch_size=4),
              stage_dir=tmp_path, epochs=2, monitor="val/macro_f1", mode="max", trainer_cfg=TRAINER, seed=0)
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == TRAINS[mode]  # frozen weights and batch-norm buffers are bit for bit unchanged


def test_checkpoint_round_trip_and_fresh_head(tmp_path):
    torch.manual_seed(0)
    model = Patchifier(TINY, n_classes=3, head="mlp", pooling="mean")
    model.save(tmp_path / "p.pt")
    again = load_patchifier(tmp_path / "p.pt")
    assert again.head_kind == "mlp" and again.pooling == "mean"
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    fresh = load_patchifier(tmp_path / "p.pt", n_classes=5)
    assert fresh.head_kind == "pooler" and fresh.eval()(torch.randn(1, 64, 32)).shape == (1, 5)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items() if not k.startswith("head."))


@pytest.mark.slow
def test_patchifier_comparison_through_the_four_modes(tmp_path, tiny_corpus):
    setups = ["patchifier-linear-probe", "patchifier-frozen-frontend", "patchifier-frozen-encoder", "patchifier-full",
              "patchifier-scratch", "spectroformer-scratch"]
    out, results = _run(tmp_path, "--set", f"setups=[{', '.join(setups)}]")
    assert list(results["setups"]) == ["spectroformer-scratch", "patchifier-scratch", "patchifier-full",
                                       "patchifier-linear-probe", "patchifier-frozen-frontend",
                                       "patchifier-frozen-encoder"]
    # Equal log-mel settings: one feature store read by both models, each with its own scaling.
    assert len(list((Path(os.environ["MIRFORMER_HOME"]) / "features").glob("*/mel-*"))) == 1
    del results["setups"]["spectroformer-scratch"]
    encoder = str(out / "patchifier-pretrain-2" / "encoder.pt")
    for name, setup in results["setups"].items():
        # A pretrained setup reads its encoder checkpoint alone; the scratch run the config's input.
        assert setup["model"] == "patchifier" and setup["input"] == ("patchifier-mel" if "scratch" in name else encoder)
        assert setup["splits"]["test"]["n"] == results["counts"]["test"]
        if name != "patchifier-scratch":
            assert setup["strategy"] == name.removeprefix("patchifier-") and setup["pretrained"]
            assert list(setup["pretrain_stages"]) == ["pretrain-1", "pretrain-2"]
    # One pretraining, shared by the four modes; evaluation reads whole clips (3 s: 5 patches of 8).
    assert sorted(p.name for p in out.glob("patchifier-pretrain-*")) == ["patchifier-pretrain-1", "patchifier-pretrain-2"]
    mel = results["representations"]["patchifier-mel"]
    assert (mel["window_frames"], mel["eval_window_frames"]) == (64, 256)
    report = (out / "report.md").read_text()
    assert "## Fine-tuning modes: patchifier" in report and (out / "modes_patchifier.png").exists()
    assert "| frozen-encoder |" in report and "## Pretraining reconstructions" in report
