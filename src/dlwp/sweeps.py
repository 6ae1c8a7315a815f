"""After a multirun: `summary.csv` and `summary.md` in the sweep directory, one row per job.

A Hydra callback (see `conf/hydra/default.yaml`), so it runs for every sweeper and launcher:
grids, Optuna, joblib. Rows come from the jobs' `run.json` files, so a resumed sweep's summary
covers the jobs of every invocation, and failed jobs are listed as failed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dlwp.record import status_of, write_atomic, write_metrics_csv

SECRET_FREE_COLUMNS = ("job", "status", "overrides", "objective", "run_dir", "best_checkpoint")


def _overrides(record: dict[str, Any]) -> str:
    """The job's own overrides, from its recorded command line (what distinguishes it)."""
    args = record.get("command", [])[2:] if record.get("command", [""])[0] == "dlwp" else record.get("command", [])
    return " ".join(a for a in args if "=" in a and not a.startswith(("hydra.", "paths.", "-")))


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for run_json in sorted(sweep_dir.glob("*/run.json"), key=lambda p: (len(p.parent.name), p.parent.name)):
        record = json.loads(run_json.read_text())
        config = (run_json.parent / "config.yaml").read_text() if (run_json.parent / "config.yaml").exists() else ""
        monitor = next((line.split(":", 1)[1].strip() for line in config.splitlines()
                        if line.startswith("  monitor:")), None)  # fmt: skip
        metrics = record.get("metrics", {})
        best = metrics.get("best", {}).get(monitor, {}) if monitor else {}
        row = {
            "job": run_json.parent.name,
            "status": status_of(record),
            "overrides": " ".join(record.get("overrides", [])) or _overrides(record),
            "objective": best.get("value", math.nan),
            "monitor": monitor,
            **{k: v for k, v in metrics.get("final", {}).items() if k.startswith("test/")},
            "run_dir": str(run_json.parent),
            "best_checkpoint": record.get("checkpoints", {}).get("best", ""),
        }
        rows.append(row)
    return rows


def write_summary(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = collect(sweep_dir)
    if not rows:
        return rows
    columns = list(dict.fromkeys(k for row in rows for k in row))
    write_metrics_csv(sweep_dir / "summary.csv", rows)  # atomic: parallel sweep workers rewrite it
    shown = [c for c in columns if c not in ("run_dir", "best_checkpoint")]
    lines = [f"# Sweep {sweep_dir.name}", "", f"{len(rows)} jobs; objective = best `{rows[0]['monitor']}`.", ""]
    lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:
        cells = [f"{row.get(c):.4f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in shown]
        lines.append("| " + " | ".join(cells) + " |")
    write_atomic(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    return rows


def redact_sweep_config(sweep_dir: Path) -> None:
    """Hydra's own copy of the sweep's config (`multirun.yaml`) without credentials (an Optuna
    storage URL's password, a `hydra.job.env_set` token)."""
    from dlwp.redact import redact_tree

    path = sweep_dir / "multirun.yaml"
    try:
        plain = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except (OSError, ValueError):
        return
    redacted = redact_tree(plain)
    if redacted != plain:
        write_atomic(path, OmegaConf.to_yaml(OmegaConf.create(redacted)))


class SweepSummary(Callback):
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "MULTIRUN" in str(config.hydra.get("mode")):
            redact_sweep_config(Path(str(config.hydra.sweep.dir)))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        redact_sweep_config(sweep_dir)
        rows = write_summary(sweep_dir) if sweep_dir.is_dir() else []
        failed = [r["job"] for r in rows if r["status"] != "completed"]
        print(f"dlwp: sweep summary of {len(rows)} jobs in {sweep_dir / 'summary.md'}"
              + (f"; failed jobs: {', '.join(failed)}" if failed else ""))  # fmt: skip
        if self.report and rows:
            self._report(sweep_dir)

    def __init__(self, report: bool = True) -> None:
        self.report = report

    @staticmethod
    def _report(sweep_dir: Path) -> None:
        """The sweep's figures (`dlwp report`), so a sweep ends with its curves; never fails the sweep."""
        from dlwp.report import ReportError, report

        try:
            print(f"dlwp: sweep figures in {report(sweep_dir).parent}")
        except (ReportError, OSError, ValueError) as err:
            print(f"dlwp: no sweep figures: {err}")
