"""Fine-tuning strategies freeze what they say; heads and pooling behave and round-trip."""

import pytest
import torch
from torch.utils.data import DataLoader

from mirformer.errors import ConfigError
from mirformer.models.encoder import EncoderConfig
from mirformer.models.former import Former, load_former
from mirformer.models.heads import MLPHead
from mirformer.tasks.classification import Classification
from mirformer.training.fit import TrainerConfig, fit_stage
from mirformer.training.modules import DownstreamModule, OptimConfig
from mirformer.training.strategies import FREEZES, head_for

ENC = EncoderConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.1, max_len=64)
TRAINER = TrainerConfig(accelerator="cpu", devices=1, progress=False, log_every_n_steps=1)


def _data(n=16):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 12, 8, generator=g)
    y = torch.arange(n) % 2
    x[y == 1, :, :2] += 2.0
    return [{"x": x[i], "pad": torch.zeros(12, dtype=torch.bool), "y": int(y[i]), "track": i} for i in range(n)], y


def _train(strategy, tmp_path, pooling="cls"):
    torch.manual_seed(0)
    items, y = _data()
    model = Former(frontend="projection", encoder=ENC, input_dim=8, n_classes=2, head=head_for(strategy), pooling=pooling)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    module = DownstreamModule(model, task=Classification(["a", "b"]), optim=OptimConfig(lr=1e-2), val_targets=y.numpy(),
                              frozen=FREEZES[strategy] + ("decoder",))
    fit_stage(module, DataLoader(items, batch_size=8, shuffle=True), DataLoader(items, batch_size=8),
              stage_dir=tmp_path, epochs=2, monitor="val/macro_f1", mode="max", trainer_cfg=TRAINER, seed=0)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    return module, changed


def _prefixes(keys):
    return {k.split(".")[0] for k in keys}


def test_linear_probe_trains_only_the_head(tmp_path):
    module, changed = _train("linear-probe", tmp_path)
    assert _prefixes(changed) == {"head"}
    module.train()
    assert not module.model.encoder.training and not module.model.frontend.training  # no dropout in frozen parts
    assert module.model.head.training


def test_mlp_probe_has_an_mlp_head_and_frozen_encoder(tmp_path):
    module, changed = _train("mlp-probe", tmp_path, pooling="mean")
    assert isinstance(module.model.head, MLPHead) and _prefixes(changed) == {"head"}


def test_frozen_frontend_trains_encoder_and_head(tmp_path):
    _, changed = _train("frozen-frontend", tmp_path)
    assert _prefixes(changed) == {"encoder", "head"}


def test_full_fine_tuning_trains_everything_but_the_pretraining_head(tmp_path):
    _, changed = _train("full", tmp_path)
    assert _prefixes(changed) == {"frontend", "encoder", "head"}


def test_mean_pooling_ignores_padding():
    torch.manual_seed(0)
    model = Former(frontend="projection", encoder=ENC, input_dim=8, n_classes=3, pooling="mean").eval()
    x = torch.randn(1, 10, 8)
    pad = torch.zeros(1, 10, dtype=torch.bool)
    pad[0, 6:] = True
    other = x.clone()
    other[0, 6:] = 100.0
    assert torch.allclose(model(x, pad), model(other, pad), atol=1e-5)
    assert torch.allclose(model(x, pad), model(x[:, :6]), atol=1e-5)


def test_head_and_pooling_round_trip(tmp_path):
    model = Former(frontend="projection", encoder=ENC, input_dim=8, n_classes=0)
    model.save(tmp_path / "enc.pt")
    probe = load_former(tmp_path / "enc.pt", n_classes=4, head="mlp", pooling="mean")
    assert isinstance(probe.head, MLPHead) and probe.pooling == "mean"
    probe.save(tmp_path / "probe.pt")
    again = load_former(tmp_path / "probe.pt")
    assert again.pooling == "mean" and isinstance(again.head, MLPHead)
    for k, v in probe.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])


def test_bad_strategy_and_pooling_are_config_errors():
    from mirformer.experiments.presets import resolve

    with pytest.raises(ConfigError, match="strategy"):
        resolve("quickstart", {"finetune": {"strategy": "lora"}})
    with pytest.raises(ConfigError, match="pooling"):
        resolve("quickstart", {"finetune": {"pooling": "max"}})
    with pytest.raises(ConfigError, match="warmup schedule"):
        resolve("quickstart", {"scratch": {"grid": {"lr": [1e-4]}}})
