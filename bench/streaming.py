"""The streaming data path's cost: samples/s of the loader alone vs the training step it feeds.

    python bench/streaming.py --data-dir data [--write docs/PERFORMANCE.md]

Real images: the 2,000 training JPEGs of cats vs dogs (data/dogs_vs_cats, the originals of the
book's `cats_and_dogs_small/train`), through 0, 1 and 2 worker processes, two ways:

- decoded and resized to 150x150 per sample by `ImageFolderDataModule` (Keras' `flow_from_directory`),
  with and without a random shift/flip augmentation;
- as the chapter-5 tasks read them: `DogsVsCatsDataModule` decodes once into a cached uint8 array,
  then draws the book's full `ImageDataGenerator` augmentation (rotation, shifts, shear, zoom, flip)
  per image; with the peak memory (proportional set size of the main process plus its workers).

Then the book's 5.2 convnet's training step (forward, backward, RMSprop) on batches of 20 already in
memory, in both memory layouts. Which one is slower says which is the bottleneck of a chapter-5
epoch on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

from markdown_block import write_block  # bench/markdown_block.py

ROOT = Path(__file__).resolve().parents[1]
BATCH = 20  # book 5.2a: batch_size=20


def loader_rate(root: Path, workers: int, augment: bool, batches: int) -> float:
    from dlwp.data.images import ImageFolderDataModule

    dm = ImageFolderDataModule(root=str(root), val_dir=None, test_dir=None, image_size=[150, 150], batch_size=BATCH,
                               num_workers=workers, shift=0.2 if augment else 0.0, hflip=augment)  # fmt: skip
    dm.setup()
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # worker start-up is not counted
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        x, _ = next(it)
        n += len(x)
    return n / (time.perf_counter() - t0)


BOOK_AUGMENTATION = {"rotation_range": 40, "width_shift_range": 0.2, "height_shift_range": 0.2, "shear_range": 0.2,
                     "zoom_range": 0.2, "horizontal_flip": True}  # book 5.2b's ImageDataGenerator  # fmt: skip


def tree_pss_mb(proc) -> float:
    """Memory of a process and its children (DataLoader workers) as proportional set sizes: pages
    the forked workers share with the main process (the decoded images) are counted once, not 3x."""
    total = proc.memory_full_info().pss
    for child in proc.children(recursive=True):
        with contextlib.suppress(Exception):  # a worker that just exited
            total += child.memory_full_info().pss
    return total / 2**20


def cached_rate(data_dir: Path, workers: int, augment: bool, batches: int) -> tuple[float, float]:
    """(images/s, peak MB of main process + workers) of the decode-once path the tasks use."""
    import psutil

    from dlwp.data.dogs_vs_cats import DogsVsCatsDataModule

    dm = DogsVsCatsDataModule(root=str(data_dir / "dogs_vs_cats"), augmentation=BOOK_AUGMENTATION if augment else None,
                              batch_size=BATCH, num_workers=workers)  # fmt: skip
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    next(it)  # the cache is read and the workers are started: not counted
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        x, _ = next(it)  # collate already applied the batch transform (uint8 -> float)
        n += len(x)
    rate = n / (time.perf_counter() - t0)
    proc, peak = psutil.Process(), 0.0
    for _ in range(5):  # memory after the timed batches: reading smaps is slow and must not be timed
        next(it)
        peak = max(peak, tree_pss_mb(proc))
    del it
    return rate, peak


def step_rate(steps: int, channels_last: bool = False, compile: bool = False) -> float:
    from dlwp.model.convnet import ConvNet
    from dlwp.task import SupervisedTask

    net = ConvNet([3, 150, 150], [32, 64, 128, 128], 1, hidden=[512])  # book 5.2a, 3,453,121 parameters
    task = SupervisedTask(net, seed=0, problem="binary", optimizer={"name": "rmsprop", "lr": 1e-4})
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-4, alpha=0.9, eps=1e-8)
    x, y = torch.rand(BATCH, 3, 150, 150), torch.randint(0, 2, (BATCH,)).float()
    if channels_last:  # what trainer.channels_last does (the chapter-5 tasks set it)
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(net) if compile else net  # inductor; the first steps compile (not counted)
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        loss = task.head.loss(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * BATCH / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    root = args.data_dir / "dogs_vs_cats" / "cats_and_dogs_filtered"
    if not (root / "train").is_dir():
        print(f"streaming benchmark skipped: no {root}/train (dlwp data fetch dogs_vs_cats)")
        return 0
    rows = []
    for augment in (False, True):
        for workers in (0, 1, 2):
            rate = loader_rate(root, workers, augment, args.batches)
            rows.append((f"loader, {workers} worker{'s' if workers != 1 else ''}"
                         f"{', + shift/flip augmentation' if augment else ''}", rate))  # fmt: skip
            print(f"{rows[-1][0]}: {rate:.0f} images/s", flush=True)
    for augment in (False, True):
        for workers in (0, 1, 2):
            rate, peak = cached_rate(args.data_dir, workers, augment, args.batches)
            what = f"{workers} worker{'s' if workers != 1 else ''}{', + the book augmentation' if augment else ''}"
            rows.append((f"decoded once (cached), {what}; peak {peak:,.0f} MB", rate))
            print(f"{rows[-1][0]}: {rate:.0f} images/s", flush=True)
    loaders = len(rows)
    for channels_last, compile in ((False, False), (True, False), (True, True)):
        what = ("channels-last" if channels_last else "NCHW") + (" + torch.compile" if compile else "")
        rows.append((f"training step of the 5.2 convnet (data in memory), {what}",
                     step_rate(args.steps, channels_last, compile)))  # fmt: skip
        print(f"{rows[-1][0]}: {rows[-1][1]:.0f} images/s", flush=True)
    train = max(rate for _, rate in rows[loaders:])
    if args.write:
        best = max(rate for _, rate in rows[:loaders])
        lines = [
            f"Generated by `python bench/streaming.py --data-dir data` on {time.strftime('%Y-%m-%d')}, "
            f"{torch.get_num_threads()} torch threads: images/s through `ImageFolderDataModule` (JPEG decode + "
            f"resize to 150x150 per sample), through `DogsVsCatsDataModule` (decoded once, cached; what the "
            f"tasks use), batches of {BATCH}, and through the book's 5.2 convnet's training step. Peak memory: "
            "proportional set size of the main process plus its workers while iterating (shared pages once).",
            "",
            "| what | images/s |",
            "|---|---|",
            *[f"| {name} | {rate:.0f} |" for name, rate in rows],
            "",
            f"The bottleneck: **{'the training step' if train < best else 'the loader'}** "
            f"({train:.0f} vs at best {best:.0f} images/s); measured one after the other, each with both cores.",
        ]
        write_block(args.write, "streaming", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
