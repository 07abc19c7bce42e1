"""Lightning modules: the network is injected; one ``step`` serves training and validation.

Keys are namespaced by stage (``train/loss``, ``val/macro_f1``). Training stops with an error
naming the step on a non-finite loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import torch
from torchmetrics.classification import MulticlassF1Score

from mirformer.errors import MirformerError
from mirformer.models.former import Former
from mirformer.tasks import Task
from mirformer.training.strategies import freeze
from mirformer.training.schedule import inverse_sqrt_warmup


@dataclass
class OptimConfig:
    lr: float | None = None  # a static rate (fine-tuning); None: the warmup / inverse-sqrt schedule
    lr_scale: float = 1.0  # multiplies the scheduled rate
    warmup: int = 8000  # steps
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0


class _Base(L.LightningModule):
    def __init__(self, model: Former, optim: OptimConfig):
        super().__init__()
        self.model = model
        self.optim = optim

    def configure_optimizers(self):
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(trainable, lr=1.0 if self.optim.lr is None else self.optim.lr,
                               betas=tuple(self.optim.betas), eps=self.optim.eps, weight_decay=self.optim.weight_decay)
        if self.optim.lr is not None:
            return opt
        d_model, warmup, scale = self.model.encoder_cfg.d_model, self.optim.warmup, self.optim.lr_scale
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: inverse_sqrt_warmup(step, d_model=d_model, warmup=warmup, scale=scale))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise MirformerError(f"non-finite loss {loss.item()} at global step {self.global_step}; "
                                 "lower the learning rate or use bf16 instead of fp16")


class PretrainModule(_Base):
    """Masked self-supervised pretraining; ``objective(model, batch, generator) -> loss`` is injected.

    Objectives: ``SpectroObjective`` (masked cells, Huber) and ``TokenObjective`` (masked ids,
    cross-entropy), both computed on the masked positions only.
    """

    def __init__(self, model: Former, *, objective, optim: OptimConfig, seed: int = 0):
        super().__init__(model, optim)
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


class DownstreamModule(_Base):
    """A downstream task on random snippets; validation averages window outputs per clip.

    ``task`` (``mirformer.tasks``) gives the loss and the clip-level metrics; ``strategy``
    (``mirformer.training.strategies``) freezes parts of the model, which then stay in eval mode.
    """

    def __init__(self, model: Former, *, task: Task, optim: OptimConfig, n_val_tracks: int,
                 val_targets: torch.Tensor, strategy: str = "full"):
        super().__init__(model, optim)
        self.task = task
        self.frozen = freeze(model, strategy)
        self.register_buffer("val_targets", val_targets, persistent=False)
        self.n_val_tracks = n_val_tracks
        self.train_f1 = MulticlassF1Score(num_classes=task.n_outputs, average="macro") \
            if task.kind == "classification" else None

    def train(self, mode: bool = True):
        super().train(mode)
        for part in self.frozen:
            part.eval()
        return self

    def training_step(self, batch, batch_idx):
        outputs = self.model(batch["x"], batch["pad"])
        loss = self.task.loss(outputs, batch["y"])
        self._check_finite(loss)
        n = len(batch["x"])
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        if self.train_f1 is not None:
            self.train_f1(outputs.argmax(-1), batch["y"])
            self.log("train/macro_f1", self.train_f1, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self):
        self._val_sum = torch.zeros(self.n_val_tracks, self.task.n_outputs, device=self.device)
        self._val_count = torch.zeros(self.n_val_tracks, device=self.device)

    def validation_step(self, batch, batch_idx):
        outputs = self.model(batch["x"], batch["pad"]).float()
        self._val_sum.index_add_(0, batch["track"], outputs)
        self._val_count.index_add_(0, batch["track"], torch.ones_like(batch["track"], dtype=torch.float32))

    def on_validation_epoch_end(self):
        total, count = self._val_sum, self._val_count
        if self.trainer.world_size > 1:  # each rank saw some windows: sum them
            total, count = self.all_gather(total).sum(0), self.all_gather(count).sum(0)
        seen = count > 0
        m = self.task.metrics(total[seen] / count[seen, None], self.val_targets[seen])
        names = ("loss",) + self.task.metric_names
        self.log_dict({f"val/{k}": m[k] for k in names}, prog_bar=True)
