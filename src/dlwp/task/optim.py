"""Optimisers, learning-rate schedules, frozen parameters and per-group learning rates.

A task names its optimisers (`{"main": ...}` for a supervised model; a GAN has `generator` and
`discriminator`); each is built from an `OptimizerConfig` over the parameters it is given, minus
the frozen ones (`requires_grad=False`), with per-group learning rates for fine-tuning, and an
optional schedule that the task steps by hand (it optimises manually, see `dlwp.task.base`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dlwp.errors import ConfigError


def matches(name: str, patterns: list[str]) -> bool:
    """Whether a parameter name (`features.0.weight`) matches any glob pattern (`features.*`)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def freeze(network: nn.Module, frozen: list[str], unfrozen: list[str]) -> list[str]:
    """`requires_grad=False` for the parameters matching `frozen` but not `unfrozen` (book 5.3's
    `conv_base.trainable = False`, then block5 unfrozen for fine-tuning); returns their names."""
    names = []
    for pattern in [*frozen, *unfrozen]:
        if not any(fnmatch.fnmatchcase(n, pattern) for n, _ in network.named_parameters()):
            raise ConfigError(f"task freeze/unfreeze pattern {pattern!r} matches no parameter of the network")
    for name, param in network.named_parameters():
        if matches(name, frozen) and not matches(name, unfrozen):
            param.requires_grad_(False)  # a call: `param.requires_grad_ = False` would freeze nothing
            names.append(name)
    return names


def param_groups(named: list[tuple[str, nn.Parameter]], groups: list[dict[str, Any]], key: str) -> list[dict]:
    """Trainable parameters split into the optimizer's groups: each group's `params` glob takes
    the parameters it matches (first group first), with its own `lr`/`weight_decay`; the rest form
    the default group."""
    trainable = [(n, p) for n, p in named if p.requires_grad]
    if not trainable:
        raise ConfigError(f"{key}: every parameter it would optimise is frozen")
    out, taken = [], set()
    for i, group in enumerate(groups):
        mine = [(n, p) for n, p in trainable if n not in taken and fnmatch.fnmatchcase(n, group["params"])]
        if not mine:
            raise ConfigError(f"{key}.param_groups[{i}].params={group['params']!r} matches no trainable parameter")
        taken.update(n for n, _ in mine)
        options = {k: v for k, v in group.items() if k != "params" and v is not None}
        out.append({"params": [p for _, p in mine], **options})
    rest = [p for n, p in trainable if n not in taken]
    return ([{"params": rest}] if rest else []) + out


def build_optimizer(params, name: str, lr: float, rho: float = 0.9, eps: float = 1e-8, momentum: float = 0.0,
                    weight_decay: float = 0.0, betas: list[float] | tuple[float, float] = (0.9, 0.999),
                    **_: Any) -> torch.optim.Optimizer:  # fmt: skip
    """The optimiser a config names; RMSprop's `rho` is torch's `alpha`. Clipping and schedules
    are applied by the task (`OptimizerSlot`), like Keras' optimizer arguments of those names."""
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=rho, eps=eps, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose from rmsprop, adam, sgd")


@dataclass
class OptimizerSlot:
    """One named optimiser of a task with what Keras keeps on the optimiser: clipping, schedule."""

    name: str
    optimizer: torch.optim.Optimizer
    params: list[nn.Parameter]
    clipnorm: float | None
    clipvalue: float | None
    schedule: Schedule | None

    def clip(self) -> None:
        if self.clipnorm is not None:
            nn.utils.clip_grad_norm_(self.params, self.clipnorm)
        if self.clipvalue is not None:
            nn.utils.clip_grad_value_(self.params, self.clipvalue)


def make_slot(name: str, named_params: list[tuple[str, nn.Parameter]], config: dict[str, Any],
              max_epochs: int | None) -> OptimizerSlot:  # fmt: skip
    key = "task.optimizer" if name == "main" else f"task.optimizers.{name}"
    config = dict(config)
    groups = param_groups(named_params, list(config.pop("param_groups", None) or []), key)
    optimizer = build_optimizer(groups, **config)
    schedule = make_schedule(optimizer, config.get("schedule") or {}, max_epochs, key)
    params = [p for g in groups for p in g["params"]]
    return OptimizerSlot(name, optimizer, params, config.get("clipnorm"), config.get("clipvalue"), schedule)


class Schedule:
    """A learning-rate schedule stepped by the task: after each optimiser step (`per_step`) or at
    the end of each training epoch, after validation (`epoch_end(metrics)`)."""

    per_step = False

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler

    def step(self) -> None:
        self.scheduler.step()

    def epoch_end(self, metrics: dict[str, float]) -> None:
        self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


class KerasDecay(Schedule):
    """Keras' `decay`: lr_t = lr / (1 + decay * t), t = optimiser steps taken so far (book 8.5)."""

    per_step = True


class Plateau(Schedule):
    """Keras' `ReduceLROnPlateau(monitor, factor, patience, min_lr, cooldown)` with its absolute
    improvement threshold (`epsilon=1e-4`), stepped on the epoch's value of `monitor`."""

    def __init__(self, scheduler, monitor: str, key: str) -> None:
        super().__init__(scheduler)
        self.monitor, self.key = monitor, key

    def epoch_end(self, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            raise ConfigError(
                f"{self.key}.schedule.monitor={self.monitor} was not logged this epoch; "
                f"logged: {', '.join(sorted(metrics))}"
            )
        self.scheduler.step(float(metrics[self.monitor]))


def make_schedule(optimizer, cfg: dict[str, Any], max_epochs: int | None, key: str) -> Schedule | None:
    from torch.optim import lr_scheduler

    name = cfg.get("name", "none")
    if name in (None, "none"):
        return None
    if name == "keras_decay":
        decay = cfg.get("decay", 0.0)
        return KerasDecay(lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 / (1.0 + decay * t)))
    if name == "plateau":
        mode = cfg.get("mode", "min")
        scheduler = lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=cfg.get("factor", 0.1), patience=cfg.get("patience", 10),
            threshold=1e-4, threshold_mode="abs", cooldown=cfg.get("cooldown", 0), min_lr=cfg.get("min_lr", 0.0),
        )  # fmt: skip
        return Plateau(scheduler, cfg.get("monitor") or "val/loss", key)
    if name == "step":
        return Schedule(lr_scheduler.StepLR(optimizer, step_size=cfg.get("step_size", 10), gamma=cfg.get("gamma", 0.1)))
    if name == "cosine":
        t_max = cfg.get("t_max") or max_epochs
        if not t_max or t_max < 1:
            raise ConfigError(f"{key}.schedule.t_max: a cosine schedule needs its length in epochs")
        return Schedule(lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max, eta_min=cfg.get("eta_min", 0.0)))
    raise ConfigError(f"{key}.schedule.name={name!r}; choose from none, keras_decay, plateau, step, cosine")
