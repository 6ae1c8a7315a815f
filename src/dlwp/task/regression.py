"""Regression: mean squared error loss, mean absolute error metric (Keras `mae`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError, MetricCollection

from dlwp.task.base import BookTask


class RegressionTask(BookTask):
    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"mae": MeanAbsoluteError()})

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.reshape(targets.shape), targets)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.squeeze(-1)
