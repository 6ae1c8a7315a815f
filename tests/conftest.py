"""Shared helpers: run the real `dlwp` CLI in a subprocess, find its runs, locate the data mirror."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Real datasets beside the project (../shared/datasets); tests that need them skip without them.
MIRROR = Path(os.environ.get("DLWP_DATA_MIRROR", ROOT.parent / "shared" / "datasets"))


def dlwp(*args: str, runs: Path | None = None, timeout: float = 600, env: dict | None = None,
         check: bool = True) -> subprocess.CompletedProcess:  # fmt: skip
    """Run `dlwp ARGS` as users do; train/eval/ensemble runs go to `runs`, without progress bars."""
    cmd = [sys.executable, "-m", "dlwp.cli", *args]
    if args and args[0] in ("train", "eval", "ensemble"):
        cmd += ["trainer.enable_progress_bar=false"]
        if runs is not None:
            cmd += [f"paths.runs_dir={runs}"]
    full_env = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}  # env={"X": None} unsets X
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n--- stderr ---\n{proc.stderr[-4000:]}")
    return proc


def run_dirs(runs: Path, task: str = "digits_dense") -> list[Path]:
    """Run directories of `task`, oldest first."""
    return sorted(p for p in (runs / task).iterdir() if p.is_dir()) if (runs / task).is_dir() else []


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def metric_rows(run_dir: Path) -> list[dict[str, float]]:
    """metrics.csv without the wall-clock column, which legitimately differs between runs."""
    from dlwp.record import read_metrics_csv

    return [{k: v for k, v in row.items() if k != "time/epoch_s"} for row in read_metrics_csv(run_dir / "metrics.csv")]


def mirror_data_dir(tmp_path_factory, *files: str) -> Path:
    """A fresh data dir linking `files` (paths relative to the mirror, e.g. `mnist/mnist.npz`);
    the calling test skips when one is absent."""
    data_dir = tmp_path_factory.mktemp("data")
    for name in files:
        source = MIRROR / name
        if not source.is_file():
            pytest.skip(f"the mirror's {source} is absent")
        (data_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / name).symlink_to(source)
    return data_dir


@pytest.fixture(scope="session")
def mnist_data_dir(tmp_path_factory) -> Path:
    """A data dir holding mnist/mnist.npz from the mirror (skips when the mirror is absent)."""
    return mirror_data_dir(tmp_path_factory, "mnist/mnist.npz")
