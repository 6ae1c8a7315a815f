"""What every book task's LightningModule shares: optimiser, epoch-level metrics, seeding."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric

from dlwp.task.metrics import BatchMean

STAGES = ("train", "val", "test")


def build_optimizer(params, name: str, lr: float, rho: float, eps: float, momentum: float,
                    weight_decay: float, betas: list[float], clipnorm: float | None = None,
                    clipvalue: float | None = None) -> torch.optim.Optimizer:  # fmt: skip
    """The optimiser a task names; RMSprop's `rho` is torch's `alpha`. (Clipping is applied by
    `BookTask.training_step`, like Keras' optimizer arguments of the same names.)"""
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
        self.clipnorm, self.clipvalue = (
            self.optimizer_args.pop("clipnorm", None),
            self.optimizer_args.pop("clipvalue", None),
        )
        self.automatic_optimization = False  # see training_step
        self._direct = False
        self.seed = seed
        self.keras_loss = keras_loss
        # A network may add a penalty to the loss (Keras' kernel_regularizer) by defining
        # `regularization_loss()`; it returns None when it has none, so the step skips it.
        penalty = getattr(network, "regularization_loss", None)
        self.regularized = penalty is not None and penalty() is not None
        # `train_metrics`, `val_metrics`, ...: {"loss": ..., "acc": ...} per stage (one ModuleDict
        # keyed by stage is impossible: `train` is a Module method).
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", nn.ModuleDict({"loss": BatchMean(), **self.make_metrics()}))
        self.run_config: dict[str, Any] | None = None
        """The run's config, stored in every checkpoint so `dlwp eval` can rebuild this model."""

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets `_current_fx_name` around every hook call, ~40 times a training step;
        # nn.Module's generic __setattr__ costs microseconds each time. It is a plain attribute.
        if name == "_current_fx_name":
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    # -- what a problem type defines -----------------------------------------------------------
    def make_metrics(self) -> dict[str, Metric]:
        """Metrics besides the loss, by name (`acc` → logged as `train/acc`, `val/acc`, ...)."""
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Network outputs → what the book's model outputs (probabilities, or values)."""
        raise NotImplementedError

    # -- shared mechanics ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def _step(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        outputs = self.network(x)
        loss = self.loss(outputs, y)
        if self.regularized:
            loss = loss + self.network.regularization_loss()
        metrics = getattr(self, f"{stage}_metrics")
        with torch.no_grad():
            for name, metric in metrics.items():  # metrics read raw outputs (logits): no softmax
                update = getattr(metric, "fast_update", metric.update)  # see LeanMetric
                update(loss.detach(), len(y)) if name == "loss" else update(outputs.detach(), y)
        if batch_idx == 0:
            # Logging a Metric object registers it: Lightning calls its compute() once at epoch end,
            # over every update of the epoch. Once per epoch is enough, and `self.log` on every
            # step would cost more than the step itself for the book's small networks.
            for name, metric in metrics.items():
                self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=stage != "test")
        return loss

    def training_step(self, batch, batch_idx):
        """One optimiser step per batch; `batch` may be a list of batches (`data.batches_per_call`).

        Manual optimisation makes that possible and keeps the step explicit: zero the gradients,
        backward, clip as Keras' `clipnorm`/`clipvalue`, step. On one process without a gradient
        scaler the step talks to torch directly (`_direct`): Lightning's backward and optimiser
        wrappers call several callback hooks per step, which cost as much as a whole step of the
        book's small networks; with DDP or 16-bit AMP Lightning's own path is used.
        """
        optimizer = self.optimizers()
        for i, one in enumerate(batch if isinstance(batch, list) else [batch]):
            loss = self._step("train", one, batch_idx + i)
            if self._direct:
                raw = optimizer.optimizer
                raw.zero_grad(set_to_none=True)
                loss.backward()
                self._clip_direct()
                optimizer._on_before_step()  # Lightning's step counter (trainer.global_step) and profiler
                raw.step()
                optimizer._on_after_step()
                continue
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            if self.clipnorm is not None:
                self.clip_gradients(optimizer, gradient_clip_val=self.clipnorm, gradient_clip_algorithm="norm")
            if self.clipvalue is not None:
                self.clip_gradients(optimizer, gradient_clip_val=self.clipvalue, gradient_clip_algorithm="value")
            optimizer.step()

    def _clip_direct(self) -> None:
        if self.clipnorm is not None:
            nn.utils.clip_grad_norm_(self.network.parameters(), self.clipnorm)
        if self.clipvalue is not None:
            nn.utils.clip_grad_value_(self.network.parameters(), self.clipvalue)

    def on_train_start(self) -> None:
        precision = str(self.trainer.precision)
        self._direct = self.trainer.world_size == 1 and precision not in ("16-mixed", "16", "16-true")

    def validation_step(self, batch, batch_idx):
        self._step("val", batch, batch_idx)

    def test_step(self, batch, batch_idx):
        self._step("test", batch, batch_idx)

    def predict_step(self, batch, batch_idx):
        return self.predict(self.network(batch[0]))

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(self.seed * 100_003 + 7919 * (self.current_epoch + 1))

    def on_train_epoch_end(self) -> None:
        """Stop a diverged run at the end of the epoch it diverged in, with a message that says so:
        the epochs after a NaN loss learn nothing, and a sweep must see the trial fail."""
        loss = float(self.train_metrics["loss"].compute())  # the value Lightning logs (cached)
        if not math.isfinite(loss):
            from dlwp.errors import TrainingDivergedError

            raise TrainingDivergedError(
                f"train/loss is {loss} at epoch {self.current_epoch + 1}: the optimisation diverged. "
                "Lower task.optimizer.lr, or clip gradients (task.optimizer.clipnorm)."
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint["dlwp"] = {"config": self.run_config}

    def configure_optimizers(self):
        return build_optimizer(self.network.parameters(), **self.optimizer_args)
