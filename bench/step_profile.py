"""Where a training step's time goes: torch.profiler over 128 steps of `mnist_dense`, dlwp or the raw loop.

    python bench/step_profile.py dlwp [OVERRIDE ...]     # e.g. task=mnist_convnet, trainer.deterministic=false
    python bench/step_profile.py raw [--device cuda]

Prints, per training step: wall time, operators dispatched, GPU kernels launched, host<->device
syncs (cudaStreamSynchronize, cudaDeviceSynchronize, blocking copies) and the top operators by
host time. A diagnostic for docs/PERFORMANCE.md, not a benchmark: the profiler itself slows steps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

STEPS = 128  # profiled optimiser steps, after warm-up
WARMUP = 40
SYNC_NAMES = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy", "cudaEventSynchronize")


def activities() -> list[ProfilerActivity]:
    return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])


CATEGORIES = (  # (share name, operator-name fragments), first match wins: where a step's host time goes
    ("convolutions (forward + backward)", ("conv", "mkldnn_convolution")),
    ("max-pooling", ("max_pool",)),
    ("dense layers", ("addmm", "aten::mm", "aten::linear", "aten::matmul")),
    ("activations", ("relu", "threshold_backward")),
    ("optimiser (RMSprop)", ("_foreach", "addcmul", "aten::sqrt", "aten::div", "rmsprop")),
    ("loss and metrics", ("cross_entropy", "nll_loss", "log_softmax", "clamp", "argmax", "aten::eq", "aten::sum")),
)


def shares(prof, wall: float, steps: int) -> None:
    """Self CPU time by kind of operator, as shares of the profiled wall time (the rest: Python,
    Lightning and dlwp bookkeeping, and operators not listed)."""
    totals = dict.fromkeys([c for c, _ in CATEGORIES], 0.0)
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        for name, fragments in CATEGORIES:
            if any(f in event.key for f in fragments):
                totals[name] += event.self_cpu_time_total / 1e6
                break
    print("   share of the step's wall time:")
    for name, seconds in totals.items():
        print(f"     {name:<36} {100 * seconds / wall:5.1f} %  ({1e3 * seconds / steps:.2f} ms/step)")
    rest = wall - sum(totals.values())
    print(f"     {'everything else':<36} {100 * rest / wall:5.1f} %  ({1e3 * rest / steps:.2f} ms/step)")


def report(label: str, prof, steps: int, wall: float) -> None:
    events = prof.key_averages()
    ops = sum(e.count for e in events if e.key.startswith("aten::"))
    kernels = sum(e.count for e in events if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA)
    syncs = {e.key: e.count for e in events if e.key.startswith(SYNC_NAMES)}
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
    print(f"== {label}: {steps} steps, {1e3 * wall / steps:.3f} ms/step (profiled)")
    print(f"   aten ops/step {ops / steps:.1f}; GPU kernels/step {kernels / steps:.1f}; "
          f"launches/step {launches / steps:.1f}")  # fmt: skip
    print(f"   sync-like calls/step: { {k: round(v / steps, 2) for k, v in syncs.items()} }")
    shares(prof, wall, steps)
    print(events.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))


def profile_raw(device: str) -> None:
    import torch.nn.functional as F
    from torch import nn

    dev = torch.device(device)
    torch.manual_seed(0)
    x, y = torch.rand(60000, 784, device=dev), torch.randint(0, 10, (60000,), device=dev)
    net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)).to(dev)
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-8)
    perm = torch.randperm(60000).to(dev)
    loss_sum = torch.zeros((), device=dev)

    def step(i: int) -> None:
        nonlocal loss_sum
        idx = perm[(i * 128) % 59904 :][:128]
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * 128

    for i in range(WARMUP):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    with profile(activities=activities()) as prof:
        t0 = time.perf_counter()
        for i in range(STEPS):
            step(WARMUP + i)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    report(f"raw loop on {device}", prof, STEPS, wall)


def profile_dlwp(overrides: list[str]) -> None:
    from dlwp.task.base import BookTask

    original = BookTask.training_step
    state: dict = {"steps": 0, "prof": None}

    def training_step(self, batch, batch_idx):
        n = len(batch) if isinstance(batch, list) else 1
        if state["steps"] >= WARMUP and state["prof"] is None and not state.get("done"):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            state["prof"] = profile(activities=activities()).__enter__()
            state["t0"], state["from"] = time.perf_counter(), state["steps"]
        out = original(self, batch, batch_idx)
        state["steps"] += n
        if state["prof"] is not None and state["steps"] - state["from"] >= STEPS:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            wall = time.perf_counter() - state["t0"]
            state["prof"].__exit__(None, None, None)
            report(f"dlwp {' '.join(overrides)}", state["prof"], state["steps"] - state["from"], wall)
            state["prof"], state["done"] = None, True
        return out

    BookTask.training_step = training_step
    from dlwp.cli import main

    runs = Path("/tmp/dlwp-step-profile")
    sys.argv = ["dlwp", "train", "task=mnist_dense", "trainer.max_epochs=1", "test=false",
                f"paths.runs_dir={runs}", "trainer.enable_progress_bar=false", *overrides]  # fmt: skip
    try:
        main()
    except SystemExit as exit_:
        if exit_.code:
            raise


if __name__ == "__main__":
    if sys.argv[1] == "raw":
        profile_raw(sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cpu")
    else:
        profile_dlwp(sys.argv[2:])
