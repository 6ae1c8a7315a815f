"""`dlwp ensemble`: average the predictions of saved checkpoints of one task (book 7.3).

Members are rebuilt from the config stored in each checkpoint and loaded without unpickling code.
Classification averages probabilities, regression averages predictions; with `weights` (given,
or fitted on the validation split with `fit_weights=true`) the average is weighted, and the
plain average is reported beside it. Every member is evaluated with the same code as the ensemble, so the table
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


def fit_weights(module, outputs: list[tree.Part], targets: tree.Part, steps: int = 200) -> list[float]:
    """Book 7.3.3's weighted average with the weights found, not guessed: non-negative weights
    summing to 1 (a softmax of free logits, starting from the plain average) that minimise the
    task's loss of the weighted average on the validation split (L-BFGS)."""
    logits = torch.zeros(len(outputs), dtype=torch.float64, requires_grad=True)
    outputs = [tree.apply(lambda t: t.double(), o) for o in outputs]
    optimizer = torch.optim.LBFGS([logits], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = module.prediction_loss(weighted_sum(outputs, list(torch.softmax(logits, 0))), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return [round(float(w), 6) for w in torch.softmax(logits.detach(), 0)]


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
    if cfg.fit_weights and cfg.weights is not None:
        raise ConfigError("give weights=[...] or fit_weights=true (fitted on the validation split), not both")
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
        task = loaded[0][2]
        if cfg.fit_weights:
            datamodule.setup("fit")
            if "val" not in datamodule.splits:
                raise ConfigError("fit_weights=true fits the weights on the validation split, and this data has none")
            val = [predictions(module, datamodule.val_dataloader()) for _, _, module in loaded]
            val_outputs, val_targets = [p for p, _ in val], val[0][1]
            plain_loss = task.score(weighted_sum(val_outputs, weights), val_targets)["loss"]
            weights = fit_weights(task, val_outputs, val_targets)
            fitted_loss = task.score(weighted_sum(val_outputs, weights), val_targets)["loss"]
            record.update(fitted_on={"split": "val", "plain_val_loss": plain_loss, "fitted_val_loss": fitted_loss})
        datamodule.setup("test")
        outputs, members = [], []
        for path, weight, (_, _, module) in zip(paths, weights, loaded, strict=True):
            probs, y = predictions(module, datamodule.test_dataloader())
            metrics = test_metrics(module, probs, y)
            members.append({"checkpoint": str(path), "sha256": sha256_file(path), "weight": weight, **metrics})
            outputs.append(probs)
        result = test_metrics(task, weighted_sum(outputs, weights), y)
        plain = test_metrics(task, weighted_sum(outputs, [1 / len(outputs)] * len(outputs)), y)
        record.update(members=members, metrics={"final": result, "plain_average": plain}, weights=weights)
        record.finish("completed")
    except BaseException as err:
        record.finish("failed", err)
        raise
    key = next((k for k in result if k.endswith(("/acc", "/mae"))), "test/loss")
    lines = [f"dlwp ensemble: {first_cfg.task.name}, {len(paths)} members"]
    lines += [f"  {m['checkpoint']}  weight {m['weight']:.3f}  {key} {m[key]:.4f}" for m in members]
    lines += [f"  plain average {key} {plain[key]:.4f}  test/loss {plain['test/loss']:.4f}"]
    lines += [f"  {'weighted' if weights != [1 / len(paths)] * len(paths) else 'ensemble'} {key} {result[key]:.4f}  "
              f"test/loss {result['test/loss']:.4f}", f"  record: {record.path}"]  # fmt: skip
    print("\n".join(lines), file=sys.stderr)
    return record.data
