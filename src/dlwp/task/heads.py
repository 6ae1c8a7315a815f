"""One output of a model: its loss, its Keras metrics, its predictions and its trivial baselines.

A single-output task has one head; a multi-output task (book 7.1.3) has one per named output.
Each problem type is one small class here, so a new one (say, a ranking loss) is a new class, not
a branch in every function that handles outputs.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from dlwp.errors import ConfigError
from dlwp.task.metrics import Accuracy, MeanAbsoluteError

EPS = 1e-7  # Keras' epsilon: probabilities are clipped to [EPS, 1 - EPS] inside the loss
LOG_EPS, LOG_1M_EPS = math.log(EPS), math.log1p(-EPS)


class Head:
    """Loss, metrics, predictions and baselines of one output.

    Args:
        keras_loss: clip probabilities to [1e-7, 1 - 1e-7] inside the loss, as Keras 2.0.8 does.
        loss: one of the head's `LOSSES` (the first is the default).
    """

    problem: ClassVar[str]
    LOSSES: ClassVar[tuple[str, ...]]

    def __init__(self, keras_loss: bool = True, loss: str | None = None) -> None:
        self.keras_loss = keras_loss
        self.loss_name = loss or self.LOSSES[0]
        if self.loss_name not in self.LOSSES:
            raise ConfigError(f"loss {loss!r} does not fit a {self.problem} output; choose from {list(self.LOSSES)}")

    @property
    def loss_ceiling(self) -> float | None:
        """The largest value the loss can take per sample (Keras' clipped cross-entropies: -log 1e-7
        = 16.1), or None when it is unbounded. A mean loss near it means confident, wrong
        predictions on most samples: a diverged network (dlwp.task.base.check_divergence)."""
        return None

    def metrics(self) -> dict[str, Metric]:
        """Metrics besides the loss, by name (`acc` -> logged as `train/acc`, `val/acc`, ...)."""
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Network outputs -> what the book's model outputs (probabilities, or values)."""
        raise NotImplementedError

    def prediction_loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Keras' loss of predictions (probabilities or values, as `predict` gives them), as a
        differentiable tensor: what an ensemble's weights are fitted to (`dlwp ensemble fit_weights`)."""
        raise NotImplementedError

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """The loss and metrics of (averaged) predictions, as Keras computes them: an ensemble's."""
        raise NotImplementedError

    def baselines(self, train: torch.Tensor, test: torch.Tensor) -> dict[str, float]:
        """What a model must beat on `test`, knowing only the training targets."""
        raise NotImplementedError


class MulticlassHead(Head):
    """Softmax + categorical cross-entropy; accuracy = argmax matches the label (Keras `acc`)."""

    problem = "multiclass"
    LOSSES = ("categorical_crossentropy",)

    @property
    def loss_ceiling(self) -> float | None:
        return -LOG_EPS if self.keras_loss else None

    def metrics(self) -> dict[str, Metric]:
        return {"acc": Accuracy("multiclass")}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.keras_loss:
            return F.cross_entropy(outputs, targets)
        # Keras: -log(clip(p_y, eps, 1 - eps)) = clamp(-log p_y, -log(1 - eps), -log eps), with no
        # gradient where it clips; computed on the fused cross-entropy's per-sample values.
        return F.cross_entropy(outputs, targets, reduction="none").clamp(-LOG_1M_EPS, -LOG_EPS).mean()

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.softmax(dim=-1)

    def prediction_loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return -predictions.clamp(EPS, 1 - EPS).gather(1, targets.long().unsqueeze(1)).log().mean()

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        acc = (predictions.argmax(1) == targets).float().mean()
        return {"loss": self.prediction_loss(predictions, targets).item(), "acc": acc.item()}

    def baselines(self, train: torch.Tensor, test: torch.Tensor) -> dict[str, float]:
        classes = int(max(train.max(), test.max())) + 1
        train_counts = torch.bincount(train.long(), minlength=classes)
        test_freq = torch.bincount(test.long(), minlength=classes).double() / len(test)
        return {
            "majority_acc": test_freq[train_counts.argmax()].item(),
            # book 3.6's shuffled-labels classifier; its expected accuracy is sum_c p_c^2
            "random_acc": test_freq.square().sum().item(),
        }


