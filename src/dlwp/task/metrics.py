"""Keras' metric definitions as lean torchmetrics `Metric`s.

torchmetrics' general-purpose classes validate and reformat their inputs on every update (and
`MeanMetric` checks for NaNs, a host sync); for the book's small networks that costs a sizeable
fraction of a training step. These keep torchmetrics' state handling (epoch reset, DDP sync) and
do only the arithmetic Keras does.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class LeanMetric(Metric):
    """A torchmetrics `Metric` whose per-step update can skip torchmetrics' update wrapper.

    `Metric.update` is wrapped (bookkeeping through `nn.Module.__setattr__`, a grad-mode context):
    ~50 µs a call, a sizeable part of a small network's step. `dlwp.compat.fast_update` does the
    same bookkeeping through `__dict__` and calls `accumulate` directly; state handling (epoch
    reset, DDP sync at compute) is torchmetrics' own. `update` still works.
    """

    full_state_update = False

    def accumulate(self, *args) -> None:
        raise NotImplementedError

    def update(self, *args) -> None:
        self.accumulate(*args)


class BatchMean(LeanMetric):
    """Mean of per-batch values weighted by batch size: Keras' running epoch loss."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def accumulate(self, value: torch.Tensor, weight: int) -> None:
        # in place: `+=` on a Module attribute would go through the slow nn.Module.__setattr__
        self.total.add_(value.detach(), alpha=weight)  # one kernel; float32 -> float64 inside add_
        self.count.add_(weight)

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float()


class Accuracy(LeanMetric):
    """Keras `acc` from logits: argmax match (multiclass), `round(sigmoid(z)) == y` (binary, and
    each label of multilabel), where round(p) = 1 exactly when p > 0.5, i.e. when z > 0."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("binary", "multiclass", "multilabel"):
            raise ValueError(f"unknown accuracy kind {kind!r}")
        self.kind = kind
        self.add_state("correct", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def accumulate(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        if self.kind == "multiclass":
            hits = logits.argmax(dim=-1) == target
        else:  # Keras rounds half to even: p = 0.5 (z = 0) counts as 0
            hits = (logits.reshape(target.shape) > 0) == target.bool()
        self.correct.add_(hits.sum())
        self.total.add_(hits.numel())

    def compute(self) -> torch.Tensor:
        return self.correct.float() / self.total


class MeanAbsoluteError(LeanMetric):
    """Keras `mae`: mean of |prediction - target| over all samples of the epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def accumulate(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.total.add_((preds.reshape(target.shape) - target).abs().sum())  # accumulated in float64
        self.count.add_(target.numel())

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float()
