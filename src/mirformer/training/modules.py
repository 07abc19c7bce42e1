"""Lightning modules: the network is injected; one ``step`` serves training and validation.

Keys are namespaced by stage (``train/loss``, ``val/macro_f1``). Training stops with an error
naming the step on a non-finite loss.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn as nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from mirformer.errors import MirformerError
from mirformer.tasks import Task
from mirformer.training.optim import OPTIMIZERS, OptimConfig, param_groups
from mirformer.training.strategies import freeze_groups
from mirformer.training.schedule import inverse_sqrt_warmup


class _Base(L.LightningModule):
    """``frozen`` parts (modules of ``model.parts()``) do not train and stay in eval mode: no dropout,
    batch-norm statistics that never move. Lightning's fit loop keeps each submodule's mode as it
    finds it, so they are put in eval mode here, and again whenever the module is set to train."""

    def __init__(self, model: nn.Module, optim: OptimConfig, frozen: list[nn.Module] = ()):
        super().__init__()
        self.model = model
        self.optim = optim
        self.frozen = list(frozen)
        for part in self.frozen:
            part.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        for part in self.frozen:
            part.eval()
        return self

    def on_validation_epoch_start(self):
        # Under DDP buffers are not synchronised at every forward (see fit.make_trainer), so
        # batch-norm statistics drift apart over the ranks: every rank validates with rank 0's,
        # the ones its checkpoint keeps.
        if self.trainer.world_size > 1:
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer, 0)

    def configure_optimizers(self):
        groups = param_groups(self.model, self.optim.weight_decay)
        opt = OPTIMIZERS[self.optim.name](groups, lr=1.0 if self.optim.lr is None else self.optim.lr,
                                          betas=tuple(self.optim.betas), eps=self.optim.eps,
                                          weight_decay=self.optim.weight_decay)
        if self.optim.lr is not None:
            return opt
        d_model, warmup, scale = self.model.encoder.cfg.d_model, self.optim.warmup, self.optim.lr_scale
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: inverse_sqrt_warmup(step, d_model=d_model, warmup=warmup, scale=scale))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise MirformerError(f"non-finite loss {loss.item()} at global step {self.global_step}; "
                                 "lower the learning rate or use bf16 instead of fp16")


class PretrainModule(_Base):
    """Self-supervised pretraining; ``objective(model, batch, generator) -> loss`` is injected.

    Objectives: ``SpectroObjective`` (masked cells, Huber), ``TokenObjective`` (masked ids,
    cross-entropy), Patchifier's ``PatchAutoencoding`` and ``MaskedPatchModelling`` (MSE), each
    computed on the masked positions only. ``frozen`` parts do not train (``freeze_groups``).
    """

    def __init__(self, model: nn.Module, *, objective, optim: OptimConfig, seed: int = 0,
                 frozen: list[nn.Module] = ()):
        super().__init__(model, optim, frozen)
        self.objective = objective
        self.seed = seed

    def training_step(self, batch, batch_idx):
        loss = self.objective(self.model, batch)
        self._check_finite(loss)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["x"]))
        return loss

    def validation_step(self, batch, batch_idx):
        # The same masks every epoch, so validation losses compare across epochs.
        g = torch.Generator(device=batch["x"].device).manual_seed(self.seed + batch_idx)
        loss = self.objective(self.model, batch, g)
        self.log("val/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["x"]),
                 sync_dist=True)


class EpochMetric(Metric):
    """A task's metric kernel (``Task.kernels``) over every output of an epoch: the outputs and
    targets of each step are kept, gathered over DDP ranks, and scored once at the epoch's end."""

    full_state_update = False

    def __init__(self, kernel):
        super().__init__()
        self.kernel = kernel
        self.add_state("outputs", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.outputs.append(outputs.detach().float())
        self.targets.append(targets.detach())

    def compute(self) -> torch.Tensor:
        outputs, targets = dim_zero_cat(self.outputs), dim_zero_cat(self.targets)
        return torch.tensor(self.kernel(targets.cpu().numpy(), outputs.cpu().numpy()))


class DownstreamModule(_Base):
    """A downstream task on random snippets; validation averages window outputs per clip.

    ``task`` (``mirformer.tasks``) gives the loss and the metrics: the monitored one over the
    training snippets of each epoch, every one on the validation clips. ``frozen`` names the
    parameter groups of ``model.parts()`` that do not train (the strategy's, and those only
    pretraining uses); frozen groups stay in eval mode.
    """

    def __init__(self, model: nn.Module, *, task: Task, optim: OptimConfig, val_targets: np.ndarray,
                 frozen: tuple[str, ...] = ()):
        super().__init__(model, optim, freeze_groups(model, frozen))
        self.task = task
        self.val_targets = np.asarray(val_targets)
        self.train_metric = EpochMetric(task.kernels[task.monitor])

    def training_step(self, batch, batch_idx):
        outputs = self.model(batch["x"], batch["pad"])
        loss = self.task.loss(outputs, batch["y"])
        self._check_finite(loss)
        n = len(batch["x"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.train_metric(outputs, batch["y"])
        self.log(f"train/{self.task.monitor}", self.train_metric, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self):
        super().on_validation_epoch_start()
        n_tracks = len(self.val_targets)
        self._val_sum = torch.zeros(n_tracks, self.task.n_outputs, device=self.device)
        self._val_count = torch.zeros(n_tracks, device=self.device)

    def validation_step(self, batch, batch_idx):
        outputs = self.model(batch["x"], batch["pad"]).float()
        self._val_sum.index_add_(0, batch["track"], outputs)
        self._val_count.index_add_(0, batch["track"], torch.ones_like(batch["track"], dtype=torch.float32))

    def on_validation_epoch_end(self):
        total, count = self._val_sum, self._val_count
        if self.trainer.world_size > 1:  # each rank saw some windows: sum them
            total, count = self.all_gather(total).sum(0), self.all_gather(count).sum(0)
        seen = (count > 0).cpu().numpy()
        clips = (total / count.clamp_min(1.0)[:, None]).cpu().numpy()
        m = self.task.metrics(clips[seen], self.val_targets[seen])
        self.log_dict({f"val/{k}": float(m[k]) for k in ("loss", *self.task.metric_names)}, prog_bar=True)
