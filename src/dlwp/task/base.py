"""What every book task's LightningModule shares: optimiser, epoch-level metrics, seeding."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection

STAGES = ("train", "val", "test")


def build_optimizer(params, name: str, lr: float, rho: float, eps: float, momentum: float,
                    weight_decay: float, betas: list[float]) -> torch.optim.Optimizer:  # fmt: skip
    """The optimiser a task names; RMSprop's `rho` is torch's `alpha`."""
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=rho, eps=eps, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")


class BookTask(L.LightningModule):
    """A network, a loss and metrics for one problem type; subclasses define the last two.

    Metrics are torchmetrics objects updated every step and logged once per epoch as
    `stage/metric` (`train/loss`, `val/acc`, ...): training figures are the running mean over the
    epoch's batches, as Keras reports them; reported losses include the network's
    regularisation penalty, as Keras' do.

    Args:
        network: the `nn.Module` that maps a batch of inputs to outputs (logits).
        optimizer: keyword arguments of `build_optimizer`.
        seed: the run's seed; each epoch reseeds dropout from `(seed, epoch)` so that a run
            resumed from a checkpoint continues exactly as an uninterrupted one.
        keras_loss: clip probabilities to [1e-7, 1 - 1e-7] inside the loss, as Keras does.
    """

    def __init__(self, network: nn.Module, optimizer: dict[str, Any], seed: int, keras_loss: bool = True) -> None:
        super().__init__()
        self.network = network
        self.optimizer_args = dict(optimizer)
        self.seed = seed
        self.keras_loss = keras_loss
        for stage in STAGES:  # `train_metrics`, `val_loss_mean`, ... (not a ModuleDict: `train` is taken)
            setattr(self, f"{stage}_metrics", self.make_metrics().clone(prefix=f"{stage}/"))
            setattr(self, f"{stage}_loss_mean", MeanMetric())
        self.run_config: dict[str, Any] | None = None
        """The run's config, stored in every checkpoint so `dlwp eval` can rebuild this model."""

    # -- what a problem type defines -----------------------------------------------------------
    def make_metrics(self) -> MetricCollection:
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Network outputs → what the book's model outputs (probabilities, or values)."""
        raise NotImplementedError

    # -- shared mechanics ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def _step(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        outputs = self.network(x)
        loss = self.loss(outputs, y)
        penalty = getattr(self.network, "regularization_loss", None)
        if penalty is not None:
            loss = loss + penalty()
        loss_mean, metrics = getattr(self, f"{stage}_loss_mean"), getattr(self, f"{stage}_metrics")
        with torch.no_grad():
            loss_mean.update(loss.detach(), len(y))
            metrics.update(self.predict(outputs.detach()), y)
        # Metric objects: Lightning computes them once at epoch end, no per-step host sync.
        self.log(f"{stage}/loss", loss_mean, on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step("train", batch)

    def validation_step(self, batch, batch_idx):
        self._step("val", batch)

    def test_step(self, batch, batch_idx):
        self._step("test", batch)

    def predict_step(self, batch, batch_idx):
        return self.predict(self.network(batch[0]))

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(self.seed * 100_003 + 7919 * (self.current_epoch + 1))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint["dlwp"] = {"config": self.run_config}

    def configure_optimizers(self):
        return build_optimizer(self.network.parameters(), **self.optimizer_args)
