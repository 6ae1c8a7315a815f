"""`dlwp report PATH`: book-style figures and a markdown summary of a run or of a Hydra sweep.

A run directory (holding `run.json`) gets the book's curves (Figures 3.7-3.10: training loss as
dots, validation loss as a line; one figure per metric) next to the book's reported numbers. A sweep
directory (jobs with `*/run.json` one level down) gets one curve per job, labelled by the config keys
that tell the jobs apart, or, when the jobs differ only by seed, the mean ± std over seeds.

Import-light on purpose: no torch, no Lightning; matplotlib (Agg canvas) is imported only to draw.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import shlex
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlwp.record import read_metrics_csv, status_of, write_atomic

PROG = "dlwp report"
STAGES = ("train", "val", "test")
METRIC_NAMES = {"loss": "loss", "acc": "accuracy", "mae": "MAE", "mse": "MSE", "rmse": "RMSE"}
REFERENCE_COLOURS = ("0.35", "tab:red", "tab:green", "tab:purple")
SEED_KEY = "seed"
IGNORED_PREFIXES = ("paths.",)  # where a run was written says nothing about how it was trained
LABEL_KEYS_MAX = 3


class ReportError(Exception):
    """A path that cannot be reported on; the CLI prints it as one line and exits with code 2."""


# --------------------------------------------------------------------------------------------- loading


@dataclass
class Run:
    """One run directory as the report sees it: record, config, per-epoch history, and why it is skipped."""

    path: Path
    record: dict[str, Any]
    config: dict[str, Any]
    history: list[dict[str, float]] | None
    problem: str | None = None  # what is wrong with its metrics.csv; None when it reads fine
    flat: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.flat = flatten(self.config)

    @property
    def status(self) -> str:
        return status_of(self.record)

    @property
    def plottable(self) -> bool:
        """In a sweep only completed jobs are drawn: a partial curve would read as a finished result."""
        return self.problem is None and self.status == "completed"

    @property
    def task(self) -> dict[str, Any]:
        task = self.config.get("task")
        return task if isinstance(task, dict) else {}

    @property
    def reference(self) -> dict[str, float]:
        ref = self.task.get("reference") or {}
        return {str(k): float(v) for k, v in ref.items() if isinstance(v, (int, float))}

    @property
    def monitor(self) -> str:
        """The monitored metric; without a config, validation loss if logged, else training loss."""
        if self.task.get("monitor"):
            return str(self.task["monitor"])
        has_val = any("val/loss" in row for row in self.history or [])
        return "val/loss" if has_val else "train/loss"

    @property
    def final(self) -> dict[str, float]:
        """Final metrics of the record; for a run that did not finish, its last recorded epoch."""
        final = (self.record.get("metrics") or {}).get("final")
        if final:
            return dict(final)
        return dict(self.history[-1]) if self.history else {}

    @property
    def best(self) -> dict[str, dict[str, float]]:
        best = (self.record.get("metrics") or {}).get("best")
        if best:
            return dict(best)
        from dlwp.record import best_of

        return best_of(self.history or [])


def save_figure(fig, path: Path, **options: Any) -> None:
    """A figure written atomically (a reader never sees half a PNG)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", **options)
    write_atomic(path, buffer.getvalue())


