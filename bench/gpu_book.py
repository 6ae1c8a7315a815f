"""The whole book on one GPU, measured in one short device run (docs/SCALING.md, issue #19).

    python bench/gpu_book.py --data-dir data --out results/gpu_book        # on a machine with a GPU
    python bench/gpu_book.py ... --write docs/SCALING.md                     # refresh the table there
    python bench/gpu_book.py --rehearse-on-cpu --tasks mnist_convnet --epochs 2 --subset 256   # plumbing

Every chapter 5-8 task trains for a few epochs (`--epochs`, default 2) as a fresh `dlwp train`
process with its book settings on the GPU; the book-size time is extrapolated from those epochs:
start-up + first epoch + (book epochs - 1) x the median later epoch. A run stops early at its share
of `--budget` (`trainer.max_time`), so one slow task cannot eat the device time of the others.
Reports, per task: epochs run, median epoch time, the extrapolated book-size time, the monitored
metric after those epochs (not the book's result: too few epochs), peak GPU memory. Writes
`gpu_book.json` and `gpu_book.md` under `--out`. Exits non-zero only on error, never on a slow result.

The data must be on the device machine: `data/` as `dlwp data fetch` leaves it (the tasks whose
dataset is missing are reported as such and skipped, so a partial copy works).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from markdown_block import write_block  # bench/markdown_block.py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# task -> (dataset it reads, extra overrides). Book epochs come from the task's own config.
TASKS: dict[str, tuple[str, list[str]]] = {
    "mnist_convnet": ("mnist", []),
    "cats_dogs_scratch": ("dogs_vs_cats", []),
    "cats_dogs_augmented": ("dogs_vs_cats", []),
    "cats_dogs_features": ("dogs_vs_cats", []),
    "cats_dogs_frozen": ("dogs_vs_cats", []),
    "cifar10_convnet": ("cifar10", []),
    "imdb_embedding": ("imdb", []),
    "imdb_simplernn": ("imdb", []),
    "imdb_lstm": ("imdb", ["model.layers.1.impl=torch"]),  # cuDNN's LSTM: the keras loop is a CPU parity path
    "imdb_bilstm": ("imdb", []),
    "imdb_conv1d": ("imdb", []),
    "jena_gru": ("jena_climate", ["data=jena_partial_blocks"]),
    "jena_conv_gru": ("jena_climate", ["data=jena_partial_blocks"]),
    "imdb_multi_output_conv1d": ("imdb", []),
    "mnist_siamese": ("mnist", []),
    "cifar10_resnet": ("cifar10", []),
    "cifar10_resnet_augmented": ("cifar10", []),
    "cifar10_inception": ("cifar10", []),
    "cifar10_separable": ("cifar10", []),
    "nietzsche_char_lstm": ("nietzsche", ["model.layers.1.impl=torch"]),
    "mnist_vae": ("mnist", []),
    "cifar_frogs_dcgan": ("cifar10", []),
}


def book_epochs(task: str) -> int:
    """`trainer.max_epochs` of the task as `dlwp train task=...` composes it."""
    from hydra import compose, initialize_config_dir

    from dlwp.config.schema import register
    from dlwp.paths import conf_dir, register_resolvers

    register()
    register_resolvers()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return int(compose("train", overrides=[f"task={task}"]).trainer.max_epochs)


def duration(seconds: float) -> str:
    """Lightning's `max_time` format, DD:HH:MM:SS (each field in its range)."""
    s = int(seconds)
    return f"{s // 86400:02d}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def run_task(task: str, extra: list[str], args, runs: Path, seconds: float, log) -> dict:
    before = set(runs.glob(f"{task}/*"))
    trainer = "trainer=cpu" if args.rehearse_on_cpu else "trainer=gpu"
    overrides = [f"task={task}", trainer, *extra, f"trainer.max_epochs={args.epochs}",
                 f"trainer.max_time={duration(seconds)}", f"paths.data_dir={args.data_dir}",
                 f"paths.runs_dir={runs}", "trainer.enable_progress_bar=false", "test=false"]  # fmt: skip
    if args.precision:
        overrides.append(f"trainer.precision={args.precision}")
    if args.subset:
        overrides.append(f"data.subset={args.subset}")
    if args.compile:
        overrides.append(f"trainer.compile={args.compile}")
    cmd = [sys.executable, "-m", "dlwp.cli", "train", *overrides]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": [f"no result in {seconds + 120:.0f} s"]}
    wall = time.perf_counter() - t0
    log.write(f"$ {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}\n")
    new = [p for p in set(runs.glob(f"{task}/*")) - before if (p / "run.json").exists()]
    if proc.returncode or not new:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        said = [line for line in lines if "error" in line.lower()][:1] or lines[-2:]  # dlwp's own message first
        return {"error": said or [f"exit {proc.returncode}"]}
    record = json.loads((new[0] / "run.json").read_text())
    from dlwp.record import read_metrics_csv

    rows = read_metrics_csv(new[0] / "metrics.csv")
    times = [row["time/epoch_s"] for row in rows if row.get("time/epoch_s") is not None]
    from omegaconf import OmegaConf

    monitor = str(OmegaConf.load(new[0] / "config.yaml").task.monitor)  # what the task itself selects on
    return {
        "epochs": len(times),
        "first_epoch_s": times[0] if times else None,
        "median_epoch_s": statistics.median(times[1:] or times) if times else None,
        "startup_s": record.get("startup_s"),
        "metric": monitor,
        "value": rows[-1].get(monitor) if rows and monitor else None,
        "peak_gpu_mb": record.get("peak_gpu_mb"),
        "wall_s": round(wall, 1),
    }


