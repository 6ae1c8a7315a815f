"""Data read one sample at a time: a `DataLoader` with worker processes, for data that does not fit
in memory as two tensors (images on disk, decoded per sample and augmented).

What stays exactly as for in-memory data: hold-outs, seeded subsets, K-fold, the run record's data
identity, global batches split over DDP processes (`dlwp.data.batches.BatchPlan` is the batch
sampler), and reproducibility: a sample's random transform is seeded by `(seed, epoch, index)`,
so the same run gives the same augmented images whatever the number of workers, and a run
resumed from a checkpoint continues exactly as an uninterrupted one. Random transforms run on the
training split only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from dlwp import compat
from dlwp.data import tree
from dlwp.data.base import BookDataModule
from dlwp.data.batches import BatchPlan
from dlwp.data.figures import augmentation_figure

Sample = tuple[tree.Part, tree.Part]
"""`(inputs, targets)` of one sample: tensors without the batch dimension, or dicts of them."""


class SampleSource(Protocol):
    """What a streaming dataset provides per split: its length, one sample, and all its targets
    at once (cheap: no image is decoded for them), for stratified subsets and baselines."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...

    def targets(self) -> tree.Part: ...


class TensorSource:
    """A `SampleSource` over in-memory tensors (synthetic data, tests)."""

    def __init__(self, inputs: tree.Part, targets: tree.Part) -> None:
        self.inputs, self._targets = inputs, targets

    def __len__(self) -> int:
        return tree.length(self._targets)

    def __getitem__(self, index: int) -> Sample:
        return tree.take(self.inputs, index), tree.take(self._targets, index)

    def targets(self) -> tree.Part:
        return self._targets


class SourceView:
    """Samples `index` of `source`, in that order: a hold-out, a subset or a fold, without copying."""

    def __init__(self, source: SampleSource, index: torch.Tensor) -> None:
        if isinstance(source, SourceView):  # a view of a view: one level of indirection
            source, index = source.source, source.index[index]
        self.source, self.index = source, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> Sample:
        return self.source[int(self.index[index])]

    def targets(self) -> tree.Part:
        return tree.take(self.source.targets(), self.index)


def view(source: SampleSource, index: torch.Tensor | slice) -> SourceView:
    if isinstance(index, slice):
        index = torch.arange(len(source))[index]
    return SourceView(source, index)


class EpochSamples(Dataset):
    """The dataset a `DataLoader` reads: keys are `(epoch, draw, index)` (from `BatchPlan`), so a
    worker process seeds the sample's random transform from them without any shared state."""

    def __init__(self, source: SampleSource, seed: int,
                 transform: Callable[[Sample, torch.Generator], Sample] | None = None) -> None:  # fmt: skip
        self.source, self.seed, self.transform = source, seed, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int, int]) -> Sample:
        epoch, draw, index = key
        sample = self.source[index]
        if self.transform is None:
            return sample
        generator = torch.Generator().manual_seed(sample_seed(self.seed, epoch, index, draw))
        return self.transform(sample, generator)


def sample_seed(seed: int, epoch: int, index: int, draw: int = 0) -> int:
    """A distinct 63-bit seed per (run seed, epoch, sample), and per draw of a sample drawn more
    than once in an epoch (`data.steps_per_epoch`)."""
    return (seed * 1_000_003 + epoch * 7_919 + index * 104_729 + draw * 15_485_863 + 12_345) % (2**63 - 1)


