"""K-fold validation (book 3.7) for any in-memory task: `dlwp train task=... kfold.k=K`.

The book validates its Boston housing model on 4 contiguous folds of the training set, because 101
validation samples are too few for one hold-out to be trusted, then trains a final model on all
training data and tests it. Here every step is an ordinary `dlwp.train.train` run, so each fold
keeps everything a run records (config, metrics.csv, checkpoints, run.json); this module only
derives their configs and aggregates what they got. One K-fold run is one directory:

    <run>/fold-0 ... fold-{K-1}/   a run validated on fold i (`data.num_folds=K`, `data.fold=i`), untested
    <run>/final/                   with `kfold.final` overrides: all training data, no validation, tested
    <run>/run.json                 kind `kfold`: per-fold final and best validation metrics, mean, std
    <run>/kfold_curve.csv          per epoch, mean and std over folds of each validation metric
    <run>/kfold.png                the book's figures: mean validation curve, raw and smoothed

Every fold uses the run's seed, as the book's folds differ only by their data. The score of the
K-fold run (its sweep objective, and `kfold.mean` in run.json) is the mean over folds of the
*final-epoch* value of the monitored validation metric: the book's `np.mean(all_scores)` evaluates
each fold's model after its last epoch, not at its best epoch (the per-fold best is recorded too,
as `kfold.best_mean`).
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dlwp.errors import ConfigError, DlwpError
from dlwp.record import LOWER_IS_BETTER, RunRecord, read_metrics_csv, write_atomic, write_metrics_csv
from dlwp.redact import redact_argv, redact_tree

CURVE_FILE, FIGURE_FILE = "kfold_curve.csv", "kfold.png"
SMOOTH_FACTOR, SMOOTH_SKIP = 0.9, 10
"""The book's `smooth_curve(average_mae_history[10:])`: EMA factor 0.9, first 10 epochs dropped."""


# --------------------------------------------------------------------------------------------- configs


def apply_overrides(cfg: DictConfig, overrides: list[str], what: str) -> DictConfig:
    """A copy of `cfg` with `key=value` overrides merged into its typed schema (a typo fails here)."""
    for item in overrides:
        if "=" not in str(item) or str(item).startswith(("+", "~")):
            raise ConfigError(f"{what}: {item!r} is not a `key=value` override of an existing key")
    try:
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist([str(o) for o in overrides]))
    except (OmegaConfBaseException, ValueError) as err:
        raise ConfigError(f"{what}: cannot apply {list(overrides)}: {err}".replace("\n", " ")) from err


def fold_monitor(cfg: DictConfig) -> str:
    """`task.monitor` moved to the validation stage: a fold is judged on its held-out fold."""
    return "val/" + str(cfg.task.monitor).split("/", 1)[-1]


def _no_holdout(cfg: DictConfig) -> list[str]:
    """Overrides that switch off any other validation hold-out: in K-fold the folds are the validation sets."""
    out = []
    if "val_size" in cfg.data and cfg.data.val_size:
        out.append("data.val_size=0")
    if "val_from" in cfg.data and cfg.data.val_from == "test":
        out.append("data.val_from=tail")
    return out


def fold_config(cfg: DictConfig, fold: int) -> DictConfig:
    """Fold `fold`'s run: validated on that fold, trained on the others, not tested."""
    k = cfg.kfold.k
    overrides = [f"data.num_folds={k}", f"data.fold={fold}", "test=false", f"task.monitor={fold_monitor(cfg)}"]
    if fold > 0:  # the same network as fold 0: its summary table once is enough
        overrides.append("trainer.enable_model_summary=false")
    return apply_overrides(cfg, _no_holdout(cfg) + overrides, f"fold {fold}")


def final_config(cfg: DictConfig) -> DictConfig:
    """The final model: all training data, no validation (best.ckpt by training loss), tested;
    then the task's `kfold.final` overrides, which win."""
    base = ["data.num_folds=0", "data.fold=0", "task.monitor=train/loss", "task.monitor_mode=min"]
    base.append("trainer.enable_model_summary=false")  # the folds' network, already shown
    cfg = apply_overrides(cfg, _no_holdout(cfg) + base, "final model")
    return apply_overrides(cfg, list(cfg.kfold.final), "kfold.final")


