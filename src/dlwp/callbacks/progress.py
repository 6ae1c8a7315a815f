"""A progress bar that redraws a few times a second instead of on every step."""

from __future__ import annotations

import time

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
