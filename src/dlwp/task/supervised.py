"""Supervised tasks: one output (`SupervisedTask`) or several named ones (`MultiOutputTask`)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torchmetrics import Metric

from dlwp import compat
from dlwp.config.schema import OutputConfig
from dlwp.data import tree
from dlwp.errors import ConfigError
from dlwp.task.base import BookTask
from dlwp.task.heads import Head, make_head

Problem = Literal["binary", "multiclass", "multilabel", "regression"]


class SupervisedTask(BookTask):
    """One output of one problem type (chapters 2-6); `task.problem: multiclass` in a config.

    Args:
        problem: binary (one sigmoid output, labels 0/1), multiclass (softmax over classes,
            integer labels), multilabel (independent sigmoids, 0/1 label vectors) or regression
            (real-valued targets).
        keras_loss: clip probabilities to [1e-7, 1 - 1e-7] inside the loss, as Keras 2.0.8 does.
        loss: regression only: `mse` (default) or `mae` (book 6.3's Jena models).
        **kwargs: see `BookTask` (network, seed, optimizer, freeze, unfreeze).
    """

    def __init__(self, network: nn.Module, seed: int, problem: Problem, keras_loss: bool = True,
                 loss: str | None = None, **kwargs) -> None:  # fmt: skip
        super().__init__(network, seed, **kwargs)
        self.head: Head = make_head(problem, keras_loss, loss)
        self.register_metrics()

    def make_metrics(self) -> dict[str, Metric]:
        return self.head.metrics()

    def loss_ceiling(self) -> float | None:
        return self.head.loss_ceiling

    def objective(self, outputs: torch.Tensor, targets: torch.Tensor, metrics: nn.ModuleDict) -> torch.Tensor:
        loss = self.head.loss(outputs, targets)
        detached = outputs.detach()  # no graph is built from it: no grad-mode context needed
        for name, metric in metrics.items():  # metrics read raw outputs (logits): no softmax
            if name != "loss":
                compat.fast_update(metric, detached, targets)
        return loss

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.head.predict(outputs)

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return self.head.score(predictions, targets)

    def prediction_loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.head.prediction_loss(predictions, targets)

    def baselines(self, train: torch.Tensor, test: torch.Tensor) -> dict[str, float]:
        return self.head.baselines(train, test)

    def check_batch(self, batch) -> None:
        inputs, targets = batch
        outputs = self.example_outputs(inputs)
        if isinstance(outputs, dict) or isinstance(targets, dict):
            what = "the network returns named outputs" if isinstance(outputs, dict) else "the data has named targets"
            raise ConfigError(
                f"{what} ({', '.join(tree.names(outputs) or tree.names(targets))}), but task.problem describes a "
                "single output: use task._target_: dlwp.task.MultiOutputTask with task.outputs naming each one"
            )
        _check_loss(self.head, outputs, targets, "task.problem")


class MultiOutputTask(BookTask):
    """Several named outputs trained together, Keras functional-API style (book 7.1.3).

    The network returns `{name: output}`, the data gives `{name: target}`; each output has a
    problem type, a loss and a `loss_weight`, and the trained loss is the weighted sum. Logged
    per output, unweighted, as Keras does: `stage/<output>/loss` and `stage/<output>/<metric>`
    (`val/sentiment/acc`), besides the total `stage/loss` (weighted, with any penalty).

    Args:
        outputs: name -> `{problem, loss_weight, loss}` (see `dlwp.config.schema.OutputConfig`).
        keras_loss: see `SupervisedTask`.
        **kwargs: see `BookTask`.
    """

    def __init__(self, network: nn.Module, seed: int, outputs: dict[str, OutputConfig], keras_loss: bool = True,
                 **kwargs) -> None:  # fmt: skip
        super().__init__(network, seed, **kwargs)
        if not outputs:
            raise ConfigError("task.outputs: a multi-output task needs at least one named output")
        self.heads: dict[str, Head] = {}
        self.loss_weights: dict[str, float] = {}
        for name, spec in outputs.items():
            weight = float(spec.get("loss_weight", 1.0))
            if not weight >= 0:
                raise ConfigError(f"task.outputs.{name}.loss_weight={weight}: a loss weight must be >= 0")
            self.heads[name] = make_head(
                spec["problem"], keras_loss, spec.get("loss"), key=f"task.outputs.{name}.problem"
            )
            self.loss_weights[name] = weight
        self.register_metrics()

    def loss_ceiling(self) -> float | None:
        ceilings = [head.loss_ceiling for head in self.heads.values()]
        if any(c is None for c in ceilings):
            return None
        return sum(self.loss_weights[n] * c for n, c in zip(self.heads, ceilings, strict=True))

    def make_metrics(self) -> dict[str, Metric]:
        from dlwp.task.metrics import BatchMean

        metrics: dict[str, Metric] = {}
        for name, head in self.heads.items():
            metrics[f"{name}/loss"] = BatchMean()
            metrics |= {f"{name}/{metric}": m for metric, m in head.metrics().items()}
        return metrics

    def objective(self, outputs: dict, targets: dict, metrics: nn.ModuleDict) -> torch.Tensor:
        total = 0.0
        n = tree.length(targets)
        for name, head in self.heads.items():
            out, target = outputs[name], targets[name]
            loss = head.loss(out, target)
            total = total + self.loss_weights[name] * loss
            # detached inputs build no graph: no grad-mode context needed (as in SupervisedTask)
            compat.fast_update(metrics[f"{name}/loss"], loss.detach(), n)
            detached = out.detach()
            for metric in head.metrics():
                compat.fast_update(metrics[f"{name}/{metric}"], detached, target)
        return total

    def predict(self, outputs: dict) -> dict[str, torch.Tensor]:
        return {name: head.predict(outputs[name]) for name, head in self.heads.items()}

    def prediction_loss(self, predictions: dict, targets: dict) -> torch.Tensor:
        return sum(self.loss_weights[n] * h.prediction_loss(predictions[n], targets[n]) for n, h in self.heads.items())

    def score(self, predictions: dict, targets: dict) -> dict[str, float]:
        out: dict[str, float] = {"loss": 0.0}
        for name, head in self.heads.items():
            scores = head.score(predictions[name], targets[name])
            out["loss"] += self.loss_weights[name] * scores["loss"]
            out |= {f"{name}/{k}": v for k, v in scores.items()}
        return out

    def baselines(self, train: dict, test: dict) -> dict[str, float]:
        out = {}
        for name, head in self.heads.items():
            out |= {f"{name}/{k}": v for k, v in head.baselines(train[name], test[name]).items()}
        return out

    def check_batch(self, batch) -> None:
        inputs, targets = batch
        outputs = self.example_outputs(inputs)
        if not isinstance(outputs, dict):
            raise ConfigError(
                "task.outputs names the outputs of a multi-output task, but the network returns a single "
                f"tensor ({type(self.network).__name__}): it must return {{name: output}}"
            )
        if not isinstance(targets, dict):
            raise ConfigError(
                "task.outputs names the outputs of a multi-output task, but the data gives a single target: "
                "ask the data module for named targets (e.g. data.targets=[...])"
            )
        for name in self.heads:
            if name not in outputs:
                raise ConfigError(
                    f"task.outputs.{name}: the network has no output named {name!r}; its outputs: {', '.join(outputs)}"
                )
            if name not in targets:
                raise ConfigError(
                    f"task.outputs.{name}: the batch has no target named {name!r}; its targets: {', '.join(targets)}"
                )
        untrained = [name for name in outputs if name not in self.heads]
        if untrained:
            raise ConfigError(
                f"the network's output(s) {', '.join(untrained)} have no entry in task.outputs "
                f"(task.outputs: {', '.join(self.heads)}): add them, or remove them from the network"
            )
        for name, head in self.heads.items():
            _check_loss(head, outputs[name], targets[name], f"task.outputs.{name}")


def _check_loss(head: Head, outputs: torch.Tensor, targets: torch.Tensor, key: str) -> None:
    try:
        head.loss(outputs, targets)
    except (RuntimeError, ValueError, IndexError) as err:
        raise ConfigError(
            f"{key}={head.problem}: its loss cannot be computed from the network's output of shape "
            f"{tuple(outputs.shape)} and targets of shape {tuple(targets.shape)} ({str(err).splitlines()[0]})"
        ) from err
