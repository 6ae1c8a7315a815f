"""External experiment trackers; every run also writes its own `metrics.csv` (see callbacks)."""

from __future__ import annotations

from pathlib import Path


def build_loggers(cfg, run_dir: Path) -> list:
    loggers = []
    if cfg.logger.csv:
        from lightning.pytorch.loggers import CSVLogger

        loggers.append(CSVLogger(save_dir=run_dir, name="lightning_logs", version=""))
    if cfg.logger.tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=run_dir, name="tensorboard", version=""))
    return loggers
