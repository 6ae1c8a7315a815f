"""LightningModules of book tasks; a config names one with `task._target_` (`task.problem` alone
means `SupervisedTask`)."""

from __future__ import annotations

from dlwp.task.base import BookTask
from dlwp.task.gan import GANTask
from dlwp.task.supervised import MultiOutputTask, SupervisedTask
from dlwp.task.vae import VAETask

__all__ = ["BookTask", "GANTask", "MultiOutputTask", "SupervisedTask", "VAETask"]
