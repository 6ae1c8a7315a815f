"""Whole-batch slicing of in-memory tensors: the fast path for every dataset that fits in RAM.

A `DataLoader` over a `TensorDataset` indexes one sample at a time and collates the batch in
Python; for the book's small dense networks that costs more than the forward pass. Here a batch
is one gather per tensor (`x[idx]`), and the epoch's order is a pure function of `(seed, epoch)`,
so a run resumed at epoch k sees exactly the batches an uninterrupted run would.

Distributed runs (DDP, FSDP: W processes): `batch_size` stays the global batch, as in the book.
Every rank computes the same global batches (same `(seed, epoch)` permutation) and takes its own
part of each one (`torch.tensor_split` into W near-equal contiguous parts), so that W processes
average their gradients over exactly the samples one process would use in that step. Lightning
adds no `DistributedSampler` here (this is not a `DataLoader`): there is no padding and no
duplicated sample. Every rank must run the same number of steps (DDP waits for all ranks at each
step); the only batch that cannot be split into W non-empty parts is a last one with fewer than W
samples: a training loader drops it (`short_last="drop"`), an evaluation loader adds it to the
batch before (`short_last="merge"`) so that every sample is evaluated exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import torch


class EpochOrder:
    """The per-epoch permutation; Lightning calls `set_epoch` on `loader.sampler` each epoch."""

    def __init__(self, n: int, shuffle: bool, seed: int) -> None:
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> torch.Tensor | None:
        """None means "in order", which lets batches be views instead of copies."""
        if not self.shuffle:
            return None
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.n, generator=gen)


class TensorBatches:
    """Iterable of batches `(t0[idx], t1[idx], ...)`, optionally passed through `transform`.

    `transform` runs on the whole batch (e.g. turning word indices into a multi-hot matrix), so a
    dataset can stay compact in memory and still be served without per-sample Python.

    `rank` / `world_size`: this process's part of each global batch of `batch_size` samples (see
    the module docstring); `short_last` says what a last batch smaller than `world_size` becomes.
    With `world_size=1` the batches are exactly the single-process ones.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        transform: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]] | None = None,
        *,
        rank: int = 0,
        world_size: int = 1,
        short_last: Literal["drop", "merge"] = "drop",
    ) -> None:
        sizes = {len(t) for t in tensors}
        if len(sizes) != 1:
            raise ValueError(f"tensors differ in length: {sorted(sizes)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if short_last not in ("drop", "merge"):
            raise ValueError(f"short_last must be drop or merge, got {short_last!r}")
        self.tensors = tuple(tensors)
        self.batch_size = batch_size
        self.transform = transform
        self.sampler = EpochOrder(sizes.pop(), shuffle, seed)
        self.batch_sampler = None  # Lightning inspects DataLoader-like attributes
        self.rank, self.world_size, self.short_last = rank, world_size, short_last
        if self.sampler.n and self.sampler.n < world_size:
            raise ValueError(f"{self.sampler.n} samples cannot be split over {world_size} processes")

    def bounds(self) -> list[tuple[int, int]]:
        """[start, stop) of each global batch in the epoch's order; the same on every rank."""
        n, size = self.sampler.n, self.batch_size
        out = [(start, min(start + size, n)) for start in range(0, n, size)]
        if out and self.world_size > 1 and out[-1][1] - out[-1][0] < self.world_size:
            if self.short_last == "drop" or len(out) == 1:
                out.pop()
            else:
                out[-2:] = [(out[-2][0], out[-1][1])]
        return out

    def _part(self, start: int, stop: int) -> tuple[int, int]:
        """This rank's [start, stop) of a global batch: `torch.tensor_split`'s near-equal parts."""
        if self.world_size == 1:
            return start, stop
        q, r = divmod(stop - start, self.world_size)
        first = start + self.rank * q + min(self.rank, r)
        return first, first + q + (self.rank < r)

    def __len__(self) -> int:
        return len(self.bounds())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self.sampler.indices()  # drawn on the CPU: the same order wherever the data lives
        if order is not None and self.tensors[0].device != order.device:
            order = order.to(self.tensors[0].device)
        for start, stop in self.bounds():
            start, stop = self._part(start, stop)
            if order is None:
                batch = tuple(t[start:stop] for t in self.tensors)
            else:
                idx = order[start:stop]
                batch = tuple(t[idx] for t in self.tensors)
            yield self.transform(batch) if self.transform else batch


class GroupedBatches:
    """Hands Lightning `group` consecutive batches at a time (a list); the module still takes one
    optimiser step per batch (see `dlwp.task.base.BookTask.training_step`).

    Lightning's loop costs ~0.5-1 ms of Python per step (hooks, closures, progress tracking): as
    much as a whole step of the book's small dense networks on a CPU. Grouping pays it once per
    `group` batches while the batches, their order and the updates stay exactly the same.
    """

    def __init__(self, batches: TensorBatches, group: int) -> None:
        if group < 1:
            raise ValueError(f"group must be >= 1, got {group}")
        self.batches, self.group = batches, group
        self.sampler = batches.sampler  # Lightning calls sampler.set_epoch(epoch)
        self.batch_sampler = None

    def __len__(self) -> int:
        return -(-len(self.batches) // self.group)

    def __iter__(self) -> Iterator[list[tuple[torch.Tensor, ...]]]:
        chunk: list[tuple[torch.Tensor, ...]] = []
        for batch in self.batches:
            chunk.append(batch)
            if len(chunk) == self.group:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
