"""Epoch time, throughput, memory and start-up of `dlwp train` vs a minimal PyTorch loop (bench/raw_loop.py).

    python bench/overhead.py --data-dir data --reps 3 --epochs 4 [--tasks mnist_dense imdb_dense boston_fold]
    python bench/overhead.py ... --write docs/PERFORMANCE.md     # also refresh the generated table there

Both sides run as fresh processes on the same data, model, initialisation, optimiser, batch size
and torch threads, alternately, `--reps` times; each run's first epoch is warm-up and not counted.
dlwp is timed as users run it (defaults, progress bar on). Prints one line per figure; exits
non-zero only on error, never on a slow result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from markdown_block import block_rows, write_block  # bench/markdown_block.py

HERE = Path(__file__).resolve().parent
DLWP_ARGS = {
    "mnist_dense": ["task=mnist_dense"],
    "mnist_convnet": ["task=mnist_convnet"],
    "imdb_dense": ["task=imdb_dense"],
    # one fold of book 3.7's K-fold: batch 1, validation on fold 0 every epoch
    "boston_fold": ["task=boston_kfold", "kfold.k=0", "data.num_folds=4", "data.fold=0", "data.batch_size=1"],
}
SAMPLES = {"mnist_dense": 60000, "mnist_convnet": 60000, "imdb_dense": 25000, "boston_fold": 303}


def run_raw(task: str, data_dir: Path, epochs: int) -> tuple[list[float], float]:
    out = subprocess.run([sys.executable, str(HERE / "raw_loop.py"), "--task", task, "--data-dir", str(data_dir),
                          "--epochs", str(epochs)], capture_output=True, text=True, check=True).stdout  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [r["epoch_s"] for r in rows], rows[-1]["peak_rss_mb"]


def run_dlwp(task: str, data_dir: Path, epochs: int, runs: Path) -> tuple[list[float], float, float]:
    cmd = ["dlwp", "train", *DLWP_ARGS[task], f"trainer.max_epochs={epochs}", "test=false",
           f"paths.data_dir={data_dir}", f"paths.runs_dir={runs}"]  # fmt: skip
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    run_dir = max((p for p in runs.glob("*/*") if (p / "run.json").exists()), key=lambda p: p.stat().st_mtime)
    record = json.loads((run_dir / "run.json").read_text())
    from dlwp.record import read_metrics_csv

    times = [row["time/epoch_s"] for row in read_metrics_csv(run_dir / "metrics.csv")]
    return times, record["peak_rss_mb"], record.get("startup_s") or float("nan")


def wall(cmd: list[str], reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--tasks", nargs="+", default=list(DLWP_ARGS), choices=list(DLWP_ARGS))
    parser.add_argument("--write", type=Path, default=None, help="refresh the generated block of this markdown file")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    work = Path(tempfile.mkdtemp(prefix="dlwp-bench-"))
    rows, startups = [], []
    try:
        for task in args.tasks:
            raw, ours, raw_rss, our_rss = [], [], [], []
            for rep in range(args.reps):
                for which in ("raw", "dlwp") if rep % 2 == 0 else ("dlwp", "raw"):
                    if which == "raw":
                        times, rss = run_raw(task, data_dir, args.epochs)
                        raw += times[1:]
                        raw_rss.append(rss)
                    else:
                        times, rss, startup = run_dlwp(task, data_dir, args.epochs, work / "runs")
                        ours += times[1:]
                        our_rss.append(rss)
                        startups.append(startup)
                    print(f"{task} rep {rep + 1} {which:<4} epochs_s {' '.join(f'{t:.3f}' for t in times)}", flush=True)
            raw_med, our_med = statistics.median(raw), statistics.median(ours)
            row = {
                "task": task, "raw_s": raw_med, "raw_range": (min(raw), max(raw)), "dlwp_s": our_med,
                "dlwp_range": (min(ours), max(ours)), "ratio": raw_med / our_med,
                "raw_sps": SAMPLES[task] / raw_med, "dlwp_sps": SAMPLES[task] / our_med,
                "raw_rss": max(raw_rss), "dlwp_rss": max(our_rss),
            }  # fmt: skip
            rows.append(row)
            print(f"{task}: raw {raw_med:.3f} s/epoch, dlwp {our_med:.3f} s/epoch, speed ratio dlwp/raw "
                  f"{row['ratio']:.3f} (goal >= 0.95); peak RSS raw {row['raw_rss']:.0f} MB, "
                  f"dlwp {row['dlwp_rss']:.0f} MB", flush=True)  # fmt: skip
        help_s = wall(["dlwp", "--help"])
        tasks_s = wall(["dlwp", "tasks"])
        startup = statistics.median(s for s in startups if s == s)
        print(f"startup: dlwp --help {help_s:.2f} s (goal < 1 s); dlwp tasks {tasks_s:.2f} s; "
              f"dlwp train -> first training step {startup:.2f} s (median, goal < 6 s)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.write:
        write_table(args.write, rows, help_s, tasks_s, startup, args)
    return 0


def write_table(path: Path, rows: list[dict], help_s: float, tasks_s: float, startup: float, args) -> None:
    import torch

    lines = [
        f"Generated by `python bench/overhead.py --reps {args.reps} --epochs {args.epochs}` on "
        f"{time.strftime('%Y-%m-%d')} ({os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, torch "
        f"{torch.__version__}). Median epoch time over {args.reps} runs x {args.epochs - 1} epochs (first epoch "
        "of each run not counted), range in brackets.",
        "",
        "| task | raw PyTorch loop | `dlwp train` | speed ratio dlwp / raw | samples/s raw / dlwp "
        "| peak RSS raw / dlwp |",
        "|---|---|---|---|---|---|",
    ]
    fresh = {
        r["task"]: f"| {r['task']} | {r['raw_s']:.3f} s ({r['raw_range'][0]:.2f}-{r['raw_range'][1]:.2f}) "
        f"| {r['dlwp_s']:.3f} s ({r['dlwp_range'][0]:.2f}-{r['dlwp_range'][1]:.2f}) | **{r['ratio']:.2f}** "
        f"| {r['raw_sps']:,.0f} / {r['dlwp_sps']:,.0f} | {r['raw_rss']:.0f} / {r['dlwp_rss']:.0f} MB |"
        for r in rows
    }
    kept = {t: line for t, line in block_rows(path, "overhead").items() if t not in fresh and t in DLWP_ARGS}
    if kept:  # tasks not run this time keep their row
        lines[0] += f" Rows of tasks not re-run ({', '.join(kept)}) are kept from the run before (see git log)."
    lines += [fresh.get(t) or kept[t] for t in DLWP_ARGS if t in fresh or t in kept]
    lines += ["", f"Start-up: `dlwp --help` {help_s:.2f} s, `dlwp tasks` {tasks_s:.2f} s, `dlwp train` to "
              f"the first training step {startup:.2f} s (median over the dlwp runs above)."]  # fmt: skip
    write_block(path, "overhead", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
