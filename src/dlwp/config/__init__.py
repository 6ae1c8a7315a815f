"""Config: the typed schema, validation of `_target_` nodes, and building a run's parts from it."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from dlwp.config.ranges import check_ranges
from dlwp.config.schema import DEFAULT_TASK_CLASS, CompileMode, TaskMeta, TrainConfig
from dlwp.config.targets import check_target, locate
from dlwp.errors import ConfigError

TASK_META = tuple(f.name for f in dataclasses.fields(TaskMeta))
TASK_INJECTED = ("network", "seed")
"""Arguments of a task class that dlwp passes in: the built network and the run's seed."""


def validate(cfg: DictConfig) -> DictConfig:
    """Check the whole run config; return it with `task`/`data`/`model` typed and defaults filled in.

    Hydra has already enforced the dataclass schema for everything else; this adds the checks it
    cannot do (constructor signatures, missing values) so they also fail before any training.
    """
    try:
        missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("task."))
    except OmegaConfBaseException as err:
        raise ConfigError(str(err)) from err
    if missing:
        hint = " (this task starts from a trained run: init_from=<its run directory>)" if "init_from" in missing else ""
        raise ConfigError(f"missing values for: {', '.join(missing)}{hint}")
    unknown = unknown_keys(cfg, TrainConfig)
    if unknown:
        raise ConfigError(
            f"unknown config key(s): {', '.join(unknown)}. A `+key=value` override adds a key that no part of dlwp "
            "reads; `dlwp train --cfg job` prints the keys there are"
        )
    task = validate_task(cfg.task)
    data = check_target(cfg.data, "data", injected=("seed",))  # the run's `seed` is passed in
    model = check_target(cfg.model, "model")
    with open_dict(cfg):
        cfg.task, cfg.data, cfg.model = task, data, model
    check_ranges(cfg)
    return cfg


def unknown_keys(node: DictConfig, schema: type, prefix: str = "") -> list[str]:
    """Keys of `node` that its dataclass schema does not have (Hydra's `+key=value` adds keys even
    to a typed config), with the closest valid name when there is one. The `_target_` nodes
    (`Any`/dict fields) are checked against their class's signature instead."""
    import difflib
    import typing

    hints = typing.get_type_hints(schema)
    out = []
    for key in node:
        if key not in hints:
            close = difflib.get_close_matches(str(key), list(hints), n=1)
            out.append(f"{prefix}{key}" + (f" (did you mean {prefix}{close[0]}?)" if close else ""))
        elif dataclasses.is_dataclass(hints[key]) and isinstance(node.get(key), DictConfig):
            out += unknown_keys(node[key], hints[key], f"{prefix}{key}.")
    return out


def validate_task(node: DictConfig) -> DictConfig:
    """The task node checked twice: its `TaskMeta` keys against that schema, the rest against the
    constructor of its class (`_target_`, default `SupervisedTask`, for which `problem:` is all
    that is needed)."""
    if not isinstance(node, DictConfig):
        raise ConfigError("'task' must be a mapping (pick one with task=<name>; `dlwp tasks` lists them)")
    meta_keys = [k for k in TASK_META if k in node]
    try:
        meta = OmegaConf.merge(OmegaConf.structured(TaskMeta), OmegaConf.masked_copy(node, meta_keys))
        missing = sorted(OmegaConf.missing_keys(meta))
    except OmegaConfBaseException as err:
        bad = getattr(err, "full_key", "") or ""
        raise ConfigError(f"'task.{bad}': {str(err).splitlines()[0]}") from err
    if missing:
        raise ConfigError(f"missing values for: {', '.join(f'task.{k}' for k in missing)}")
    ctor = OmegaConf.masked_copy(node, [k for k in node if k not in TASK_META])
    if "_target_" not in ctor:
        with open_dict(ctor):
            ctor._target_ = DEFAULT_TASK_CLASS
    ctor = check_target(ctor, "task", injected=TASK_INJECTED, also_valid=TASK_META)
    return OmegaConf.create({**OmegaConf.to_container(meta, enum_to_str=True), **OmegaConf.to_container(ctor)})


def task_options(cfg: DictConfig) -> dict[str, Any]:
    """The task class's constructor arguments (plain values) from a validated config."""
    options = to_plain(cfg.task, resolve=True)
    return {k: v for k, v in options.items() if k not in TASK_META and k != "_target_"}


def typed(config: dict[str, Any]) -> DictConfig:
    """A plain config dict (e.g. stored in a checkpoint) merged back into the schema."""
    try:
        return OmegaConf.merge(OmegaConf.structured(TrainConfig), config)
    except OmegaConfBaseException as err:
        raise ConfigError(f"stored config does not fit this version's schema: {err}") from err


def to_plain(cfg: DictConfig, resolve: bool) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=resolve, enum_to_str=True)


def build(cfg: DictConfig):
    """The data module and the LightningModule a validated config describes."""
    datamodule = _instantiate(cfg.data, seed=cfg.seed, _recursive_=False)  # a nested _target_ is the module's own
    network = _instantiate(cfg.model)
    task_class = locate(cfg.task._target_)
    module = task_class(network=network, seed=cfg.seed, **task_options(cfg))
    module.accumulate = int(cfg.trainer.accumulate_grad_batches)
    if cfg.trainer.channels_last:
        module.use_channels_last()
    if cfg.trainer.compile is not CompileMode.none:
        module.compile_network(cfg.trainer.compile.value)
    return datamodule, module


def _instantiate(node, **kwargs):
    """Hydra's `instantiate`, with a `DlwpError` raised by the constructor (a bad value it checks
    itself) passed on as it is, not wrapped in Hydra's InstantiationException and a traceback."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from dlwp.errors import DlwpError

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, DlwpError):
            raise cause from None
        raise
