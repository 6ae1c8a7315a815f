"""A minimal hand-written PyTorch training loop for book task 2.1 (MNIST, Dense(512) -> Dense(10)).

The reference that `dlwp train task=mnist_dense` is timed against: same data, model, init,
optimiser, batch size and threads, with nothing but the loop. Prints one JSON line per epoch.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--npz", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    with np.load(args.npz) as d:
        x_train = torch.from_numpy(d["x_train"].reshape(-1, 784).astype(np.float32) / 255)
        y_train = torch.from_numpy(d["y_train"].astype(np.int64))
        x_test = torch.from_numpy(d["x_test"].reshape(-1, 784).astype(np.float32) / 255)
        y_test = torch.from_numpy(d["y_test"].astype(np.int64))

    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-8)

    n = len(x_train)
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n)
        loss_sum = torch.zeros(())
        correct = torch.zeros((), dtype=torch.int64)
        for start in range(0, n, args.batch_size):
            idx = perm[start : start + args.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                loss_sum += loss.detach() * len(yb)
                correct += (logits.argmax(1) == yb).sum()
        epoch_s = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            test_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        print(
            json.dumps(
                {
                    "epoch": epoch + 1,
                    "epoch_s": round(epoch_s, 4),
                    "train/loss": (loss_sum / n).item(),
                    "train/acc": correct.item() / n,
                    "test/acc": test_acc,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
