"""Classification with Keras' loss and accuracy definitions (binary, multiclass, multilabel)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlwp.task.base import BookTask
from dlwp.task.metrics import Accuracy

EPS = 1e-7  # Keras' epsilon: probabilities are clipped to [EPS, 1 - EPS] inside the loss
LOG_EPS, LOG_1M_EPS = math.log(EPS), math.log1p(-EPS)


class MulticlassTask(BookTask):
    """Softmax + categorical cross-entropy; accuracy = argmax matches the label (Keras `acc`)."""

    def make_metrics(self) -> dict:
        return {"acc": Accuracy("multiclass")}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.keras_loss:
            return F.cross_entropy(outputs, targets)
        # Keras: -log(clip(p_y, eps, 1 - eps)) = clamp(-log p_y, -log(1 - eps), -log eps), with no
        # gradient where it clips; computed on the fused cross-entropy's per-sample values.
        return F.cross_entropy(outputs, targets, reduction="none").clamp(-LOG_1M_EPS, -LOG_EPS).mean()

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.softmax(dim=-1)


class BinaryTask(BookTask):
    """Sigmoid + binary cross-entropy on a single output; accuracy = round(p) == y (Keras)."""

    def make_metrics(self) -> dict:
        return {"acc": Accuracy("binary")}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return binary_loss(outputs.reshape(targets.shape), targets.float(), self.keras_loss)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.sigmoid().reshape(-1)


class MultilabelTask(BookTask):
    """Independent sigmoids; accuracy = mean over all (sample, label) pairs, as Keras computes it."""

    def make_metrics(self) -> dict:
        return {"acc": Accuracy("multilabel")}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return binary_loss(outputs, targets.float(), self.keras_loss)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.sigmoid()


def binary_loss(logits: torch.Tensor, targets: torch.Tensor, keras_clip: bool) -> torch.Tensor:
    """BCE from logits; with `keras_clip`, p = sigmoid(z) is clipped as Keras does first.

    Clipping stops the gradient of samples the model is already confidently right (or wrong)
    about beyond 1e-7, which is what the book's runs did.
    """
    if not keras_clip:
        return F.binary_cross_entropy_with_logits(logits, targets)
    log_p = F.logsigmoid(logits).clamp(LOG_EPS, LOG_1M_EPS)
    log_1mp = F.logsigmoid(-logits).clamp(LOG_EPS, LOG_1M_EPS)
    return -(targets * log_p + (1 - targets) * log_1mp).mean()
