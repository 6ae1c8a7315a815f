"""A progress bar that redraws a few times a second instead of on every step, and says when a
training step is a call of several batches."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar


class ThrottledProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, redrawn at most every `min_interval` seconds.

    Lightning's bars redraw on every batch; for the book's small networks (a few ms a step) that
    alone slowed MNIST epochs by more than half in our benchmark (docs/PERFORMANCE.md).
    """

    def __init__(self, min_interval: float = 0.5) -> None:
        super().__init__(refresh_rate=1)
        self.min_interval = min_interval
        self._last_draw = 0.0

    def _should_update(self, current: int, total: int | float) -> bool:
        if not self.is_enabled:
            return False
        now = time.monotonic()
        if current == total or now - self._last_draw >= self.min_interval:
            self._last_draw = now
            return True
        return False

    def on_train_epoch_start(self, trainer, *args: Any) -> None:
        """With `data.batches_per_call` > 1 Lightning counts calls of that many batches: the bar's
        total, its rate and `trainer.limit_train_batches` are in calls. The bar says so, since
        196/196 for the char-LSTM's 1,565 batches reads as a wrong dataset size otherwise."""
        super().on_train_epoch_start(trainer, *args)
        group = getattr(trainer.train_dataloader, "group", 1)
        if group > 1 and self.train_progress_bar is not None:
            self.train_progress_bar.unit = "call"
            self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch} ({group} batches a call)")
