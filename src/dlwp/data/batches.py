"""Global batches: the per-epoch order, the batches, and each process's share of them.

Two ways to serve them share this planning:

- `TensorBatches`: whole-batch slicing of in-memory tensors, the fast path for every dataset that
  fits in RAM. A `DataLoader` over a `TensorDataset` indexes one sample at a time and collates the
  batch in Python; for the book's small dense networks that costs more than the forward pass. Here
  a batch is one gather per tensor (`x[idx]`).
- `BatchPlan` as a `DataLoader` batch sampler (`dlwp.data.streaming`): datasets read per sample.

The epoch's order is a pure function of `(seed, epoch)`, so a run resumed at epoch k sees exactly
the batches an uninterrupted run would.

Distributed runs (DDP, FSDP: W processes): `batch_size` stays the global batch, as in the book.
Every rank computes the same global batches (same `(seed, epoch)` permutation) and takes its own
part of each one (`torch.tensor_split` into W near-equal contiguous parts), so that W processes
average their gradients over exactly the samples one process would use in that step. No
`DistributedSampler` is involved (the Trainer is built with `use_distributed_sampler=False`):
there is no padding and no duplicated sample. Every rank must run the same number of steps (DDP
waits for all ranks at each step); the only batch that cannot be split into W non-empty parts is a
last one with fewer than W samples: a training plan drops it (`short_last="drop"`), an evaluation
plan adds it to the batch before (`short_last="merge"`) so that every sample is evaluated exactly
once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal, Protocol

import torch

from dlwp.data import tree

Batch = tuple[tree.Part, tree.Part]
"""`(inputs, targets)`; each a tensor or a dict of named tensors (see `dlwp.data.tree`)."""


class EpochOrder:
    """The per-epoch permutation; Lightning calls `set_epoch` on `loader.sampler` each epoch.

    `epoch_source` (the trainer's epoch counter), when given, is asked instead: a `DataLoader`
    with worker processes starts iterating, and so reads the epoch, as soon as its iterator exists,
    which Lightning creates before `set_epoch` when it resumes a run.
    """

    def __init__(self, n: int, shuffle: bool, seed: int, epoch_source: Callable[[], int] | None = None,
                 samples: int | None = None) -> None:  # fmt: skip
        self.n, self.shuffle, self.seed, self._epoch = n, shuffle, seed, 0
        self.epoch_source = epoch_source
        self.samples = n if samples is None else samples
        """Samples drawn per epoch: `n` (one pass), or more/fewer (Keras' `steps_per_epoch` x
        batch size): successive passes, each a new permutation, continue where one ends."""
        if self.samples != n and not shuffle:
            raise ValueError("samples per epoch other than the dataset's size need shuffling")

    @property
    def epoch(self) -> int:
        return self.epoch_source() if self.epoch_source is not None else self._epoch

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    def indices(self, epoch: int | None = None) -> torch.Tensor | None:
        """None means "in order", which lets batches be views instead of copies."""
        if not self.shuffle:
            return None
        gen = torch.Generator().manual_seed(self.seed * 100_003 + (self.epoch if epoch is None else epoch))
        passes = [torch.randperm(self.n, generator=gen) for _ in range(max(1, -(-self.samples // self.n)))]
        return torch.cat(passes)[: self.samples] if len(passes) > 1 or self.samples < self.n else passes[0]


class BatchPlan:
    """Which samples each batch of an epoch holds, on this rank (see the module docstring).

    Iterating gives lists of sample indices: a `DataLoader` batch sampler. `epoch_keys=True`
    yields `(epoch, draw, index)` keys instead, so that a dataset can seed a sample's random
    transform from them even inside a worker process that never sees `set_epoch`.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool = False, seed: int = 0, *, rank: int = 0,
                 world_size: int = 1, short_last: Literal["drop", "merge"] = "drop",
                 epoch_keys: bool = False, epoch_source: Callable[[], int] | None = None,
                 samples_per_epoch: int | None = None) -> None:  # fmt: skip
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if short_last not in ("drop", "merge"):
            raise ValueError(f"short_last must be drop or merge, got {short_last!r}")
        if n and n < world_size:
            raise ValueError(f"{n} samples cannot be split over {world_size} processes")
        self.order = EpochOrder(n, shuffle, seed, epoch_source, samples_per_epoch)
        self.batch_size, self.rank, self.world_size, self.short_last = batch_size, rank, world_size, short_last
        self.epoch_keys = epoch_keys

    @property
    def sampler(self) -> EpochOrder:
        return self.order

    def set_epoch(self, epoch: int) -> None:
        self.order.set_epoch(epoch)

    def bounds(self) -> list[tuple[int, int]]:
        """[start, stop) of each global batch in the epoch's order; the same on every rank."""
        n, size = self.order.samples, self.batch_size
        out = [(start, min(start + size, n)) for start in range(0, n, size)]
        if out and self.world_size > 1 and out[-1][1] - out[-1][0] < self.world_size:
            if self.short_last == "drop" or len(out) == 1:
                out.pop()
            else:
                out[-2:] = [(out[-2][0], out[-1][1])]
        return out

    def part(self, start: int, stop: int) -> tuple[int, int]:
        """This rank's [start, stop) of a global batch: `torch.tensor_split`'s near-equal parts."""
        if self.world_size == 1:
            return start, stop
        q, r = divmod(stop - start, self.world_size)
        first = start + self.rank * q + min(self.rank, r)
        return first, first + q + (self.rank < r)

    def __len__(self) -> int:
        return len(self.bounds())

    def slices(self, epoch: int | None = None) -> Iterator[torch.Tensor | slice]:
        """Each batch of this rank: a slice (data in order) or an index tensor (shuffled)."""
        for _, index in self.batches(epoch):
            yield index

    def batches(self, epoch: int | None = None) -> Iterator[tuple[int, torch.Tensor | slice]]:
        """Each batch of this rank with its first position in the epoch's sequence of samples."""
        order = self.order.indices(epoch)
        for start, stop in self.bounds():
            start, stop = self.part(start, stop)
            yield start, slice(start, stop) if order is None else order[start:stop]

    def __iter__(self) -> Iterator[list]:
        epoch, n = self.order.epoch, self.order.n
        for start, index in self.batches(epoch):
            idx = list(range(index.start, index.stop)) if isinstance(index, slice) else index.tolist()
            if self.epoch_keys:  # (epoch, pass, index): a sample drawn twice in an epoch gets two draws
                yield [(epoch, (start + k) // n, i) for k, i in enumerate(idx)]
            else:
                yield idx


class TensorBatches:
    """Iterable of batches `(inputs[idx], targets[idx])`, optionally passed through `transform`.

    `split` is `(inputs, targets)`, each a tensor or a dict of named tensors. `transform` runs on
    the whole batch (e.g. turning word indices into a multi-hot matrix), so a dataset can stay
    compact in memory and still be served without per-sample Python.

    `rank` / `world_size`: this process's part of each global batch of `batch_size` samples (see
    the module docstring); `short_last` says what a last batch smaller than `world_size` becomes.
    `samples_per_epoch`: Keras' `steps_per_epoch` x batch size, drawn from successive permutations.
    With `world_size=1` the batches are exactly the single-process ones.
    `augment`: a random transform of each batch's inputs (training augmentation, before
    `transform`), called with the batch's `augment.draws` uniforms per sample. They are drawn per
    global batch from `(seed, epoch, position)`, and each rank takes its own rows: a run resumed at
    epoch k, or split over W processes, sees the same augmented samples as one uninterrupted run.
    """

    def __init__(
        self,
        split: Batch,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        transform: Callable[[Batch], Batch] | None = None,
        *,
        rank: int = 0,
        world_size: int = 1,
        short_last: Literal["drop", "merge"] = "drop",
        samples_per_epoch: int | None = None,
        augment: BatchAugment | None = None,
    ) -> None:
        inputs, targets = split
        n = tree.length(inputs)
        if tree.length(targets) != n:
            raise ValueError(f"inputs and targets differ in length: {n} and {tree.length(targets)}")
        self.split = (inputs, targets)
        self.transform, self.augment, self.seed = transform, augment, seed
        self.plan = BatchPlan(n, batch_size, shuffle, seed, rank=rank, world_size=world_size, short_last=short_last,
                              samples_per_epoch=samples_per_epoch)  # fmt: skip
        self.sampler = self.plan.order  # Lightning calls sampler.set_epoch(epoch)
        self.batch_sampler = None  # Lightning inspects DataLoader-like attributes

    @property
    def batch_size(self) -> int:
        return self.plan.batch_size

    def bounds(self) -> list[tuple[int, int]]:
        return self.plan.bounds()

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[Batch]:
        inputs, targets = self.split
        device = tree.tensors(inputs)[0].device
        epoch = self.plan.order.epoch
        # the order is drawn on the CPU: the same wherever the data lives
        for (first, stop), (_, index) in zip(self.plan.bounds(), self.plan.batches(epoch), strict=True):
            if isinstance(index, torch.Tensor) and index.device != device:
                index = index.to(device)
            batch = (tree.take(inputs, index), tree.take(targets, index))
            if self.augment is not None:
                batch = (self.augment(batch[0], self._uniforms(epoch, first, stop)), batch[1])
            yield self.transform(batch) if self.transform else batch

    def _uniforms(self, epoch: int, first: int, stop: int) -> torch.Tensor:
        """This rank's rows of the augmentation draws of the global batch [first, stop)."""
        draws = augment_draws(self.seed, epoch, first, stop - first, self.augment.draws)
        lo, hi = self.plan.part(first, stop)
        return draws[lo - first : hi - first]


class BatchAugment(Protocol):
    """A random transform of a whole batch of inputs (e.g. `dlwp.data.images.BatchShiftFlip`)."""

    draws: int
    """Uniforms in [0, 1) it needs per sample."""

    def __call__(self, inputs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor: ...


def augment_draws(seed: int, epoch: int, position: int, size: int, draws: int) -> torch.Tensor:
    """`[size, draws]` uniforms for the global batch of `size` samples that starts at `position`
    of epoch `epoch`'s order: a distinct 63-bit generator seed per (run seed, epoch, position)."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7_919 + position * 104_729 + 54_321) % (2**63 - 1))
    return torch.rand(size, draws, generator=gen)


class BatchGroup(list):
    """Several consecutive batches handed to the module in one Lightning step (a type of its own:
    a plain `DataLoader` batch is a list too)."""


class GroupedBatches:
    """Hands Lightning `group` consecutive batches at a time (a `BatchGroup`); the module still takes
    one optimiser step per batch (see `dlwp.task.base.BookTask.training_step`).

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

    def __iter__(self) -> Iterator[BatchGroup]:
        chunk = BatchGroup()
        for batch in self.batches:
            chunk.append(batch)
            if len(chunk) == self.group:
                yield chunk
                chunk = BatchGroup()
        if chunk:
            yield chunk
