"""Allowed ranges of the numbers in a run config, checked at start-up with the key's name.

The schema fixes types (an `int` is an int); this fixes values, so `data.batch_size=0`,
`seed=-1` or `task.optimizer.lr=-1` fail before any data is read, with the range that is allowed,
not with a traceback from numpy or torch (or, worse, a run that trains on a garbled split).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig

from dlwp.errors import ConfigError

Rule = tuple[Callable[[Any], bool], str]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def at_least(low: float, optional: bool = False) -> Rule:
    text = f">= {low:g}" + (" or null" if optional else "")
    return (lambda v: (optional and v is None) or (_number(v) and v >= low)), text


def positive(optional: bool = False) -> Rule:
    return (lambda v: (optional and v is None) or (_number(v) and v > 0)), "> 0" + (" or null" if optional else "")


def fraction(text: str = "0 <= value < 1") -> Rule:
    return (lambda v: _number(v) and 0 <= v < 1), text


RULES: dict[str, Rule] = {
    "seed": ((lambda v: _number(v) and 0 <= v < 2**32), "0 <= seed < 2**32 (numpy's range)"),
    "trainer.max_epochs": at_least(0),
    "trainer.max_steps": ((lambda v: v == -1 or (_number(v) and v >= 1)), "-1 (no limit) or >= 1"),
    "trainer.accumulate_grad_batches": at_least(1),
    "trainer.check_val_every_n_epoch": at_least(1),
    "trainer.log_every_n_steps": at_least(1),
    "trainer.num_nodes": at_least(1),
    "trainer.cpu_threads": at_least(1, optional=True),
    "task.optimizer.lr": positive(),
    "task.optimizer.rho": fraction(),
    "task.optimizer.eps": positive(),
    "task.optimizer.momentum": at_least(0),
    "task.optimizer.weight_decay": at_least(0),
    "task.optimizer.clipnorm": positive(optional=True),
    "task.optimizer.clipvalue": positive(optional=True),
    "kfold.k": ((lambda v: v == 0 or (_number(v) and v >= 2)), "0 (no K-fold) or >= 2"),
    "callbacks.early_stopping.patience": at_least(0),
    "callbacks.early_stopping.min_delta": at_least(0),
}
"""Rules by full key."""

NODE_RULES: dict[str, Rule] = {
    "batch_size": at_least(1),
    "eval_batch_size": at_least(1),
    "subset": at_least(1, optional=True),
    "num_workers": at_least(0),
    "val_size": at_least(0, optional=True),
    "test_size": at_least(0, optional=True),
    "maxlen": at_least(1, optional=True),
    "num_words": at_least(1, optional=True),
    "lookback": at_least(1),
    "delay": at_least(0),
    "dropout": fraction("0 <= rate < 1"),
    "recurrent_dropout": fraction("0 <= rate < 1"),
}
"""Rules by key name, wherever it appears under `data` or `model` (every data module's
`batch_size` means the same thing)."""


def check_ranges(cfg: DictConfig) -> None:
    """Raise `ConfigError` for the first value outside its allowed range (all of them, listed)."""
    bad = []
    for key, (ok, allowed) in RULES.items():
        found, value = _get(cfg, key)
        if found and not ok(value):
            bad.append(f"{key}={value!r} (allowed: {allowed})")
    for name, group in _param_groups(cfg):
        if group.get("lr") is not None and not positive()[0](group.get("lr")):
            bad.append(f"{name}.lr={group.get('lr')!r} (allowed: > 0 or null)")
    for betas_key in ("task.optimizer.betas",):
        found, betas = _get(cfg, betas_key)
        if found and betas is not None and not all(fraction()[0](b) for b in betas):
            bad.append(f"{betas_key}={list(betas)!r} (allowed: each 0 <= beta < 1)")
    for root in ("data", "model"):
        node = cfg.get(root)
        if isinstance(node, DictConfig):
            bad += _check_node(node, root)
    if bad:
        raise ConfigError("value out of range: " + "; ".join(bad))


def _check_node(node: DictConfig, prefix: str) -> list[str]:
    bad = []
    for key in node:
        value = node[key]
        full = f"{prefix}.{key}"
        if isinstance(value, DictConfig):
            bad += _check_node(value, full)
        elif not isinstance(value, ListConfig) and key in NODE_RULES:
            ok, allowed = NODE_RULES[key]
            if not ok(value):
                bad.append(f"{full}={value!r} (allowed: {allowed})")
    return bad


def _param_groups(cfg: DictConfig) -> list[tuple[str, Any]]:
    found, groups = _get(cfg, "task.optimizer.param_groups")
    return [(f"task.optimizer.param_groups[{i}]", g) for i, g in enumerate(groups or [])] if found else []


def _get(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        node = node[part]
    return True, node