class StreamingDataModule(BookDataModule):
    """Base of data modules read per sample through a `DataLoader`; a subclass implements `load()`
    (split name -> `SampleSource`), `files()`, and optionally `train_transform` and `synthetic()`.

    Args:
        num_workers: worker processes decoding samples; 0 decodes in the training process. On a
            2-core machine the workers compete with the training threads (docs/PERFORMANCE.md).
        pin_memory: page-locked batches for faster host-to-GPU copies; None: on when training on
            a GPU.
        persistent_workers: keep the workers between epochs (each start costs about a second).
        prefetch_factor: batches each worker prepares ahead.
        steps_per_epoch: Keras' `fit_generator(steps_per_epoch=...)`: training batches per epoch,
            drawn from successive shuffled passes over the data (book 5.2b: 100 x 32 = 3,200
            draws of its 2,000 images); None: one pass.
        **kwargs: see `BookDataModule`.
    """

    def __init__(self, num_workers: int = 0, pin_memory: bool | None = None, persistent_workers: bool = True,
                 prefetch_factor: int = 2, steps_per_epoch: int | None = None, **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        from dlwp.errors import ConfigError

        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {num_workers}")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise ConfigError(f"data.steps_per_epoch must be >= 1 (or null), got {steps_per_epoch}")
        self.steps_per_epoch = steps_per_epoch
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers, self.prefetch_factor = persistent_workers, prefetch_factor

    train_transform: Callable[[Sample, torch.Generator], Sample] | None = None
    """Optionally a random transform of one training sample (augmentation), drawn from the
    generator it is given; never applied to validation or test samples."""

    batch_transform: Callable[[Sample], Sample] | None = None
    """Optionally a deterministic transform of each collated batch of every split (e.g. uint8
    images -> float in [0, 1]); it runs in the worker processes."""

    def collate(self, samples: list[Sample]) -> Sample:
        batch = default_collate(samples)
        return self.batch_transform(batch) if self.batch_transform is not None else batch

    # -- split operations (see BookDataModule) -------------------------------------------------
    def split_size(self, split: SampleSource) -> int:
        return len(split)

    def split_targets(self, split: SampleSource) -> tree.Part:
        return split.targets()

    def split_take(self, split: SampleSource, index: torch.Tensor | slice) -> SampleSource:
        return view(split, index)

    def example_batch(self, n: int = 2) -> Sample:
        source = self.splits["train"]
        return self.collate([source[i] for i in range(min(n, len(source)))])

    # -- loaders -------------------------------------------------------------------------------
    def _loader(self, split: str, train: bool) -> DataLoader:
        batch_size = self.global_batch_size(split, train)
        rank, world_size = self.ranks()
        source = self.splits[split]
        trainer = getattr(self, "trainer", None)
        epoch_source = (lambda: compat.epoch_to_serve(trainer)) if trainer is not None else None
        samples = self.steps_per_epoch * batch_size if train and self.steps_per_epoch else None
        plan = BatchPlan(len(source), batch_size, shuffle=train, seed=self.seed, rank=rank, world_size=world_size,
                         short_last="drop" if train else "merge", epoch_keys=True, epoch_source=epoch_source,
                         samples_per_epoch=samples)  # fmt: skip
        transform = self.train_transform if train else None
        pin = self.pin_memory if self.pin_memory is not None else self.on_gpu()
        workers = self.num_workers
        return DataLoader(
            EpochSamples(source, self.seed, transform),
            batch_sampler=plan,
            num_workers=workers,
            pin_memory=pin,
            persistent_workers=self.persistent_workers and workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
            collate_fn=self.collate,
            # its own generator for the workers' base seed: drawn from torch's global generator, it
            # was drawn once per epoch without workers and once per fit with persistent ones, so
            # the dropout masks (global generator) and the results depended on data.num_workers
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def save_examples(self, path: Path, images: int = 4, draws: int = 4) -> Path | None:
        """A figure of the training augmentation (book figure 5.11): for the first `images` training
        samples, the sample as stored and `draws` augmented versions, drawn as epochs 0, 1, ... draw
        them. None when there is no augmentation (or no matplotlib)."""
        if self.train_transform is None:
            return None
        dataset = EpochSamples(self.splits["train"], self.seed, self.train_transform)
        plain = EpochSamples(self.splits["train"], self.seed)
        rows = []
        for row in range(min(images, len(dataset))):
            shown = [plain[(0, 0, row)][0]] + [dataset[(epoch, 0, row)][0] for epoch in range(draws)]
            if self.batch_transform is not None:
                shown = [self.batch_transform((image.unsqueeze(0), None))[0][0] for image in shown]
            rows.append(shown)
        return augmentation_figure(path, rows)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", train=False) if "val" in self.splits else []

    def test_dataloader(self) -> DataLoader | list:
        return self._loader("test", train=False) if "test" in self.splits else []
