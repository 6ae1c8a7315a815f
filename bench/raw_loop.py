"""Minimal hand-written PyTorch training loops for the benchmarked book tasks: the reference dlwp
is timed against. Same data tensors (read with dlwp's data modules: reading is not what is timed),
model, Keras initialisation, optimiser (RMSprop, lr 1e-3, alpha 0.9, eps 1e-8), batch size and
torch threads; nothing but the loop. Prints one JSON line per epoch.

    python bench/raw_loop.py --task mnist_dense --data-dir data --epochs 4
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

TASKS = {  # what `dlwp train task=...` runs: data module, widths, loss, batch size
    "mnist_dense": {"hidden": [512], "out": 10, "loss": "ce", "batch": 128},
    "mnist_convnet": {"hidden": [64], "out": 10, "loss": "ce", "batch": 64, "conv": True},  # channels-last, as dlwp
    "imdb_dense": {"hidden": [16, 16], "out": 1, "loss": "bce", "batch": 512},
    "boston_fold": {"hidden": [64, 64], "out": 1, "loss": "mse", "batch": 1},
}


def load(task: str, data_dir: Path):
    """(train, val or None) splits as dlwp serves them, and the batch transform (multi-hot) if any."""
    if task in ("mnist_dense", "mnist_convnet"):
        from dlwp.data.mnist import MNISTDataModule

        dm = MNISTDataModule(
            path=str(data_dir / "mnist/mnist.npz"), layout="image" if task == "mnist_convnet" else "flat"
        )
    elif task == "imdb_dense":
        from dlwp.data.imdb import IMDBDataModule

        dm = IMDBDataModule(word_index=str(data_dir / "imdb/imdb_word_index.json"),
                            reviews=str(data_dir / "imdb/aclImdb_v1.tar.gz"))  # fmt: skip
    else:
        from dlwp.data.boston import BostonHousingDataModule

        dm = BostonHousingDataModule(path=str(data_dir / "boston_housing/boston_housing.npz"), num_folds=4, fold=0)
    dm.setup()
    return dm.splits["train"], dm.splits.get("val"), dm.batch_transform


def convnet() -> nn.Module:
    """Book 5.1: Conv(32)-Pool-Conv(64)-Pool-Conv(64)-Flatten-Dense(64)-Dense(10), Keras init."""
    net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(), nn.Linear(576, 64), nn.ReLU(),
                        nn.Linear(64, 10))  # fmt: skip
    for m in net:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net


def model(in_features: int, hidden: list[int], out: int) -> nn.Module:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_features, h), nn.ReLU()]
        in_features = h
    net = nn.Sequential(*layers, nn.Linear(in_features, out))
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return net


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: the data then lives in GPU memory")
    args = parser.parse_args()
    device = torch.device(args.device)
    spec = TASKS[args.task]
    (x, y), val, transform = load(args.task, args.data_dir)
    x, y = x.to(device), y.to(device)
    val = tuple(t.to(device) for t in val) if val is not None else None
    torch.manual_seed(args.seed)
    torch.set_flush_denormal(True)  # as dlwp's default trainer.flush_denormal (and TensorFlow)
    in_features = 10000 if args.task == "imdb_dense" else x[0].numel()
    net = (convnet() if spec.get("conv") else model(in_features, spec["hidden"], spec["out"])).to(device)
    if spec.get("conv"):  # the task's trainer.channels_last
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-8)
    loss_fn = {"ce": F.cross_entropy,
               "bce": lambda o, t: F.binary_cross_entropy_with_logits(o.squeeze(1), t),
               "mse": lambda o, t: F.mse_loss(o.squeeze(1), t)}[spec["loss"]]  # fmt: skip
    n, bs = len(x), spec["batch"]
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(n).to(device)
        loss_sum = torch.zeros((), device=device)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            xb, yb = x[idx], y[idx]
            if transform is not None:
                xb, yb = transform((xb, yb))
            loss = loss_fn(net(xb if spec.get("conv") else xb.flatten(1)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(yb)
        if val is not None:  # dlwp's epoch time includes validation: so does this one
            net.eval()
            with torch.no_grad():
                vx, vy = val
                val_mae = (net(vx.flatten(1)).squeeze(1) - vy).abs().mean().item()
        if device.type == "cuda":
            torch.cuda.synchronize()  # the epoch's kernels have run, not only been queued
        record = {
            "epoch": epoch + 1,
            "epoch_s": round(time.perf_counter() - t0, 4),
            "train/loss": (loss_sum / n).item(),
        }
        if val is not None:
            record["val/mae"] = val_mae
        record["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
