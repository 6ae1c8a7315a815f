"""Regression: mean squared error loss, mean absolute error metric (Keras `mae`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlwp.task.base import BookTask
from dlwp.task.metrics import MeanAbsoluteError


class RegressionTask(BookTask):
    def make_metrics(self) -> dict:
        return {"mae": MeanAbsoluteError()}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.reshape(targets.shape), targets)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.squeeze(-1)
