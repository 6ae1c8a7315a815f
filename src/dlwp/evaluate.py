"""`dlwp eval`: a saved checkpoint on its task's test split, recorded like a training run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dlwp import checkpoints
from dlwp.record import RunRecord, sha256_file
from dlwp.train import data_record, is_rank_zero, output_dir


def load_model(ckpt_path: Path, paths: dict[str, Any], data_overrides: dict[str, Any] | None = None,
               trainer: dict[str, Any] | None = None):  # fmt: skip
    """Rebuild (config, data module, module with weights) from a checkpoint, without pickled code.

    The stored config is re-validated against this version's schema; `paths` (and optionally
    `data_overrides`, `trainer`) replace the stored ones, so a checkpoint made on one machine can
    be evaluated on another.
    """
    from dlwp.config import build, typed, validate

    ckpt = checkpoints.load(ckpt_path)
    stored = dict(ckpt["dlwp"]["config"])
    stored["paths"] = paths
    stored["data"] = {**stored["data"], **(data_overrides or {})}
    if trainer is not None:
        stored["trainer"] = trainer
    cfg = validate(typed(stored))
    datamodule, module = build(cfg)
    module.load_state_dict(ckpt["state_dict"])
    module.run_config = ckpt["dlwp"]["config"]
    return cfg, datamodule, module


def evaluate(eval_cfg: DictConfig) -> dict[str, Any]:
    from dlwp.config import to_plain
    from dlwp.trainer import build_trainer

    path = checkpoints.resolve(eval_cfg.ckpt_path, Path(eval_cfg.paths.runs_dir), task="", prefer="best")
    cfg, datamodule, module = load_model(
        path,
        paths=to_plain(eval_cfg.paths, resolve=True),
        data_overrides=to_plain(eval_cfg.data, resolve=True),
        trainer=to_plain(eval_cfg.trainer, resolve=True),
    )
    run_dir = output_dir(eval_cfg, kind="eval")
    record = RunRecord(run_dir, "eval", Path(eval_cfg.paths.root), enabled=is_rank_zero())
    try:
        record.update(
            task=cfg.task.name,
            checkpoint={"path": str(path), "sha256": sha256_file(path)},
            data=data_record(cfg, datamodule),
        )
        datamodule.setup("test")
        record.data["data"]["sizes"] = datamodule.sizes()
        trainer = build_trainer(cfg, run_dir, callbacks=[], loggers=[])
        results = trainer.test(module, datamodule=datamodule, verbose=False)[0]
        record.update(metrics={"final": {k: round(float(v), 7) for k, v in results.items()}})
        record.finish("completed")
    except BaseException as err:
        record.finish("failed", err)
        raise
    lines = [f"dlwp eval: {cfg.task.name} checkpoint {path}"]
    lines += [f"  {k:<12} {v:.4f}" for k, v in record.data["metrics"]["final"].items()]
    lines.append(f"  record: {run_dir / 'run.json'}")
    print("\n".join(lines), file=sys.stderr)
    return record.data