def load_run(path: Path) -> Run:
    """Read whatever a run directory holds; a missing or broken file becomes a `problem`, not a crash."""
    record = _read_json(path / "run.json")
    config = _read_yaml(path / "config.yaml")
    history: list[dict[str, float]] | None = None
    problem = None
    csv_path = path / "metrics.csv"
    if not csv_path.is_file():
        problem = "no metrics.csv"
    else:
        try:
            history = read_metrics_csv(csv_path)
        except (OSError, ValueError, csv.Error) as err:
            problem = f"unreadable metrics.csv ({err})"
        else:
            history = [row for row in history if "epoch" in row] or None
            problem = None if history else "metrics.csv has no epochs"
    return Run(path, record, config, history, problem)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"model": {"hidden": [16]}}` → `{"model.hidden": [16]}`: configs compare key by key."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def find_jobs(path: Path, out: Path) -> list[Path]:
    """Job directories of a sweep: those one level down holding a `run.json` (the report's own excepted)."""
    jobs = [d for d in path.iterdir() if d.is_dir() and (d / "run.json").is_file() and d.resolve() != out.resolve()]
    return sorted(jobs, key=lambda d: (0, int(d.name), "") if d.name.isdigit() else (1, 0, d.name))


# --------------------------------------------------------------------------------------------- metrics


def metric_name(metric: str) -> str:
    """`acc` -> `accuracy`; a named output's `rating/mae` -> `rating MAE`."""
    output, _, name = metric.rpartition("/")
    label = METRIC_NAMES.get(name, name)
    return f"{output} {label}" if output else label


def figure_file(out: Path, metric: str) -> Path:
    """One PNG per metric; a named output's metrics (`rating/mae`) as `rating_mae.png`."""
    return out / f"{metric.replace('/', '_')}.png"


def metric_order(key: str) -> tuple[int, int, str]:
    """train, val, test; loss first within a stage: the order the book talks about them."""
    stage, _, metric = key.partition("/")
    rank = STAGES.index(stage) if stage in STAGES else len(STAGES)
    return rank, metric != "loss", metric


def is_metric(key: str) -> bool:
    return "/" in key and not key.startswith("time/")


def families(history: list[dict[str, float]]) -> list[str]:
    """Metric names logged per epoch (`loss`, `acc`, `mae`, ...): one figure each."""
    names = {k.split("/", 1)[1] for row in history for k in row if k.split("/", 1)[0] in ("train", "val")}
    return sorted(names, key=lambda n: (n != "loss", n))


def series(history: list[dict[str, float]], key: str) -> tuple[list[float], list[float]]:
    """Epochs and values of one metric, skipping epochs that did not log it (e.g. no validation that epoch)."""
    rows = [row for row in history if key in row]
    return [row["epoch"] for row in rows], [row[key] for row in rows]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n-1); a single value has no spread, reported as 0."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def band(runs: list[Run], key: str) -> tuple[list[float], list[float], list[float], int]:
    """Per-epoch mean and std of `key` over runs (each epoch over the runs that reached it)."""
    by_epoch: dict[float, list[float]] = {}
    for run in runs:
        for epoch, value in zip(*series(run.history or [], key), strict=True):
            by_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(by_epoch)
    stats = [mean_std(by_epoch[e]) for e in epochs]
    n = sum(1 for run in runs if series(run.history or [], key)[0])
    return epochs, [m for m, _ in stats], [s for _, s in stats], n


# --------------------------------------------------------------------------------------------- sweeps


def differing_keys(runs: list[Run]) -> list[str]:
    """Config keys whose value is not the same in every job (paths ignored), sorted."""
    configured = [run for run in runs if run.flat]
    keys = {k for run in configured for k in run.flat if not k.startswith(IGNORED_PREFIXES)}
    missing = object()
    return sorted(k for k in keys if len({_fmt_value(run.flat.get(k, missing)) for run in configured}) > 1)


def swept_keys(sweep: Path) -> list[str]:
    """The override keys of the sweep's command line (`multirun.yaml`), to put first in legends."""
    config = _read_yaml(sweep / "multirun.yaml")
    overrides = ((config.get("hydra") or {}).get("overrides") or {}).get("task") or []
    return [str(o).split("=", 1)[0].lstrip("+~") for o in overrides if "=" in str(o)]


def label_keys(differing: list[str], swept: list[str]) -> list[str]:
    """Keys for legends: the swept ones when known (a config group → its `.name`), else the first few differing."""
    chosen = [k for k in differing if k in swept]
    chosen += [f"{g}.name" for g in swept if f"{g}.name" in differing and f"{g}.name" not in chosen]
    return chosen or differing[:LABEL_KEYS_MAX]


def job_label(run: Run, keys: list[str]) -> str:
    """`model.hidden=[16] seed=1`: what sets this job apart; the directory name when nothing does."""
    parts = [f"{k}={_fmt_value(run.flat[k])}" for k in keys if k in run.flat]
    return " ".join(parts) or run.path.name


def _fmt_value(value: Any) -> str:
    """A config value written as a Hydra override would write it."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fmt_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_fmt_value(v)}" for k, v in value.items()) + "}"
    return str(value)


# --------------------------------------------------------------------------------------------- figures


def _axes():
    """A fresh figure on an Agg canvas, outside pyplot: no global state, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _draw_reference(ax, reference: dict[str, float], metric: str) -> None:
    """The book's reported numbers for this metric, as dashed horizontal lines."""
    refs = sorted(
        ((k, v) for k, v in reference.items() if k.endswith(f"/{metric}")), key=lambda kv: metric_order(kv[0])
    )
    for (key, value), colour in zip(refs, REFERENCE_COLOURS, strict=False):
        ax.axhline(value, linestyle="--", color=colour, linewidth=1.2, label=f"book {key} ({value:g})")


def _save(fig, ax, title: str, metric: str, path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title)
    ax.set_xlabel("Epochs")
    ax.set_ylabel(metric_name(metric).capitalize() if metric in ("loss", "acc") else metric_name(metric))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    return path


def plot_run(run: Run, out: Path, title_suffix: str = "") -> list[Path]:
    """The book's figures: training as dots ('bo'), validation as a line ('b'), one PNG per metric."""
    paths = []
    for metric in families(run.history or []):
        fig, ax = _axes()
        name = metric_name(metric)
        drawn = []
        for stage, fmt, label in (("train", "bo", "Training"), ("val", "b", "Validation")):
            epochs, values = series(run.history or [], f"{stage}/{metric}")
            if epochs:
                ax.plot(epochs, values, fmt if len(epochs) > 1 or stage == "train" else "b.", label=f"{label} {name}")
                drawn.append(label)
        _draw_reference(ax, run.reference, metric)
        title = f"{' and '.join(drawn).capitalize()} {name}{title_suffix}"
        paths.append(_save(fig, ax, title, metric, figure_file(out, metric)))
    rates = sorted({k for row in run.history or [] for k in row if k.startswith("lr/")})
    if rates:  # a scheduled rate (lr/<optimiser>): what the curves above were trained with
        fig, ax = _axes()
        for key in rates:
            epochs, values = series(run.history or [], key)
            ax.plot(epochs, values, "b.-" if len(rates) == 1 else ".-", label=key)
        if min(v for k in rates for v in series(run.history or [], k)[1]) > 0:
            ax.set_yscale("log")  # a plateau schedule's steps of x0.1, a decay to near 0: all legible
        paths.append(_save(fig, ax, f"Learning rate each epoch trains with{title_suffix}", "learning rate",
                           figure_file(out, "lr")))  # fmt: skip
    return paths


def plot_overlay(runs: list[Run], labels: dict[Path, str], out: Path, title_suffix: str = "") -> list[Path]:
    """One curve per job for each metric: validation where logged, else training."""
    paths = []
    for metric in _sweep_families(runs):
        fig, ax = _axes()
        stages = set()
        for run in runs:
            stage = "val" if series(run.history or [], f"val/{metric}")[0] else "train"
            epochs, values = series(run.history or [], f"{stage}/{metric}")
            if epochs:
                stages.add(stage)
                label = labels[run.path] + ("" if stage == "val" else " (train)")
                ax.plot(epochs, values, "o-", markersize=3, label=label)
        _draw_reference(ax, runs[0].reference, metric)
        which = "Validation" if stages == {"val"} else "Training" if stages == {"train"} else "Validation/training"
        paths.append(
            _save(fig, ax, f"{which} {metric_name(metric)} by job{title_suffix}", metric, figure_file(out, metric))
        )
    return paths


def plot_seed_bands(runs: list[Run], out: Path, title_suffix: str = "") -> list[Path]:
    """Mean line and shaded ±1 std over seeds, for training and validation, one PNG per metric."""
    paths = []
    for metric in _sweep_families(runs):
        fig, ax = _axes()
        name, drawn = metric_name(metric), []
        for stage, colour, label in (("train", "tab:blue", "Training"), ("val", "tab:orange", "Validation")):
            epochs, mean, std, n = band(runs, f"{stage}/{metric}")
            if not epochs:
                continue
            drawn.append(label)
            ax.plot(epochs, mean, "o-", color=colour, markersize=3, label=f"{label} {name} (mean ± std, {n} seeds)")
            low = [m - s for m, s in zip(mean, std, strict=True)]
            high = [m + s for m, s in zip(mean, std, strict=True)]
            ax.fill_between(epochs, low, high, color=colour, alpha=0.25, linewidth=0)
        _draw_reference(ax, runs[0].reference, metric)
        title = f"{' and '.join(drawn).capitalize()} {name} over seeds{title_suffix}"
        paths.append(_save(fig, ax, title, metric, figure_file(out, metric)))
    return paths


def baseline_task(runs: list[Run], wanted: str | None) -> str | None:
    """The task every other task is compared with: `--baseline`, or the one task named *_original."""
    names = {run.record.get("task") or run.task.get("name") for run in runs}
    if wanted:
        return wanted if wanted in names else None
    originals = [n for n in names if n and n.endswith("_original")]
    return originals[0] if len(names) > 1 and len(originals) == 1 else None


def plot_against_baseline(runs: list[Run], baseline: str, out: Path, metric: str = "loss") -> list[Path]:
    """Book 4.4's figures: validation `metric` per epoch, each variant against the baseline task
    (crosses: baseline, dots: variant); several seeds of a task are averaged."""
    by_task: dict[str, list[Run]] = {}
    for run in runs:
        by_task.setdefault(run.record.get("task") or run.task.get("name"), []).append(run)
    key = f"val/{metric}"
    base_epochs, base_mean, _, base_n = band(by_task[baseline], key)
    paths = []
    for task, group in sorted(by_task.items()):
        epochs, mean, _, n = band(group, key)
        if task == baseline or not epochs or not base_epochs:
            continue
        fig, ax = _axes()
        ax.plot(
            base_epochs,
            base_mean,
            "b+",
            markersize=8,
            label=f"{baseline}" + (f" (mean of {base_n})" if base_n > 1 else ""),
        )
        ax.plot(epochs, mean, "bo", markersize=4, label=f"{task}" + (f" (mean of {n})" if n > 1 else ""))
        paths.append(_save(fig, ax, f"Validation {metric_name(metric)}: {task} vs {baseline}", metric,
                           out / f"vs_{baseline}_{task}.png"))  # fmt: skip
    return paths


def _sweep_families(runs: list[Run]) -> list[str]:
    names = {m for run in runs for m in families(run.history or [])}
    return sorted(names, key=lambda n: (n != "loss", n))


# --------------------------------------------------------------------------------------------- summaries


def _num(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"  # a decayed rate: 2.7e-06
    return "–"


def _cell(text: Any) -> str:
    """Markdown table cell: pipes escaped, newlines flattened, long errors shortened."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= 100 else text[:97] + "..."


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _status(run: Run) -> str:
    error = run.record.get("error")
    return f"{run.status} ({error})" if error and run.status != "completed" else run.status


def _command(run: Run) -> str:
    command = run.record.get("command")
    if isinstance(command, list):
        return shlex.join(str(c) for c in command)
    return str(command) if command else "–"


def _figures(paths: list[Path], out: Path) -> list[str]:
    return [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in paths] or ["No per-epoch metrics to plot."]


def run_summary(run: Run, figures: list[Path], out: Path) -> str:
    """summary.md of one run: what ran, how it ended, our numbers next to the book's, the figures."""
    task, epochs = run.task, len(run.history or [])
    name = run.record.get("task") or task.get("name") or run.path.name
    section = run.record.get("section") or task.get("section") or "–"
    lines = [f"# {name} (book {section})", ""]
    if task.get("title"):
        lines += [str(task["title"]), ""]
    lines += _table(
        ["Run", "Value"],
        [
            ["Directory", f"`{run.path}`"],
            ["Task", str(name)],
            ["Book section", str(section)],
            ["Status", _status(run)],
            ["Seed", str(run.record.get("seed", run.config.get(SEED_KEY, "–")))],
            ["Epochs", str(epochs)],
            ["Monitor", run.monitor],
        ],
    )
    if run.status != "completed":
        lines += ["", f"The run did not complete: final metrics are those of its last recorded epoch ({epochs})."]
    lines += ["", "## Metrics", "", *_metrics_table(run), "", "## Figures", "", *_figures(figures, out)]
    if run.task.get("reference_source"):
        lines += ["", f"Book numbers: {run.task['reference_source']}."]
    lines += ["", "## Command", "", "```", _command(run), "```", ""]
    return "\n".join(lines)


def _metrics_table(run: Run) -> list[str]:
    final, best, ref = run.final, run.best, run.reference
    keys = sorted({k for k in final if is_metric(k)} | set(ref), key=metric_order)
    rows = []
    for key in keys:
        b = best.get(key)
        best_text = f"{_num(b['value'])} (epoch {int(b['epoch'])})" if isinstance(b, dict) else "–"
        rows.append([key, _num(final.get(key)), best_text, _num(ref.get(key))])
    return _table(["Metric", "Final", "Best (epoch)", "Book"], rows)


def sweep_summary(sweep: Path, runs: list[Run], differing: list[str], labels: dict[Path, str], figures, out) -> str:
    """summary.md of a sweep: one row per job, what sets it apart, and (seed sweeps) mean ± std."""
    plotted = [run for run in runs if run.plottable]
    seed_only = differing == [SEED_KEY]
    tasks = sorted(
        {f"{r.record.get('task') or r.task.get('name')} (book {r.record.get('section', '–')})" for r in runs}
    )
    lines = [f"# Sweep {sweep.name}", "", f"Sweep directory: `{sweep}`", ""]
    lines += [f"Task: {', '.join(tasks)}", ""]
    lines += [f"Jobs: {len(runs)} ({len(plotted)} completed and plotted, {len(runs) - len(plotted)} not plotted)", ""]
    lines += [f"Jobs differ by: {', '.join(f'`{k}`' for k in differing) or 'nothing (identical configs)'}", ""]
    lines += ["## Jobs", "", *_jobs_table(runs, labels)]
    if seed_only and plotted:
        lines += ["", f"## Mean ± std over seeds (n = {len(plotted)}, sample std)", "", *_seed_table(plotted)]
    skipped = [run for run in runs if not run.plottable]
    if skipped:
        lines += ["", "## Not plotted", ""]
        lines += [
            f"- `{r.path.name}/` ({labels[r.path]}): {'; '.join(filter(None, (_status(r), r.problem)))}"
            for r in skipped
        ]
    lines += ["", "## Figures", "", *_figures(figures, out)]
    commands = list(dict.fromkeys(_command(run) for run in runs))
    lines += ["", "## Command" if len(commands) == 1 else "## Commands", "", "```", *commands, "```"]
    return "\n".join(lines) + "\n"


def _jobs_table(runs: list[Run], labels: dict[Path, str]) -> list[str]:
    monitors = sorted({run.monitor for run in runs})
    monitor = monitors[0] if len(monitors) == 1 else "monitor"
    tests = sorted({k for run in runs for k in run.final if k.startswith("test/")}, key=metric_order)
    header = ["Job", "Overrides", "Status", "Epochs", f"Final {monitor}", f"Best {monitor} (epoch)", *tests]
    rows = []
    for run in runs:
        best = run.best.get(run.monitor)
        best_text = f"{_num(best['value'])} ({int(best['epoch'])})" if isinstance(best, dict) else "–"
        final = run.final.get(run.monitor)
        rows.append(
            [
                f"`{run.path.name}`",
                labels[run.path],
                _status(run),
                str(len(run.history or [])),
                _num(final) + ("" if len(monitors) == 1 else f" ({run.monitor})"),
                best_text,
                *(_num(run.final.get(k)) for k in tests),
            ]
        )
    return _table(header, rows)


def _seed_table(runs: list[Run]) -> list[str]:
    ref = runs[0].reference
    keys = sorted({k for run in runs for k in run.final if is_metric(k)} | set(ref), key=metric_order)
    rows = []
    for key in keys:
        values = [run.final[key] for run in runs if key in run.final]
        if not values:
            rows.append([key, "–", "–", "0", _num(ref.get(key))])
            continue
        mean, std = mean_std(values)
        rows.append([key, _num(mean), _num(std), str(len(values)), _num(ref.get(key))])
    return _table(["Metric (final)", "Mean", "Std", "n", "Book"], rows)


# --------------------------------------------------------------------------------------------- entry


def report(path: Path, out: Path | None = None, baseline: str | None = None) -> Path:
    """Write the figures and `summary.md` of a run or sweep directory into `out`; returns summary.md's path."""
    if not path.exists():
        raise ReportError(f"{path}: no such directory")
    if not path.is_dir():
        raise ReportError(f"{path}: not a directory (give a run directory or a sweep directory)")
    out = out if out is not None else path / "report"
    if (path / "images").is_dir() and _read_json(path / "run.json").get("kind", "").startswith(PICTURE_KINDS):
        return _report_pictures(path, out)
    jobs = find_jobs(path, out)
    if (path / "run.json").is_file() and not (jobs and not (path / "metrics.csv").exists()):
        return _report_run(path, out)
    # a sweep, or a run made of runs (a K-fold run: fold-0/, fold-1/, ..., final/)
    if not jobs:
        raise ReportError(
            f"{path}: not a run directory (no run.json) nor a sweep directory (no */run.json one level down)"
        )
    return _report_sweep(path, jobs, out, baseline)


def _report_run(path: Path, out: Path) -> Path:
    run = load_run(path)
    if not run.history:
        raise ReportError(f"{path}: {run.problem or 'no metrics.csv'} (status: {run.status}): nothing to report")
    _check_matplotlib()
    out.mkdir(parents=True, exist_ok=True)
    name = run.record.get("task") or run.task.get("name")
    figures = plot_run(run, out, f" ({name})" if name else "")
    summary = out / "summary.md"
    write_atomic(summary, run_summary(run, figures, out))
    return summary


def _report_sweep(path: Path, jobs: list[Path], out: Path, baseline: str | None = None) -> Path:
    runs = [load_run(job) for job in jobs]
    plotted = [run for run in runs if run.plottable]
    differing = differing_keys(runs)
    labels = {run.path: job_label(run, label_keys(differing, swept_keys(path))) for run in runs}
    _check_matplotlib()
    out.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    if plotted:
        seed_only = differing == [SEED_KEY]
        names = {run.record.get("task") or run.task.get("name") for run in plotted}
        suffix = f" ({names.pop()})" if len(names) == 1 and None not in names else ""
        if seed_only:
            figures = plot_seed_bands(plotted, out, suffix)
        else:
            figures = plot_overlay(plotted, labels, out, suffix)
        versus = baseline_task(plotted, baseline)
        if versus:
            figures += plot_against_baseline(plotted, versus, out)
    else:
        print(f"{PROG}: warning: no completed job with metrics in {path}: summary only", file=sys.stderr)
    summary = out / "summary.md"
    write_atomic(summary, sweep_summary(path, runs, differing, labels, figures, out))
    return summary


PICTURE_KINDS = ("visualize", "dream", "style")
"""Runs of `dlwp visualize` / `dream` / `style`: pictures and per-step losses, not epochs."""


def _report_pictures(path: Path, out: Path) -> Path:
    """summary.md of a visualisation run: its numbers, its loss curves, every picture it made."""
    rec = _read_json(path / "run.json")
    out.mkdir(parents=True, exist_ok=True)
    kind = rec.get("kind", "?")
    network = rec.get("network") or {}
    inputs = rec.get("inputs") or {}
    lines = [f"# dlwp {kind.replace('-', ' ')}", ""]
    rows = [["Directory", f"`{path}`"], ["Status", status_of(rec)],
            ["Network", str(network.get("backbone") or network.get("checkpoint") or "–")],
            ["Weights sha256", str(network.get("sha256", "–"))[:16]]]  # fmt: skip
    rows += [
        [f"Input {name}", f"{i.get('spec')} (sha256 {str(i.get('sha256', ''))[:12]})"] for name, i in inputs.items()
    ]
    rows += [["Seed", str(rec.get("seed", "–"))], ["Wall time", f"{rec.get('wall_time_s', 0):.1f} s"]]
    lines += _table(["Run", "Value"], rows)
    lines += ["", "## Numbers", "", "```json", json.dumps(rec.get("metrics", {}), indent=1)[:4000], "```", ""]
    losses = path / "losses.csv"
    if losses.is_file():
        _check_matplotlib()
        lines += ["## Loss", "", f"![loss]({_plot_losses(losses, out / 'loss.png').relative_to(out).as_posix()})", ""]
    lines += ["## Pictures", ""]
    for picture in sorted((path / "images").glob("*.png")):
        lines += [f"![{picture.stem}]({Path('..') / 'images' / picture.name})" if out == path / "report"
                  else f"![{picture.stem}]({picture.resolve().as_uri()})", ""]  # fmt: skip
    lines += ["## Command", "", "```", shlex.join(str(c) for c in rec.get("command", [])), "```", ""]
    summary = out / "summary.md"
    write_atomic(summary, "\n".join(lines))
    return summary


def _plot_losses(csv_path: Path, target: Path) -> Path:
    """One curve per layer (filters) or octave (dream), or the loss per iteration (style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    group = next((k for k in ("layer", "octave") if rows and k in rows[0]), None)
    x_key = "step" if rows and "step" in rows[0] else "iteration"
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r[group] for r in rows) if group else [None]:
        picked = [r for r in rows if group is None or r[group] == name]
        ax.plot([float(r[x_key]) for r in picked], [float(r["loss"]) for r in picked],
                label=f"{group} {name}" if group else "loss")  # fmt: skip
    if group is None:
        ax.set_yscale("log")
    ax.set_xlabel(x_key)
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    save_figure(fig, target, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return target


def _check_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise ReportError("matplotlib is needed to draw the figures: pip install matplotlib")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Book-style figures and a markdown summary of a run or a sweep directory."
    )
    parser.add_argument("path", metavar="PATH", type=Path, help="a run directory (run.json) or a sweep directory")
    parser.add_argument("--out", metavar="DIR", type=Path, default=None, help="where to write (default: PATH/report/)")
    parser.add_argument(
        "--baseline", metavar="TASK", default=None,
        help="sweep over tasks: also plot each task's validation loss against this one (default: the *_original task)",
    )  # fmt: skip
    return parser


def main(argv: list[str]) -> int:
    """`dlwp report PATH [--out DIR]`: 0 when written, 2 (one line on stderr) for a path it cannot report on."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help, or argparse's own usage error (already printed)
        return stop.code if isinstance(stop.code, int) else 2
    try:
        summary = report(args.path, args.out, args.baseline)
    except ReportError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{PROG}: error: cannot write the report: {err}", file=sys.stderr)
        return 2
    print(f"{PROG}: wrote {summary.parent}/ (summary.md and figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
