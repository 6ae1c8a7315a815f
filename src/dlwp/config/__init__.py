"""Config: the typed schema, validation of `_target_` nodes, and building a run's parts from it."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from dlwp.config.schema import TrainConfig
from dlwp.config.targets import check_target
from dlwp.errors import ConfigError


def validate(cfg: DictConfig) -> DictConfig:
    """Check the whole run config; return it with `data`/`model` typed and defaults filled in.

    Hydra has already enforced the dataclass schema for everything else; this adds the checks it
    cannot do (constructor signatures, missing values) so they also fail before any training.
    """
    try:
        missing = sorted(OmegaConf.missing_keys(cfg))
    except OmegaConfBaseException as err:
        raise ConfigError(str(err)) from err
    if missing:
        raise ConfigError(f"missing values for: {', '.join(missing)}")
    data = check_target(cfg.data, "data", injected=("seed",))  # the run's `seed` is passed in
    model = check_target(cfg.model, "model")
    with open_dict(cfg):
        cfg.data, cfg.model = data, model
    return cfg


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
    from hydra.utils import instantiate

    from dlwp.task import build_task

    datamodule = instantiate(cfg.data, seed=cfg.seed)
    network = instantiate(cfg.model)
    module = build_task(
        cfg.task.problem.value,
        network,
        optimizer=to_plain(cfg.task.optimizer, resolve=True),
        seed=cfg.seed,
        keras_loss=cfg.task.keras_loss,
    )
    return datamodule, module