class BinaryHead(Head):
    """Sigmoid + binary cross-entropy on a single output; accuracy = round(p) == y (Keras)."""

    problem = "binary"
    LOSSES = ("binary_crossentropy",)

    @property
    def loss_ceiling(self) -> float | None:
        return -LOG_EPS if self.keras_loss else None

    def metrics(self) -> dict[str, Metric]:
        return {"acc": Accuracy("binary")}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return binary_loss(outputs.reshape(targets.shape), targets.float(), self.keras_loss)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.sigmoid().reshape(len(outputs))

    def prediction_loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = predictions.clamp(EPS, 1 - EPS)
        yf = targets.float().reshape(p.shape)
        return -(yf * p.log() + (1 - yf) * (1 - p).log()).mean()

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        acc = ((predictions > 0.5) == targets.float().reshape(predictions.shape).bool()).float().mean()
        return {"loss": self.prediction_loss(predictions, targets).item(), "acc": acc.item()}

    def baselines(self, train: torch.Tensor, test: torch.Tensor) -> dict[str, float]:
        y = test.float().reshape(len(test), -1)
        majority = (train.float().reshape(len(train), -1).mean(0) > 0.5).float()
        p = y.mean(0)
        return {
            "majority_acc": (y == majority).float().mean().item(),
            "random_acc": (p.square() + (1 - p).square()).mean().item(),
        }


class MultilabelHead(BinaryHead):
    """Independent sigmoids; accuracy = mean over all (sample, label) pairs, as Keras computes it."""

    problem = "multilabel"

    def metrics(self) -> dict[str, Metric]:
        return {"acc": Accuracy("multilabel")}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return binary_loss(outputs, targets.float(), self.keras_loss)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.sigmoid()


class RegressionHead(Head):
    """Real-valued targets; mean squared error (Keras `mse`, the default) or absolute error loss,
    mean absolute error metric (Keras `mae`)."""

    problem = "regression"
    LOSSES = ("mse", "mae")

    def metrics(self) -> dict[str, Metric]:
        return {"mae": MeanAbsoluteError()}

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        outputs = outputs.reshape(targets.shape)
        if self.loss_name == "mae":
            return F.l1_loss(outputs, targets)
        return F.mse_loss(outputs, targets)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.squeeze(-1)

    def prediction_loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        err = predictions.reshape(targets.shape) - targets
        return err.abs().mean() if self.loss_name == "mae" else err.square().mean()

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        mae = (predictions.reshape(targets.shape) - targets).abs().mean()
        return {"loss": self.prediction_loss(predictions, targets).item(), "mae": mae.item()}

    def baselines(self, train: torch.Tensor, test: torch.Tensor) -> dict[str, float]:
        mean = train.float().mean()
        return {"mean_target_mae": (test.float() - mean).abs().mean().item()}


HEADS: dict[str, type[Head]] = {h.problem: h for h in (BinaryHead, MulticlassHead, MultilabelHead, RegressionHead)}


def make_head(problem: str, keras_loss: bool = True, loss: str | None = None, key: str = "task.problem") -> Head:
    if problem not in HEADS:
        raise ConfigError(f"{key}={problem!r} is not a problem type; choose from {list(HEADS)}")
    return HEADS[problem](keras_loss=keras_loss, loss=loss)


def binary_loss(logits: torch.Tensor, targets: torch.Tensor, keras_clip: bool) -> torch.Tensor:
    """BCE from logits; with `keras_clip`, p = sigmoid(z) is clipped as Keras does first.

    Clipping stops the gradient of samples the model is already confidently right (or wrong)
    about beyond 1e-7, which is what the book's runs did. Computed in float32: under bf16 autocast
    the logits are bf16, whose 3 significant digits would round log(p) and its gradient.
    """
    logits = logits.float()
    if not keras_clip:
        return F.binary_cross_entropy_with_logits(logits, targets)
    log_p = F.logsigmoid(logits).clamp(LOG_EPS, LOG_1M_EPS)
    log_1mp = F.logsigmoid(-logits).clamp(LOG_EPS, LOG_1M_EPS)
    return -(targets * log_p + (1 - targets) * log_1mp).mean()
