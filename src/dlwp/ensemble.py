"""`dlwp ensemble`: average the predictions of saved checkpoints of one task (book 7.3).

Members are rebuilt from the config stored in each checkpoint and loaded without unpickling code.
Classification averages probabilities, regression averages predictions; with `weights` the
average is weighted. Every member is evaluated with the same code as the ensemble, so the table
compares like with like.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from dlwp import checkpoints
from dlwp.config import to_plain
from dlwp.data import tree
from dlwp.errors import CheckpointError, ConfigError
from dlwp.evaluate import load_model
from dlwp.record import LOWER_IS_BETTER, RunRecord, sha256_file
from dlwp.train import data_record, output_dir

SIZE_ONLY = ("batch_size", "eval_batch_size")  # data options that do not change the data itself


def members_from_sweep(sweep: Path, top_k: int | None) -> list[Path]:
    from dlwp.sweeps import collect

    rows = [r for r in collect(sweep) if r["status"] == "completed" and r["best_checkpoint"]]
    if not rows:
        raise CheckpointError(f"sweep={sweep}: no completed job with a best checkpoint")
    lower = str(rows[0]["monitor"]).rsplit("/", 1)[-1].endswith(LOWER_IS_BETTER)
    rows.sort(key=lambda r: r["objective"] if lower else -r["objective"])
    return [Path(r["best_checkpoint"]) for r in rows[: top_k or len(rows)]]


def _data_identity(cfg) -> dict[str, Any]:
    data = to_plain(cfg.data, resolve=True)
    return {k: v for k, v in data.items() if k not in SIZE_ONLY}


@torch.no_grad()
def predictions(module, batches) -> tuple[tree.Part, tree.Part]:
    """(outputs as the book's model gives them: probabilities or values, targets) on a split; each
    a tensor, or a dict by output name for a multi-output task."""
    module.eval()
    outs, targets = [], []
    for x, y in batches:
        outs.append(module.predict(module(x)))
        targets.append(y)
    return tree.cat(outs), tree.cat(targets)


def weighted_sum(parts: list[tree.Part], weights: list[float]) -> tree.Part:
    if isinstance(parts[0], dict):
        return {name: sum(w * p[name] for p, w in zip(parts, weights, strict=True)) for name in parts[0]}
    return sum(w * p for p, w in zip(parts, weights, strict=True))


def test_metrics(module, predicted: tree.Part, targets: tree.Part) -> dict[str, float]:
    """Keras' loss and metrics of (averaged) outputs, probabilities clipped as Keras does."""
    return {f"test/{k}": v for k, v in module.score(predicted, targets).items()}


def ensemble(cfg: DictConfig) -> dict[str, Any]:
    paths_cfg = to_plain(cfg.paths, resolve=True)
    runs_dir = Path(cfg.paths.runs_dir)
    if cfg.sweep:
        paths = members_from_sweep(Path(cfg.sweep), cfg.top_k)
    else:
        paths = [checkpoints.resolve(p, runs_dir, task="", prefer="best") for p in cfg.ckpt_paths]
    if len(paths) < 1:
        raise ConfigError("give `ckpt_paths=[...]` (checkpoints or run directories) or `sweep=DIR`")
    weights = list(cfg.weights) if cfg.weights is not None else [1.0] * len(paths)
    if len(weights) != len(paths) or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ConfigError(f"weights={weights}: need {len(paths)} non-negative weights, not all zero")
    weights = [w / sum(weights) for w in weights]

    loaded = [load_model(p, paths=paths_cfg, data_overrides=to_plain(cfg.data, resolve=True)) for p in paths]
    first_cfg, datamodule, _ = loaded[0]
    for path, (member_cfg, _, _) in zip(paths, loaded, strict=True):
        if member_cfg.task.name != first_cfg.task.name:
            raise CheckpointError(f"{path} is a checkpoint of task '{member_cfg.task.name}', "
                                  f"not '{first_cfg.task.name}': an ensemble combines one task")  # fmt: skip
        if _data_identity(member_cfg) != _data_identity(first_cfg):
            raise CheckpointError(f"{path} was trained on different data ({_data_identity(member_cfg)}) "
                                  f"than {paths[0]} ({_data_identity(first_cfg)})")  # fmt: skip

    run_dir = output_dir(cfg, kind="ensemble")
    record = RunRecord(run_dir, "ensemble", Path(cfg.paths.root))
    try:
        record.update(task=first_cfg.task.name, data=data_record(first_cfg, datamodule))
        datamodule.setup("test")
        outputs, members = [], []
        for path, weight, (_, _, module) in zip(paths, weights, loaded, strict=True):
            probs, y = predictions(module, datamodule.test_dataloader())
            metrics = test_metrics(module, probs, y)
            members.append({"checkpoint": str(path), "sha256": sha256_file(path), "weight": weight, **metrics})
            outputs.append(probs)
        result = test_metrics(loaded[0][2], weighted_sum(outputs, weights), y)
        record.update(members=members, metrics={"final": result}, weights=weights)
        record.finish("completed")
    except BaseException as err:
        record.finish("failed", err)
        raise
    key = next((k for k in result if k.endswith(("/acc", "/mae"))), "test/loss")
    lines = [f"dlwp ensemble: {first_cfg.task.name}, {len(paths)} members"]
    lines += [f"  {m['checkpoint']}  weight {m['weight']:.3f}  {key} {m[key]:.4f}" for m in members]
    lines += [f"  ensemble {key} {result[key]:.4f}  test/loss {result['test/loss']:.4f}", f"  record: {record.path}"]
    print("\n".join(lines), file=sys.stderr)
    return record.data
