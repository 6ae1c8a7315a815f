"""Early stopping with Keras' `restore_best_weights` (book 7.2.1's `EarlyStopping`)."""

from __future__ import annotations

import copy

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping


class EarlyStoppingRestoringBest(EarlyStopping):
    """Lightning's `EarlyStopping`, plus: with `restore_best`, a copy of the weights (on the CPU) is
    kept at each improvement of the monitored metric, and put back when training stops early, so
    that the test, and everything after it, uses the best epoch's network (as Keras does)."""

    def __init__(self, *args, restore_best: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.restore_best = restore_best
        self.best_epoch: int | None = None
        self.restored = False
        self._best_value: float | None = None
        self._best_weights: dict | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._keep_if_improved(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._keep_if_improved(trainer, pl_module)

    def _keep_if_improved(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(self.best_score)
        if value != self._best_value:
            self._best_value, self.best_epoch = value, trainer.current_epoch + 1
            if self.restore_best:
                state = pl_module.network.state_dict()
                self._best_weights = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.restore_best and self.stopped_epoch > 0 and self._best_weights is not None:
            pl_module.network.load_state_dict(copy.deepcopy(self._best_weights))
            self.restored = True

    def summary(self) -> dict:
        """For the run record."""
        stopped = self.stopped_epoch + 1 if self.stopped_epoch else None  # Lightning counts epochs from 0
        return {"monitor": self.monitor, "stopped_epoch": stopped, "best_epoch": self.best_epoch,
                "restored": self.restored}  # fmt: skip
