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
    """The LightningModule for `problem`, sized from the network's output layer."""
    cls = PROBLEMS[problem]
    kwargs: dict[str, Any] = {"network": network, "optimizer": optimizer, "seed": seed, "keras_loss": keras_loss}
    outputs = getattr(network, "out_features", None)
    if cls in (MulticlassTask, MultilabelTask) and not isinstance(outputs, int):
        raise ValueError(f"{type(network).__name__} must set `self.out_features` (its number of outputs)")
    if cls is MulticlassTask:
        kwargs["num_classes"] = outputs
    elif cls is MultilabelTask:
        kwargs["num_labels"] = outputs
    return cls(**kwargs)


__all__ = ["PROBLEMS", "BookTask", "build_task"]
