"""One `dlwp train` as a fresh process in a throw-away runs folder: what the benchmarks that
compare settings of dlwp against each other read back (its epoch rows and its run record)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def task_parser(doc: str, tasks: list[str]) -> argparse.ArgumentParser:
    """The options every per-task benchmark takes: --data-dir, --tasks (default: all), --write DOC."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--tasks", nargs="*", default=tasks)
    parser.add_argument("--write", type=Path, default=None, help="the doc whose generated block to rewrite")
    return parser


def train(overrides: list[str], data_dir: Path) -> tuple[list[dict[str, str]], dict]:
    """The run's metrics.csv rows and run.json; exits with the command and its stderr on failure."""
    with tempfile.TemporaryDirectory() as runs:
        cmd = ["dlwp", "train", *overrides, "trainer.enable_progress_bar=false", f"paths.data_dir={data_dir}",
               f"paths.runs_dir={runs}"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)}\n{done.stderr[-2000:]}")
        (record,) = Path(runs).glob("*/*/run.json")
        return list(csv.DictReader((record.parent / "metrics.csv").open())), json.loads(record.read_text())


def eager_cold_cached(run: Callable[[bool], tuple[list[float], str]]) -> tuple[tuple[list[float], str], ...]:
    """`run(compiled)` three times: eager, then compiled with inductor's cache empty (what a fresh
    machine pays), then compiled with the cache that run filled (what every later run pays). Each
    `run` returns its epochs' seconds and a last loss; the cache is a throw-away directory."""
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            return run(False), run(True), run(True)
        finally:
            if before is None:
                del os.environ["TORCHINDUCTOR_CACHE_DIR"]
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = before