def check(cfg: DictConfig) -> tuple[DictConfig | None, int]:
    """The final model's config (None without one) and the training set's size, after checking the
    runs' configs before anything is trained. The folds' configs differ only by `data.fold`: the
    first stands for all (`fold_config` builds each when its turn comes; for leave-one-out K is in
    the hundreds).

    Raises `ConfigError` for a K-fold request that cannot work.
    """
    from dlwp.config import validate

    k = cfg.kfold.k
    if k < 2:
        raise ConfigError(f"kfold.k={k}: K-fold validation needs at least 2 folds (kfold.k=0 trains once, as usual)")
    if cfg.ckpt_path is not None:
        raise ConfigError("ckpt_path: a K-fold run cannot be resumed from a checkpoint; start it again")
    devices = cfg.trainer.devices
    processes = devices if isinstance(devices, int) else len(devices) if isinstance(devices, list) else 1
    if (
        processes * cfg.trainer.num_nodes > 1
        or "ddp" in str(cfg.trainer.strategy)
        or "fsdp" in str(cfg.trainer.strategy)
    ):
        raise ConfigError(
            "kfold.k > 0 runs its folds one after another in one process; a multi-process trainer would "
            "start new workers for every fold. Use one device per K-fold run (the book's folds are small), "
            "or sweep the folds as separate jobs: dlwp train -m data.num_folds=K data.fold=0,1,...,K-1"
        )
    if "num_folds" not in cfg.data or "fold" not in cfg.data:
        raise ConfigError(
            f"kfold.k={k}: data module {cfg.data.get('_target_')} has no K-fold support (no data.num_folds/"
            "data.fold options); in-memory data modules (dlwp.data.base.InMemoryDataModule) have them"
        )
    first = fold_config(cfg, 0)
    final = final_config(cfg) if cfg.kfold.final else None
    for run_cfg in [first, *([final] if final is not None else [])]:
        validate(OmegaConf.merge(run_cfg))  # validate() fills in defaults in place: check a copy
    n = training_size(first)
    if k > n:
        raise ConfigError(f"kfold.k={k} is more than the {n} training samples: each fold needs at least one")
    return final, n


def training_size(cfg: DictConfig) -> int:
    """Samples in the training set before any fold is cut out of it (reads the data once)."""
    from hydra.utils import instantiate

    from dlwp.config import validate

    cfg = validate(apply_overrides(cfg, ["data.num_folds=0", *_no_holdout(cfg)], "training size"))
    datamodule = instantiate(cfg.data, seed=cfg.seed, _recursive_=False)  # a nested _target_ is the module's own
    datamodule.setup("fit")
    return datamodule.sizes()["train"]


# --------------------------------------------------------------------------------------------- running


def run_kfold(cfg: DictConfig) -> float:
    """Train the K folds, then the final model, into one directory; returns the K-fold score
    (mean over folds of the final-epoch `task.monitor` on the validation fold)."""
    from dlwp.paths import discard_if_unused
    from dlwp.train import job_overrides, output_dir

    run_dir = output_dir(cfg)
    try:
        final, n = check(cfg)
    except DlwpError:
        discard_if_unused(run_dir)
        raise
    for note in _no_holdout(cfg):
        print(f"dlwp kfold: {note} (the K folds are the validation sets)", file=sys.stderr)
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    write_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(redact_tree(plain))))
    record = RunRecord(run_dir, "kfold", Path(cfg.paths.root))
    record.update(
        task=cfg.task.name, section=cfg.task.section, seed=cfg.seed, config_file="config.yaml",
        overrides=redact_argv(job_overrides()), kfold={"k": cfg.kfold.k, "monitor": fold_monitor(cfg), "train_size": n},
    )  # fmt: skip
    try:
        fold_records = []
        for i in range(cfg.kfold.k):
            print(f"dlwp kfold: fold {i + 1}/{cfg.kfold.k}", file=sys.stderr)
            fold_records.append(train_into(fold_config(cfg, i), run_dir / f"fold-{i}"))
            record.update(kfold=record.data["kfold"] | {"folds_done": i + 1})  # where a failed run got to
            if i == 0:  # every fold reads the same files: the K-fold run names them too (not fold 0's sizes)
                record.update(data={k: v for k, v in (fold_records[0].get("data") or {}).items() if k != "sizes"})
        final_record = None
        if final is not None:
            print("dlwp kfold: final model on all training data", file=sys.stderr)
            final_record = train_into(final, run_dir / "final")
        results = summarise(cfg, run_dir, fold_records, final_record, n)
        record.update(**results)
        record.finish("completed")
    except BaseException as err:
        record.finish("interrupted" if isinstance(err, (KeyboardInterrupt, SystemExit)) else "failed", err)
        raise
    print(summary(cfg, record.data), file=sys.stderr)
    return float(record.data["kfold"]["mean"].get(fold_monitor(cfg), math.nan))


