"""Generic LightningModules, one per problem type; `task.problem` in a config picks one."""

from __future__ import annotations

from typing import Any

from torch import nn

from dlwp.task.base import BookTask
from dlwp.task.classification import BinaryTask, MulticlassTask, MultilabelTask
from dlwp.task.regression import RegressionTask

PROBLEMS: dict[str, type[BookTask]] = {
    "binary": BinaryTask,
    "multiclass": MulticlassTask,
    "multilabel": MultilabelTask,
    "regression": RegressionTask,
}


def build_task(problem: str, network: nn.Module, optimizer: dict[str, Any], seed: int, keras_loss: bool) -> BookTask:
    """The LightningModule for `problem` (binary, multiclass, multilabel, regression)."""
    return PROBLEMS[problem](network=network, optimizer=optimizer, seed=seed, keras_loss=keras_loss)


__all__ = ["PROBLEMS", "BookTask", "build_task"]
