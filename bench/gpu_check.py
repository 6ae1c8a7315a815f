"""The one short GPU check (docs/SCALING.md): book task 2.1 (`mnist_dense`) on one GPU.

    python bench/gpu_check.py --data-dir data --out results/        # on a machine with a GPU
    python bench/gpu_check.py ... --write docs/SCALING.md            # refresh the generated table there

Runs, each a fresh process with the book's settings (5 epochs, batch 128, seed 42): the
hand-written loop (bench/raw_loop.py) with its data in GPU memory; `dlwp train` in fp32 twice
(same seed: are the metrics identical?), in fp32 with the data in host memory
(`data.device_resident=false`), in fp32 without deterministic algorithms, compiled with CUDA graphs
(`trainer.compile=reduce_overhead`, with and without deterministic algorithms), in bf16-mixed, under
DDP with one GPU, and in bf16-mixed at batch 2048 (throughput only: fewer steps, so not the
book's accuracy). Reports epoch time (median, first epoch not counted), samples per second, test
accuracy, start-up and peak GPU memory, one line per figure; writes `gpu_check.json` and
`gpu_check.md` under `--out`. Exits non-zero only on error, never on a slow result; a failing run
is reported and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from markdown_block import write_block  # bench/markdown_block.py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLES = 60000
DLWP_RUNS = {  # label -> overrides of `dlwp train task=mnist_dense`
    "dlwp, fp32": ["trainer=gpu"],
    "dlwp, fp32 (rerun, same seed)": ["trainer=gpu"],
    "dlwp, fp32, data in host memory": ["trainer=gpu", "data.device_resident=false"],
    "dlwp, fp32, trainer.deterministic=false": ["trainer=gpu", "trainer.deterministic=false"],
    "dlwp, fp32, trainer.compile=reduce_overhead (CUDA graphs)": ["trainer=gpu", "trainer.compile=reduce_overhead"],
    "dlwp, fp32, trainer.compile=reduce_overhead, deterministic=false": [
        "trainer=gpu",
        "trainer.compile=reduce_overhead",
        "trainer.deterministic=false",
    ],
    "dlwp, bf16-mixed": ["trainer=gpu", "trainer.precision=bf16-mixed"],
    "dlwp, DDP on 1 GPU": ["trainer=ddp", "trainer.devices=1"],
    "dlwp, bf16-mixed, batch 2048 (throughput, not the book's run)": [
        "trainer=gpu",
        "trainer.precision=bf16-mixed",
        "data.batch_size=2048",
        "data.batches_per_call=1",
    ],
}


CPU_STAND_INS = {"trainer=gpu": "trainer=cpu", "trainer=ddp": "trainer=ddp_cpu"}  # --rehearse-on-cpu


def run_raw(data_dir: Path, epochs: int, log, device: str = "cuda") -> dict:
    cmd = [sys.executable, str(HERE / "raw_loop.py"), "--task", "mnist_dense", "--data-dir", str(data_dir),
           "--epochs", str(epochs), "--device", device]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    log.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["exit " + str(proc.returncode)]}
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {"epoch_s": [r["epoch_s"] for r in rows], "train_loss": rows[-1]["train/loss"]}


def run_dlwp(overrides: list[str], data_dir: Path, runs: Path, log) -> dict:
    before = set(runs.glob("*/*"))
    cmd = [sys.executable, "-m", "dlwp.cli", "train", "task=mnist_dense", *overrides,
           f"paths.data_dir={data_dir}", f"paths.runs_dir={runs}", "trainer.enable_progress_bar=false"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    log.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    new = [p for p in set(runs.glob("*/*")) - before if (p / "run.json").exists()]
    if proc.returncode or not new:
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-3:]
        return {"error": tail or [f"exit {proc.returncode}"]}
    run_dir = new[0]
    record = json.loads((run_dir / "run.json").read_text())
    from dlwp.record import read_metrics_csv

    rows = read_metrics_csv(run_dir / "metrics.csv")
    final = record.get("metrics", {}).get("final", {})
    return {
        "epoch_s": [row["time/epoch_s"] for row in rows if row.get("time/epoch_s") is not None],
        "test_acc": final.get("test/acc"),
        "test_loss": final.get("test/loss"),
        "startup_s": record.get("startup_s"),
        "peak_gpu_mb": record.get("peak_gpu_mb"),
        "wall_s": round(wall, 1),
        "device": record.get("device", {}).get("gpus"),
    }


def summarise(result: dict) -> dict:
    times = result.get("epoch_s") or []
    steady = times[1:] or times
    if steady:
        result["median_epoch_s"] = round(statistics.median(steady), 3)
        result["samples_per_s"] = round(SAMPLES / statistics.median(steady))
    return result


def environment() -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    for name in ("lightning", "torchmetrics", "hydra-core"):
        try:
            from importlib import metadata

            env[name] = metadata.version(name)
        except Exception:  # a version we cannot read is reported as unknown
            env[name] = None
    try:
        env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                       capture_output=True, text=True, timeout=30).stdout.strip()  # fmt: skip
    except OSError:
        env["driver"] = None
    return env


def table(env: dict, results: dict[str, dict]) -> str:
    def fmt(value, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    lines = [
        f"Generated by `python bench/gpu_check.py` on {time.strftime('%Y-%m-%d')}: {env.get('gpu')} "
        f"(driver {env.get('driver')}), torch {env.get('torch')}, Lightning {env.get('lightning')}. "
        "`mnist_dense` as the book runs it (5 epochs, batch 128); median epoch time, first epoch not counted.",
        "",
        "| run | epoch time | samples/s | test acc | test loss | start-up to first step | peak GPU memory |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        if "error" in r:
            lines.append(f"| {label} | failed: {' / '.join(r['error'])[:160]} | | | | | |")
            continue
        lines.append(
            f"| {label} | {fmt(r.get('median_epoch_s'), '.3f')} s | {fmt(r.get('samples_per_s'), ',')} "
            f"| {fmt(r.get('test_acc'), '.4f')} | {fmt(r.get('test_loss'), '.4f')} "
            f"| {fmt(r.get('startup_s'), '.1f')} s | {fmt(r.get('peak_gpu_mb'), '.0f')} MB |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--rehearse-on-cpu",
        action="store_true",
        help="run the same script on the CPU (trainer=cpu, ddp_cpu) to check it before a GPU is lent",
    )
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every dlwp run, e.g. data.subset=2000")
    parser.add_argument("--from-json", type=Path, default=None, help="only re-render a saved gpu_check.json")
    parser.add_argument("--write", type=Path, default=None, help="refresh the generated block of this markdown file")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        env, results = saved["environment"], saved["results"]
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        runs = Path(os.environ.get("TMPDIR", "/tmp")) / f"dlwp-gpu-check-{os.getpid()}"
        env = environment()
        print(json.dumps(env), flush=True)
        results: dict[str, dict] = {}
        with open(args.out / "gpu_check.log", "w") as log:
            device = "cpu" if args.rehearse_on_cpu else "cuda"
            raw = run_raw(args.data_dir, args.epochs, log, device)
            results["raw PyTorch loop, fp32, data in GPU memory"] = summarise(raw)
            for label, overrides in DLWP_RUNS.items():
                if args.rehearse_on_cpu:
                    overrides = [CPU_STAND_INS.get(o, o) for o in overrides]
                overrides = [*overrides, f"trainer.max_epochs={args.epochs}", *args.extra]
                results[label] = summarise(run_dlwp(overrides, args.data_dir, runs, log))
                print(f"{label}: {json.dumps(results[label])}", flush=True)
        (args.out / "gpu_check.json").write_text(json.dumps({"environment": env, "results": results}, indent=2))
    block = table(env, results)
    print(block)
    if not args.from_json:
        (args.out / "gpu_check.md").write_text(block)
    if args.write:
        write_block(args.write, "gpu", block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
