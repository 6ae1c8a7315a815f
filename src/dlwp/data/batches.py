"""Whole-batch slicing of in-memory tensors: the fast path for every dataset that fits in RAM.

A `DataLoader` over a `TensorDataset` indexes one sample at a time and collates the batch in
Python; for the book's small dense networks that costs more than the forward pass. Here a batch
is one gather per tensor (`x[idx]`), and the epoch's order is a pure function of `(seed, epoch)`,
so a run resumed at epoch k sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

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
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        transform: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]] | None = None,
    ) -> None:
        sizes = {len(t) for t in tensors}
        if len(sizes) != 1:
            raise ValueError(f"tensors differ in length: {sorted(sizes)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = tuple(tensors)
        self.batch_size = batch_size
        self.transform = transform
        self.sampler = EpochOrder(sizes.pop(), shuffle, seed)
        self.batch_sampler = None  # Lightning inspects DataLoader-like attributes

    def __len__(self) -> int:
        return -(-self.sampler.n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self.sampler.indices()
        for start in range(0, self.sampler.n, self.batch_size):
            if order is None:
                batch = tuple(t[start : start + self.batch_size] for t in self.tensors)
            else:
                idx = order[start : start + self.batch_size]
                batch = tuple(t[idx] for t in self.tensors)
            yield self.transform(batch) if self.transform else batch
