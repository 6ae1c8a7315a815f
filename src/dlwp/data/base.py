"""The one data module every in-memory dataset uses: splits, subsets and fast batches.

A dataset subclass only says how to read its files into tensors (`load`) and which files those
are (`files`); validation hold-outs, seeded subsets for smoke tests and the batch path live here,
once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch

from dlwp.data.batches import GroupedBatches, TensorBatches
from dlwp.errors import ConfigError, DataMissingError

Split = tuple[torch.Tensor, torch.Tensor]


def require_file(path: Path | str, dataset: str) -> Path:
    """`path` if it is a file; otherwise a `DataMissingError` listing every way to get it."""
    path = Path(path)
    if path.is_file():
        return path
    raise DataMissingError(
        f"{dataset}: {path} does not exist. Get it in one of these ways:\n"
        f"  dlwp data fetch {dataset}                           # download (needs network), verify, store\n"
        f"  DLWP_DATA_MIRROR=/path/to/mirror dlwp data fetch {dataset}   # copy from an offline mirror\n"
        f"  dvc pull                                       # the pinned data version, from the DVC remote\n"
        f"or point paths.data_dir at a folder that already holds {dataset}/ "
        f"(`dlwp data status` shows what is where)."
    )


class InMemoryDataModule(L.LightningDataModule):
    """Serves `train`/`val`/`test` tensors as whole-batch slices.

    Args:
        batch_size: training batch size (the book's `batch_size`): the global batch, split over
            the processes of a distributed run (it must be divisible by their number).
        eval_batch_size: batch size for validation and test; it does not change their metrics.
        val_size: training samples held out for validation; 0 means no validation (as book 2.1).
        val_from: take the hold-out from the `head` of the training set (book 3.5, 3.6), its
            `tail` (Keras `validation_split`), or use the `test` split for validation (book 4.4).
        subset: keep only this many training samples and this many test samples (seeded,
            stratified by class); for smoke tests. None keeps everything.
        subset_seed: seed of that subset; fixed so that runs with different seeds share it.
        num_folds: K of K-fold validation (book 3.7); 0 disables it. With K > 0 the training set is
            cut into K contiguous folds (the last one takes any remainder) and fold `fold` is the
            validation set; the others are trained on. See `dlwp.kfold`.
        fold: which fold validates, 0 <= fold < num_folds.
        batches_per_call: training batches handed to the module per Lightning step; it still takes
            one optimiser step per batch (same batches, same order, same updates), but Lightning's
            per-step overhead is paid once per group. Larger is faster for small models; the
            progress bar and `trainer.limit_train_batches` count groups.
        device_resident: on a GPU run, copy the splits into the accelerator's memory once, so that
            batches are sliced there (no host-to-device copy per step; the book's datasets fit
            easily). The order of samples is the same as on the CPU. No effect on CPU runs.
        source: `real` (the dataset's files) or `synthetic`: generated tensors with the real
            format and a learnable signal, for tests on machines without the data. Only ever
            used when asked for; never a silent stand-in for missing files.
        seed: seed of the per-epoch shuffle; the run's `seed` is passed in here.
    """

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int = 1024,
        val_size: int = 0,
        val_from: Literal["head", "tail", "test"] = "tail",
        subset: int | None = None,
        subset_seed: int = 0,
        num_folds: int = 0,
        fold: int = 0,
        batches_per_call: int = 8,
        device_resident: bool = True,
        source: Literal["real", "synthetic"] = "real",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if val_from not in ("head", "tail", "test"):
            raise ConfigError(f"data.val_from must be head, tail or test, got {val_from!r}")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.val_from = val_size, val_from
        if source not in ("real", "synthetic"):
            raise ConfigError(f"data.source must be real or synthetic, got {source!r}")
        if num_folds and not 0 <= fold < num_folds:
            raise ConfigError(f"data.fold={fold} must be in [0, data.num_folds={num_folds})")
        if num_folds and (val_size or val_from == "test"):
            raise ConfigError("data.num_folds > 0 picks the validation fold itself: set data.val_size=0, val_from=tail")
        self.subset, self.subset_seed, self.source, self.seed = subset, subset_seed, source, seed
        self.num_folds, self.fold = num_folds, fold
        if batches_per_call < 1:
            raise ConfigError(f"data.batches_per_call must be >= 1, got {batches_per_call}")
        self.batches_per_call = batches_per_call
        self.device_resident = device_resident
        self.splits: dict[str, Split] = {}
        self._resident: dict[tuple[str, str], Split] = {}

    # -- what a dataset implements -------------------------------------------------------------
    def load(self) -> dict[str, Split]:
        """Return at least `train` and `test` as `(x, y)` tensors, in the book's order."""
        raise NotImplementedError

    def files(self) -> list[Path]:
        """The files `load` reads; their sha256 goes into the run record."""
        raise NotImplementedError

    def synthetic(self) -> dict[str, Split]:
        """Like `load`, but generated: same shapes, dtypes and label range, a learnable signal."""
        raise NotImplementedError(f"{type(self).__name__} has no synthetic source")

    def data_files(self) -> list[Path]:
        """The files this run reads (none for synthetic data)."""
        return [] if self.source == "synthetic" else self.files()

    # -- shared mechanics ----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits = self.synthetic() if self.source == "synthetic" else self.load()
        train, test = splits["train"], splits["test"]
        if self.subset is not None:
            train = _subset(train, self.subset, self.subset_seed)
            test = _subset(test, self.subset, self.subset_seed + 1)
        if self.num_folds:
            val, train = kfold_split(train, self.num_folds, self.fold)
        elif self.val_from == "test":
            val = test
        elif self.val_size > 0:
            n = len(train[0])
            if self.val_size >= n:
                raise ConfigError(f"data.val_size={self.val_size} leaves no training data (of {n})")
            if self.val_from == "head":
                val, train = _take(train, 0, self.val_size), _take(train, self.val_size, n)
            else:
                val, train = _take(train, n - self.val_size, n), _take(train, 0, n - self.val_size)
        else:
            val = None
        self.splits = {"train": train, "test": test} | ({"val": val} if val is not None else {})

    def sizes(self) -> dict[str, int]:
        return {name: len(split[0]) for name, split in self.splits.items()}

    batch_transform = None
    """Optionally a method applied to each whole batch, for datasets stored in a compact encoding."""

    def ranks(self) -> tuple[int, int]:
        """(global rank, world size) of this process: from the attached Trainer, else (0, 1)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _tensors(self, split: str) -> Split:
        """`split`'s tensors where the batches will be consumed: on the run's accelerator when
        `device_resident` (copied once per split and device), else in host memory."""
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if device.type == "cpu" or not self.device_resident:
            return self.splits[split]
        key = (split, str(device))
        if key not in self._resident:
            self._resident[key] = tuple(t.to(device) for t in self.splits[split])
        return self._resident[key]

    def _loader(self, split: str, train: bool) -> TensorBatches:
        """Batches of `split` for this process. `batch_size` and `eval_batch_size` are global: with
        W processes (DDP) each rank serves its 1/W part of every global batch (see
        `dlwp.data.batches`), so W processes train on the same batches as one process would and
        evaluate every sample exactly once."""
        batch_size = self.batch_size if train else self.eval_batch_size
        rank, world_size = self.ranks()
        if train and batch_size % world_size:
            raise ConfigError(
                f"data.batch_size={batch_size} is the global batch; it must be divisible by the "
                f"{world_size} processes (devices x nodes) so that each gets the same share"
            )
        n = len(self.splits[split][0])
        if 0 < n < world_size:
            raise ConfigError(f"the {split} split has {n} samples: fewer than the {world_size} processes")
        return TensorBatches(self._tensors(split), batch_size, train, self.seed, self.batch_transform,
                             rank=rank, world_size=world_size, short_last="drop" if train else "merge")  # fmt: skip

    def train_dataloader(self) -> TensorBatches | GroupedBatches:
        batches = self._loader("train", train=True)
        return GroupedBatches(batches, self.batches_per_call) if self.batches_per_call > 1 else batches

    def val_dataloader(self) -> TensorBatches | list:
        return self._loader("val", train=False) if "val" in self.splits else []

    def test_dataloader(self) -> TensorBatches:
        return self._loader("test", train=False)


def fold_bounds(n: int, num_folds: int, fold: int) -> tuple[int, int]:
    """[start, stop) of fold `fold` of `n` samples: the book's `i * (n // k)` slices, the last fold
    extended to the end so that the folds cover every sample exactly once."""
    size = n // num_folds
    if size == 0:
        raise ConfigError(f"data.num_folds={num_folds} is more than the {n} training samples")
    return fold * size, n if fold == num_folds - 1 else (fold + 1) * size


def kfold_split(train: Split, num_folds: int, fold: int) -> tuple[Split, Split]:
    """(validation fold, the other folds concatenated in order), as book 3.7 builds them."""
    start, stop = fold_bounds(len(train[0]), num_folds, fold)
    val = _take(train, start, stop)
    rest = tuple(torch.cat([t[:start], t[stop:]]) for t in train)
    return val, rest


def _take(split: Split, start: int, stop: int) -> Split:
    return split[0][start:stop], split[1][start:stop]


def _subset(split: Split, n: int, seed: int) -> Split:
    """n samples, stratified by class when labels are integer classes."""
    x, y = split
    if n >= len(x):
        return split
    rng = np.random.default_rng(seed)
    labels = y.numpy() if y.dtype in (torch.int64, torch.int32, torch.uint8) and y.ndim == 1 else None
    if labels is None:
        idx = rng.permutation(len(x))[:n]
    else:
        idx = _stratified_indices(labels, n, rng)
    idx_t = torch.from_numpy(np.sort(idx))
    return x[idx_t], y[idx_t]


def _stratified_indices(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    # hand out what rounding left over to the classes with the largest remainders
    remainder = counts / counts.sum() * n - quota
    for c in np.argsort(-remainder)[: n - quota.sum()]:
        quota[c] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota, strict=True)]
    return np.concatenate(picked)
