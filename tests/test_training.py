"""Tiny overfits: the Lightning modules drive their loss down on every task; a finished stage extends to more epochs."""

from dataclasses import replace

import pytest
import torch
from torch.utils.data import DataLoader

from helpers import TRAINER, Toy
from mirformer.models.encoder import EncoderConfig
from mirformer.models.former import Former
from mirformer.objectives.spectro_masking import SpectroMaskConfig, SpectroObjective
from mirformer.training.fit import fit_stage
from mirformer.datasets.base import Track
from mirformer.tasks.classification import Classification
from mirformer.tasks.regression import Regression
from mirformer.tasks.tagging import Tagging
from mirformer.training.modules import DownstreamModule, OptimConfig, PretrainModule

ENC = EncoderConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.0, max_len=64)


def test_pretraining_loss_falls(tmp_path, recwarn, capsys):
    torch.manual_seed(0)
    data = Toy()
    module = PretrainModule(Former(frontend="projection", encoder=ENC, input_dim=8),
                            objective=SpectroObjective(SpectroMaskConfig(block_frames=2)), optim=OptimConfig(lr=3e-3))
    history, best = fit_stage(module, DataLoader(data, batch_size=8, shuffle=True), DataLoader(data, batch_size=8),
                              stage_dir=tmp_path, epochs=12, monitor="val/loss", mode="min",
                              trainer_cfg=replace(TRAINER, progress=True, log_every_n_steps=50), seed=0)
    losses = [r["train_loss"] for r in history]
    assert len(history) == 12 and losses[-1] < 0.6 * losses[0], losses
    assert best.exists()
    # Lightning's advice on loader workers and the logging interval is silenced; one line ends the stage.
    assert not [w for w in recwarn if "many workers" in str(w.message) or "logging interval" in str(w.message)]
    best_epoch = min(history, key=lambda r: r["val_loss"])
    assert (f"[mirformer] {tmp_path.name}: best val_loss {best_epoch['val_loss']:.4f} at epoch "
            f"{best_epoch['epoch'] + 1} of 12 in ") in capsys.readouterr().out


def test_classifier_overfits_and_a_finished_stage_extends(tmp_path):
    torch.manual_seed(0)
    data = Toy()

    def module():
        return DownstreamModule(Former(frontend="projection", encoder=ENC, input_dim=8, n_classes=3),
                                task=Classification(["a", "b", "c"]), optim=OptimConfig(lr=1e-3), val_targets=data.y)

    loaders = (DataLoader(data, batch_size=8, shuffle=True), DataLoader(data, batch_size=8))
    history, _ = fit_stage(module(), *loaders, stage_dir=tmp_path, epochs=4, monitor="val/macro_f1", mode="max",
                           trainer_cfg=TRAINER, seed=0)
    assert [r["epoch"] for r in history] == [0, 1, 2, 3]
    # Resume the same stage with more epochs: history continues, nothing restarts from zero.
    history, best = fit_stage(module(), *loaders, stage_dir=tmp_path, epochs=15, monitor="val/macro_f1", mode="max",
                              trainer_cfg=TRAINER, seed=0)
    assert [r["epoch"] for r in history] == list(range(15))
    assert history[-1]["train_loss"] < 0.3 * history[0]["train_loss"]
    assert history[-1]["val_macro_f1"] == 1.0
    assert (tmp_path / "logs" / "csv-0" / "metrics.csv").exists()  # the first launch's log is kept
    assert (tmp_path / "logs" / "csv-1" / "metrics.csv").exists()
    assert any((tmp_path / "logs" / "tensorboard").iterdir())


class ToyTargets(Toy):
    """The same inputs with tagging (class c plus c + 1 mod 3) or regression (two linear) targets."""

    def __init__(self, task: str):
        super().__init__()
        if task == "tagging":
            self.y = torch.zeros(len(self.x), 3)
            self.y[torch.arange(len(self.x)), torch.arange(len(self.x)) % 3] = 1.0
            self.y[torch.arange(len(self.x)), (torch.arange(len(self.x)) + 1) % 3] = 1.0
        else:
            c = (torch.arange(len(self.x)) % 3).float()
            self.y = torch.stack([c - 1.0, 1.0 - 0.5 * c], dim=1)

    def __getitem__(self, i):
        return {"x": self.x[i], "pad": torch.zeros(len(self.x[i]), dtype=torch.bool), "y": self.y[i], "track": i}