def extrapolate(result: dict, epochs: int) -> float | None:
    """Start-up + first epoch + the later epochs at the median pace: a book-size run's time."""
    if result.get("median_epoch_s") is None or result.get("first_epoch_s") is None:
        return None
    return (result.get("startup_s") or 0) + result["first_epoch_s"] + (epochs - 1) * result["median_epoch_s"]


def table(env: dict, results: dict[str, dict], args) -> str:
    def fmt(value, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    total = sum(r["book_s"] for r in results.values() if r.get("book_s"))
    lines = [
        f"Generated by `python bench/gpu_book.py --epochs {args.epochs}` on {time.strftime('%Y-%m-%d')}: "
        f"{env.get('device')}, torch {env.get('torch')}, precision {args.precision or 'the task default'}. "
        f"Each task trained {args.epochs} epochs (or its share of {args.budget:.0f} s); the book-size time is "
        "start-up + first epoch + (book epochs - 1) x the median later epoch. The metric is after those "
        "epochs, not the book's result.",
        "",
        "| task | book epochs | epochs run | first epoch | later epochs (median) | book-size run (extrapolated) "
        "| metric after the epochs run | peak GPU memory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, r in results.items():
        if "error" in r:
            lines.append(f"| {task} | {r.get('book_epochs', '—')} | failed: {' / '.join(r['error'])[:160]} | | | | | |")
            continue
        lines.append(
            f"| {task} | {r['book_epochs']} | {r['epochs']} | {fmt(r['first_epoch_s'], '.1f')} s "
            f"| {fmt(r['median_epoch_s'], '.2f')} s | {fmt(r.get('book_s'), '.0f')} s "
            f"| {r['metric']} {fmt(r['value'], '.4f')} | {fmt(r['peak_gpu_mb'], '.0f')} MB |"
        )
    done = [task for task, r in results.items() if r.get("book_s")]
    if len(done) == len(results):
        lines += ["", f"The whole book at these paces: **{total / 60:.1f} minutes** (goal: <= 30 on an H200)."]
    else:
        lines += ["", f"{len(done)} of {len(results)} tasks measured ({total / 60:.1f} minutes for those): "
                      "no total for the book."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_book")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help="a subset of the chapter 5-8 tasks")
    parser.add_argument("--epochs", type=int, default=2, help="epochs trained per task (>= 2: one after the first)")
    parser.add_argument("--budget", type=float, default=480, help="seconds for all tasks together")
    parser.add_argument("--precision", default=None, help="e.g. bf16-mixed (default: the task's own)")
    parser.add_argument(
        "--compile",
        default=None,
        choices=["default", "reduce_overhead", "max_autotune"],
        help="trainer.compile for every task (its compile time lands in the first epoch)",
    )
    parser.add_argument("--subset", type=int, default=None, help="data.subset: rehearsals only")
    parser.add_argument("--rehearse-on-cpu", action="store_true", help="trainer=cpu: check the plumbing here")
    parser.add_argument("--write", type=Path, default=None, help="refresh the generated block of this markdown file")
    args = parser.parse_args()
    unknown = sorted(set(args.tasks) - set(TASKS))
    if unknown:
        parser.error(f"not chapter 5-8 tasks of this script: {', '.join(unknown)} (known: {', '.join(TASKS)})")
    args.out.mkdir(parents=True, exist_ok=True)
    runs = args.out / "runs"
    import torch

    env = {"torch": torch.__version__,
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (rehearsal)"}  # fmt: skip
    share = args.budget / len(args.tasks)
    results: dict[str, dict] = {}
    with open(args.out / "gpu_book.log", "w") as log:
        for task in args.tasks:
            dataset, extra = TASKS[task]
            if not (args.data_dir / dataset).is_dir():
                results[task] = {"error": [f"no {args.data_dir / dataset}: skipped"]}
                continue
            epochs = book_epochs(task)
            result = run_task(task, extra, args, runs, share, log) | {"book_epochs": epochs}
            result["book_s"] = extrapolate(result, epochs)
            results[task] = result
            print(task, json.dumps(result), flush=True)
    (args.out / "gpu_book.json").write_text(json.dumps({"environment": env, "results": results}, indent=2) + "\n")
    text = table(env, results, args)
    (args.out / "gpu_book.md").write_text(text)
    print(text)
    if args.write:
        write_block(args.write, "gpu_book", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
