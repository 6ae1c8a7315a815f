"""Build the `lightning.Trainer` from the typed `trainer` config node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import OmegaConf


def trainer_kwargs(trainer_cfg) -> dict[str, Any]:
    """The config as Trainer keyword arguments; `None` means "Lightning's default"."""
    kwargs = OmegaConf.to_container(trainer_cfg, resolve=True)
    return {k: v for k, v in kwargs.items() if v is not None}


def build_trainer(cfg, run_dir: Path, callbacks: list, loggers: list) -> L.Trainer:
    return L.Trainer(
        default_root_dir=run_dir,
        callbacks=callbacks,
        logger=loggers or False,
        **trainer_kwargs(cfg.trainer),
    )
