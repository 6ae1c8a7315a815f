"""Per-epoch metric history: `metrics.csv` in the run directory, carried inside checkpoints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from dlwp.record import write_metrics_csv


class EpochHistory(Callback):
    """One row per epoch (`epoch`, `train/*`, `val/*`, `quality/*`, `time/epoch_s`), rewritten after
    each epoch.

    The history is stored in every checkpoint, so a resumed run's `metrics.csv` holds all its
    epochs, not only those after the resume. `on_epoch` is called with each finished row (used by
    the run record).
    """

    def __init__(self, path: Path, on_epoch=None, on_start=None) -> None:
        self.path, self.on_epoch, self.on_start = path, on_epoch, on_start
        self.rows: list[dict[str, Any]] = []
        self._t0 = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.on_start is not None:
            self.on_start()  # the run's start-up ends here (dlwp.startup)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, Any] = {"epoch": trainer.current_epoch + 1}
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.startswith(("train/", "val/", "quality/", "lr/")):  # lr/<optimiser>: a scheduled rate
                row[key] = round(float(value), 7)
        row["time/epoch_s"] = round(time.perf_counter() - self._t0, 4)
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            write_metrics_csv(self.path, self.rows)
        if self.on_epoch is not None:
            self.on_epoch(row)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))
