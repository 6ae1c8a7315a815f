"""External experiment trackers; every run also writes its own `metrics.csv` (see callbacks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build_loggers(cfg, run_dir: Path, run_config: dict[str, Any]) -> tuple[list, Any, dict[str, Any] | None]:
    """(Lightning loggers, the W&B logger or None, W&B status for the run record or None)."""
    loggers: list = []
    if cfg.logger.csv:
        from lightning.pytorch.loggers import CSVLogger

        loggers.append(CSVLogger(save_dir=run_dir, name="lightning_logs", version=""))
    if cfg.logger.tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=run_dir, name="tensorboard", version=""))
    wandb_logger, wandb_info = None, None
    from dlwp.logger.wandb import wandb_mode

    if cfg.logger.wandb.enabled and wandb_mode(cfg.logger.wandb) != "disabled":
        from dlwp.logger.wandb import build_wandb_logger

        wandb_logger, wandb_info = build_wandb_logger(cfg, run_dir, run_config)
        if wandb_logger is not None:
            loggers.append(wandb_logger)
    return loggers, wandb_logger, wandb_info
