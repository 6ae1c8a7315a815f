"""Page faults and step time under three malloc settings (src/dlwp/allocator.py).

    python bench/allocator.py [--rounds 3] [--write docs/PERFORMANCE.md]

Settings: glibc's defaults; dlwp's `keep_freed_memory` (a `mallopt` in the process: no `mmap`, no
trimming, freed blocks stay in the heap); transparent huge pages for malloc (`GLIBC_TUNABLES=
glibc.malloc.hugetlb=1`, which glibc reads only at a process's start). Each workload runs in a
fresh process per setting, the settings interleaved, `--rounds` times; the table gives the median
training-step time over all rounds and the minor page faults of one step. Workloads, torch's
default threads:

- `cats_dogs_scratch`: book 5.2's convnet at 150 px, batch 20, channels-last as the task runs it,
  forward + backward + RMSprop;
- `jena_gru_dropout`: book 6.3's GRU(32, dropout 0.2, recurrent_dropout 0.2) on 240 x 14 windows,
  batch 128, with dlwp's Keras-exact cell;
- `mnist_dense`: book 2.1's 512-unit network, batch 128 (small tensors, from malloc's heap).

Run it with the machine otherwise idle: the VMs here are noisy, hence the rounds and medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from markdown_block import write_block  # bench/markdown_block.py

SETTINGS = {
    "glibc default": {},
    "keep_freed_memory (dlwp)": {"BENCH_KEEP_FREED": "1"},
    "huge pages": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
}
WORKLOADS = ("cats_dogs_scratch", "jena_gru_dropout", "mnist_dense")

CHILD = r"""
import json, os, resource, sys, time
if os.environ.get("BENCH_KEEP_FREED"):
    from dlwp.allocator import keep_freed_memory
    keep_freed_memory()
import torch
from torch import nn
torch.manual_seed(0)
name, steps = sys.argv[1], int(sys.argv[2])
if name == "cats_dogs_scratch":
    def block(i, o): return [nn.Conv2d(i, o, 3), nn.ReLU(), nn.MaxPool2d(2)]
    net = nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), *block(128, 128), nn.Flatten(),
                        nn.Linear(128 * 7 * 7, 512), nn.ReLU(), nn.Linear(512, 1))
    x, y = torch.rand(20, 3, 150, 150), torch.randint(0, 2, (20, 1)).float()
    net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)  # as the task
    loss_fn = nn.functional.binary_cross_entropy_with_logits
elif name == "jena_gru_dropout":
    from dlwp.model.recurrent import Recurrent
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru, self.out = Recurrent("gru", 14, 32, dropout=0.2, recurrent_dropout=0.2), nn.Linear(32, 1)
        def forward(self, x): return self.out(self.gru(x))
    net, x, y, loss_fn = Net(), torch.randn(128, 240, 14), torch.randn(128, 1), nn.functional.l1_loss
else:
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    x, y, loss_fn = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,)), nn.functional.cross_entropy
opt = torch.optim.RMSprop(net.parameters(), 1e-4)
times = []
for i in range(steps + 2):
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    loss = loss_fn(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"times": times[2:], "faults": faults}))
"""


def run(name: str, steps: int, setting: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"} | SETTINGS[setting]
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(steps)], env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write", type=Path, help="write the table into this doc's allocator block")
    ap.add_argument("--only", nargs="*", choices=WORKLOADS, default=list(WORKLOADS))
    args = ap.parse_args()
    steps = {"cats_dogs_scratch": 6, "jena_gru_dropout": 6, "mnist_dense": 200}
    rows = ["| workload | " + " | ".join(SETTINGS) + " | faults a step (same order) |",
            "|---|" + "---|" * (len(SETTINGS) + 1)]  # fmt: skip
    for name in args.only:
        got: dict[str, list[dict]] = {k: [] for k in SETTINGS}
        for _ in range(args.rounds):
            for setting in SETTINGS:
                got[setting].append(run(name, steps[name], setting))
        med = {k: statistics.median(t for r in got[k] for t in r["times"]) * 1e3 for k in got}
        faults = " / ".join(f"{statistics.median(r['faults'] for r in got[k]):,.0f}" for k in got)
        base = med["glibc default"]
        cells = [f"{med[k]:.1f} ms" + ("" if k == "glibc default" else f" (**x{base / med[k]:.2f}**)") for k in got]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {faults} |")
        print(rows[-1], flush=True)
    cmd = f"python bench/allocator.py --rounds {args.rounds}"
    body = "\n".join([*rows, "", f"`{cmd}`, {os.cpu_count()} cores, torch's default threads; medians of "
                      f"{args.rounds} interleaved rounds, each a fresh process."])  # fmt: skip
    print(body)
    if args.write:
        write_block(args.write, "allocator", body)


if __name__ == "__main__":
    main()