def train_into(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """`dlwp.train.train` into `run_dir`: one complete, ordinary run directory."""
    from dlwp import train as train_module

    run_dir.mkdir(parents=True)
    return train_module.train(cfg, run_dir=run_dir)


# --------------------------------------------------------------------------------------------- aggregation


def mean_std(rows: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample std (as `dlwp report` uses) of each key that every row has."""
    keys = [k for k in rows[0] if all(k in r for r in rows)] if rows else []
    mean = {k: round(statistics.fmean(r[k] for r in rows), 7) for k in keys}
    std = {k: round(statistics.stdev(r[k] for r in rows), 7) if len(rows) > 1 else 0.0 for k in keys}
    return mean, std


def validation_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k.startswith("val/")}


def mean_curve(histories: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Per epoch: how many folds reached it, and the mean and std over those folds of each
    validation metric (the book's `average_mae_history`, one column per metric)."""
    epochs = sorted({int(row["epoch"]) for history in histories for row in history})
    curve = []
    for epoch in epochs:
        rows = [validation_metrics(row) for history in histories for row in history if int(row["epoch"]) == epoch]
        mean, std = mean_std(rows)
        out: dict[str, float] = {"epoch": epoch, "folds": len(rows)}
        for key in mean:
            out[key], out[f"{key}_std"] = mean[key], std[key]
        curve.append(out)
    return curve


def best_of_curve(curve: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """The epoch where the *mean* validation curve is best: how the book picks the final model's epochs."""
    best = {}
    for key in [k for k in curve[0] if k.startswith("val/") and not k.endswith("_std")] if curve else []:
        rows = [r for r in curve if key in r]
        lower = key.rsplit("/", 1)[1].endswith(LOWER_IS_BETTER)
        row = (min if lower else max)(rows, key=lambda r, k=key: r[k])
        best[key] = {"value": row[key], "epoch": int(row["epoch"])}
    return best


def summarise(cfg: DictConfig, run_dir: Path, folds: list[dict], final: dict | None, n: int) -> dict[str, Any]:
    """The K-fold run's record fields, its curve file and its figure, from the finished runs."""
    histories = [read_metrics_csv(Path(r["run_dir"]) / "metrics.csv") for r in folds]
    curve = mean_curve(histories)
    write_metrics_csv(run_dir / CURVE_FILE, curve)
    finals = [validation_metrics(r["metrics"]["final"]) for r in folds]
    bests = [{k: v["value"] for k, v in validation_metrics(r["metrics"]["best"]).items()} for r in folds]
    mean, std = mean_std(finals)
    best_mean, best_std = mean_std(bests)
    monitor = fold_monitor(cfg)
    figure = plot_curve(curve, monitor, run_dir / FIGURE_FILE, cfg.task.reference.get(monitor))
    test = {k: v for k, v in (final or {}).get("metrics", {}).get("final", {}).items() if k.startswith("test/")}
    kfold = {
        "k": len(folds),
        "monitor": monitor,
        "score": "mean over folds of the final-epoch value (the book's np.mean(all_scores))",
        "train_size": n,
        "folds": [_fold_entry(i, r, n, len(folds)) for i, r in enumerate(folds)],
        "mean": mean,
        "std": std,
        "best_mean": best_mean,
        "best_std": best_std,
        "curve_file": CURVE_FILE,
        "figure": figure.name if figure else None,
        "final": None if final is None else _final_entry(cfg, final),
    }
    return {
        "kfold": kfold,
        # Generic tooling reads `metrics.final` against `task.reference`: the K-fold means of the
        # validation metrics and the final model's test metrics; `best` is the best epoch of the mean curve.
        "metrics": {"final": mean | test, "best": best_of_curve(curve)},
        "baselines": (final or {}).get("baselines", {}),
    }


def _fold_entry(i: int, record: dict[str, Any], n: int, k: int) -> dict[str, Any]:
    from dlwp.data.base import fold_bounds

    return {
        "fold": i,
        "run_dir": record["run_dir"],
        "val_range": list(fold_bounds(n, k, i)),
        "status": record["status"],
        "epochs": record["metrics"]["final"].get("epoch"),
        "wall_time_s": record.get("wall_time_s"),
        "final": validation_metrics(record["metrics"]["final"]),
        "best": validation_metrics(record["metrics"]["best"]),
    }


def _final_entry(cfg: DictConfig, record: dict[str, Any]) -> dict[str, Any]:
    final = record["metrics"]["final"]
    return {
        "run_dir": record["run_dir"],
        "overrides": list(cfg.kfold.final),
        "status": record["status"],
        "epochs": final.get("epoch"),
        "wall_time_s": record.get("wall_time_s"),
        "metrics": {k: v for k, v in final.items() if k.startswith(("train/", "test/"))},
    }


# --------------------------------------------------------------------------------------------- figure


def smooth_curve(points: list[float], factor: float = SMOOTH_FACTOR) -> list[float]:
    """The book's exponential moving average: s_0 = p_0, s_i = factor * s_(i-1) + (1 - factor) * p_i."""
    smoothed: list[float] = []
    for point in points:
        smoothed.append(smoothed[-1] * factor + point * (1 - factor) if smoothed else point)
    return smoothed


def plot_curve(curve: list[dict[str, float]], metric: str, path: Path, reference: float | None) -> Path | None:
    """The book's two figures side by side: the mean validation `metric` per epoch over folds, and
    the same smoothed without its first 10 epochs (only with more than 10). None without matplotlib."""
    rows = [r for r in curve if metric in r]
    if not rows:
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print("dlwp kfold: matplotlib is not installed: no kfold.png", file=sys.stderr)
        return None
    epochs, values = [r["epoch"] for r in rows], [r[metric] for r in rows]
    std = [r.get(f"{metric}_std", 0.0) for r in rows]
    smooth = len(rows) > SMOOTH_SKIP
    fig = Figure(figsize=(12.8 if smooth else 6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2 if smooth else 1, 1)
    ax.plot(epochs, values, "b", label=f"mean over {int(max(r['folds'] for r in rows))} folds")
    low, high = [v - s for v, s in zip(values, std, strict=True)], [v + s for v, s in zip(values, std, strict=True)]
    ax.fill_between(epochs, low, high, color="b", alpha=0.12, linewidth=0, label="± 1 std over folds")
    if reference is not None:
        ax.axhline(reference, linestyle="--", color="0.35", linewidth=1.2, label=f"book {metric} ({reference:g})")
    _finish(ax, f"Validation {_name(metric)} by epoch (K-fold mean)", metric)
    if smooth:
        # The book plots the smoothed points against 1..N; they are drawn here at their true epochs.
        ax = fig.add_subplot(1, 2, 2)
        ax.plot(epochs[SMOOTH_SKIP:], smooth_curve(values[SMOOTH_SKIP:]), "b", label=f"EMA {SMOOTH_FACTOR}")
        _finish(ax, f"Smoothed, first {SMOOTH_SKIP} epochs dropped", metric)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _name(metric: str) -> str:
    """`val/mae` -> `MAE`, `val/loss` -> `loss`: as the book labels its axes."""
    name = metric.split("/", 1)[-1]
    return name if name in ("loss", "acc") else name.upper()


def _finish(ax, title: str, metric: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title)
    ax.set_xlabel("Epochs")
    ax.set_ylabel(f"Validation {_name(metric)}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()


# --------------------------------------------------------------------------------------------- summary


def summary(cfg: DictConfig, data: dict[str, Any]) -> str:
    """A few lines for the terminal: each fold's score, their mean next to the book's, the test result."""
    kfold, reference = data["kfold"], cfg.task.reference

    def ref(key: str) -> str:
        return f"   (book: {reference[key]:.4f})" if key in reference else ""

    monitor = kfold["monitor"]
    lines = [
        f"dlwp: {cfg.task.name} (book {cfg.task.section}) {kfold['k']}-fold validation "
        f"finished in {data.get('wall_time_s', 0):.1f} s"
    ]
    for fold in kfold["folds"]:
        best = fold["best"].get(monitor, {})
        best_text = f"   (best {best['value']:.4f} at epoch {best['epoch']:g})" if best else ""
        lines.append(f"  fold {fold['fold']}: {monitor} {fold['final'].get(monitor, math.nan):.4f}{best_text}")
    for key, value in kfold["mean"].items():
        lines.append(f"  mean {key:<10} {value:.4f} ± {kfold['std'][key]:.4f}{ref(key)}")
    if kfold["final"]:
        lines.append(f"  final model ({', '.join(kfold['final']['overrides'])}):")
        for key, value in kfold["final"]["metrics"].items():
            if key.startswith("test/"):
                lines.append(f"    {key:<12} {value:.4f}{ref(key)}")
    if data.get("baselines"):
        lines.append("  baselines:    " + ", ".join(f"{k} {v:.4f}" for k, v in data["baselines"].items()))
    lines.append(f"  run: {data['run_dir']}")
    return "\n".join(lines)
