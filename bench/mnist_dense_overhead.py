"""Epoch time of book task 2.1 through `dlwp train` vs a minimal hand-written PyTorch loop.

Both run as fresh processes with the same data, model, init, optimiser, batch size and torch
threads, alternately, `--reps` times each. The first epoch of every run is warm-up and is not
counted; the figure is the median epoch time over the rest. Prints one line per figure; exits
non-zero only on error, never on a slow result.

    python bench/mnist_dense_overhead.py --npz ../shared/datasets/mnist/mnist.npz --reps 3 --epochs 4
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def raw_epochs(npz: Path, epochs: int, env: dict) -> list[float]:
    out = subprocess.run(
        [sys.executable, str(HERE / "raw_loop.py"), "--npz", str(npz), "--epochs", str(epochs)],
        capture_output=True, text=True, check=True, env=env,
    ).stdout  # fmt: skip
    return [json.loads(line)["epoch_s"] for line in out.splitlines() if line.startswith("{")]


def dlwp_epochs(npz: Path, epochs: int, env: dict, work: Path, progress_bar: bool) -> list[float]:
    data_dir = work / "data"
    (data_dir / "mnist").mkdir(parents=True, exist_ok=True)
    target = data_dir / "mnist" / "mnist.npz"
    if not target.exists():
        target.symlink_to(npz.resolve())
    runs = work / "runs"
    subprocess.run(
        ["dlwp", "train", "task=mnist_dense", f"trainer.max_epochs={epochs}", "test=false",
         f"trainer.enable_progress_bar={str(progress_bar).lower()}",
         f"paths.data_dir={data_dir}", f"paths.runs_dir={runs}"],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    newest = max((runs / "mnist_dense").iterdir(), key=lambda p: p.stat().st_mtime)
    with open(newest / "metrics.csv") as f:
        return [float(row["time/epoch_s"]) for row in csv.DictReader(f)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", type=Path, default=Path("data/mnist/mnist.npz"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--no-progress-bar", action="store_true", help="time dlwp without its progress bar")
    args = parser.parse_args()
    if not args.npz.is_file():
        print(f"error: {args.npz} not found (pass --npz PATH to a Keras mnist.npz)", file=sys.stderr)
        return 2
    env = dict(os.environ)
    work = Path(tempfile.mkdtemp(prefix="dlwp-bench-"))
    raw, ours = [], []
    try:
        for rep in range(args.reps):
            order = ("raw", "dlwp") if rep % 2 == 0 else ("dlwp", "raw")
            for which in order:
                t0 = time.perf_counter()
                if which == "raw":
                    times = raw_epochs(args.npz, args.epochs, env)
                    raw += times[1:]
                else:
                    times = dlwp_epochs(args.npz, args.epochs, env, work, not args.no_progress_bar)
                    ours += times[1:]
                print(f"rep {rep + 1} {which:<4} epochs_s {' '.join(f'{t:.3f}' for t in times)}"
                      f"  (process {time.perf_counter() - t0:.1f} s)", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raw_med, ours_med = statistics.median(raw), statistics.median(ours)
    spread = lambda xs: f"{min(xs):.3f}-{max(xs):.3f}"  # noqa: E731
    import torch

    print(f"threads {torch.get_num_threads()} (torch), cpus {os.cpu_count()}")
    print(f"raw_loop  median_epoch_s {raw_med:.3f}  range {spread(raw)}  samples_per_s {60000 / raw_med:,.0f}")
    print(f"dlwp      median_epoch_s {ours_med:.3f}  range {spread(ours)}  samples_per_s {60000 / ours_med:,.0f}")
    print(f"speed_ratio dlwp/raw {raw_med / ours_med:.3f}  (goal >= 0.90)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