def test_validating_every_other_epoch_selects_among_validated_epochs(tmp_path, recwarn):
    data = Toy()
    torch.manual_seed(0)
    module = DownstreamModule(Former(frontend="projection", encoder=ENC, input_dim=8, n_classes=3),
                              task=Classification(["a", "b", "c"]), optim=OptimConfig(lr=3e-3), val_targets=data.y)
    history, best = fit_stage(module, DataLoader(data, batch_size=8, shuffle=True), DataLoader(data, batch_size=8),
                              stage_dir=tmp_path, epochs=6, monitor="val/macro_f1", mode="max",
                              trainer_cfg=replace(TRAINER, val_every_n_epochs=2), seed=0)
    assert [r["epoch"] for r in history if "val_macro_f1" in r] == [1, 3, 5]  # no stale scores in between
    assert all("train_loss" in r for r in history)
    validated = [r for r in history if "val_macro_f1" in r]
    chosen = max(validated, key=lambda r: r["val_macro_f1"])  # the first of equal scores
    assert torch.load(best, weights_only=True)["epoch"] == chosen["epoch"]
    assert not [w for w in recwarn if "monitored key" in str(w.message)]


@pytest.mark.parametrize("task", ["tagging", "regression"])
def test_tagging_and_regression_modules_fit(tmp_path, task):
    torch.manual_seed(0)
    data = ToyTargets(task)
    head = Tagging(["a", "b", "c"]) if task == "tagging" else Regression(["arousal", "valence"])
    module = DownstreamModule(Former(frontend="projection", encoder=ENC, input_dim=8, n_classes=head.n_outputs),
                              task=head, optim=OptimConfig(lr=1e-3), val_targets=data.y)
    history, _ = fit_stage(module, DataLoader(data, batch_size=8, shuffle=True), DataLoader(data, batch_size=8),
                           stage_dir=tmp_path, epochs=15, monitor=f"val/{head.monitor}", mode="max",
                           trainer_cfg=TRAINER, seed=0)
    assert history[-1]["train_loss"] < 0.3 * history[0]["train_loss"]
    if task == "tagging":
        assert history[-1]["val_roc_auc"] == 1.0 and "val_pr_auc" in history[-1]
    else:
        assert history[-1]["val_r2"] > 0.9 and "val_mse" in history[-1]


def test_task_targets_from_tracks():
    t = Track("a", "a.wav", "train", labels=("rock", "piano", "not-in-top-n"))
    assert Tagging(["piano", "rock", "jazz"]).target(t).tolist() == [1.0, 1.0, 0.0]
    assert Regression(["x", "y"]).target(Track("b", "b.wav", "train", targets=(0.5, -1.0))).tolist() == [0.5, -1.0]
    task = Classification(["a", "b"])
    task.fit([Track(str(i), "x.wav", "train", label=lab) for i, lab in enumerate("aab")])
    assert task.weights.tolist() == pytest.approx([0.75, 1.5])


def test_compiled_training_compiles_every_part_and_trains_the_same(tmp_path):
    """``trainer.compile`` (here dynamo's ``eager`` backend, which runs the traced graph as it is):
    every call of a part runs compiled and the stage's losses equal the uncompiled stage's."""
    data = Toy()
    histories = {}
    for backend in (None, "eager"):
        torch.manual_seed(0)
        module = PretrainModule(Former(frontend="projection", encoder=ENC, input_dim=8),
                                objective=SpectroObjective(SpectroMaskConfig(block_frames=2)),
                                optim=OptimConfig(lr=3e-3))
        history, _ = fit_stage(module, DataLoader(data, batch_size=8), DataLoader(data, batch_size=8),
                               stage_dir=tmp_path / str(backend), epochs=2, monitor="val/loss", mode="min",
                               trainer_cfg=replace(TRAINER, compile=backend), seed=0)
        compiled = [part._compiled_call_impl is not None for part in module.model.children()]
        assert all(compiled) if backend else not any(compiled)
        histories[backend] = [r[k] for r in history for k in ("train_loss", "val_loss")]
    assert histories["eager"] == pytest.approx(histories[None], rel=1e-6)
