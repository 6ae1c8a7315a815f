"""Is dlwp slower than it was? Epoch times of `dlwp train` from another checkout vs this one.

    git worktree add /tmp/dlwp-old <commit>
    python bench/ab_checkout.py --old /tmp/dlwp-old --data-dir data --args "task=mnist_dense trainer.max_epochs=3"

Both sides run as fresh processes with this environment's packages, alternately (`--reps` each),
the old one with its `src/` first on PYTHONPATH (and so its `conf/`); the first epoch of each run is
not counted. The host's noise is shared by both sides, so the ratio is steadier than two separate
`bench/overhead.py` tables. Prints each run's epoch times and the medians.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(checkout: Path | None, args: list[str], data_dir: Path, runs: Path) -> list[float]:
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout / "src")
    shutil.rmtree(runs, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "dlwp.cli", "train", *args, "test=false", f"paths.data_dir={data_dir}",
                    f"paths.runs_dir={runs}"], env=env, check=True, capture_output=True, cwd=runs.parent)  # fmt: skip
    (metrics,) = runs.glob("*/*/metrics.csv")
    with open(metrics) as f:
        return [float(row["time/epoch_s"]) for row in csv.DictReader(f)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--args", default="task=mnist_dense trainer.max_epochs=3", help="dlwp train overrides")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dlwp-ab-"))
    times: dict[str, list[float]] = {"old": [], "this": []}
    try:
        for rep in range(args.reps):
            for side in ("old", "this") if rep % 2 == 0 else ("this", "old"):
                epochs = run(args.old.resolve() if side == "old" else None, shlex.split(args.args),
                             args.data_dir.resolve(), work / side)  # fmt: skip
                times[side] += epochs[1:]
                print(f"rep {rep + 1} {side:<4} epochs_s {' '.join(f'{t:.3f}' for t in epochs)}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    old, this = statistics.median(times["old"]), statistics.median(times["this"])
    print(f"median epoch: old {old:.3f} s, this {this:.3f} s; this checkout is x{old / this:.2f} the old one's speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
