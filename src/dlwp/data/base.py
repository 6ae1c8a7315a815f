"""What every data module shares: splits, hold-outs, subsets, K-fold, data identity, first-use fetch.

A dataset subclass says how to read its files (`load`) and which files those are (`files`); the
validation hold-out, seeded subsets for smoke tests, K-fold cuts and the batch path live here,
once. Two kinds of data module build on `BookDataModule`:

- `InMemoryDataModule` (this file): the whole dataset as tensors, served as whole-batch slices.
- `StreamingDataModule` (`dlwp.data.streaming`): read one sample at a time by a `DataLoader`.

Both see a split through the same three operations (`split_size`, `split_targets`, `split_take`),
so every way of cutting data is written once, for tensors and dicts of named tensors alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import numpy as np
import torch

from dlwp.data import tree
from dlwp.data.batches import Batch, BatchAugment, GroupedBatches, TensorBatches, augment_draws
from dlwp.data.figures import augmentation_figure
from dlwp.errors import ConfigError, DataMissingError

Split = Batch
"""An in-memory split: `(inputs, targets)`, each a tensor or a dict of named tensors."""


def require_file(path: Path | str, dataset: str) -> Path:
    """`path` if it is a file; otherwise a `DataMissingError` listing every way to get it."""
    path = Path(path)
    if path.is_file():
        return path
    raise DataMissingError(f"{dataset}: {path} does not exist. {ways_to_get(dataset)}")


def ways_to_get(dataset: str) -> str:
    return (
        "Get it in one of these ways:\n"
        f"  dlwp data fetch {dataset}                           # download (needs network), verify, store\n"
        f"  DLWP_DATA_MIRROR=/path/to/mirror dlwp data fetch {dataset}   # copy from an offline mirror\n"
        f"  dvc pull                                       # the pinned data version, from the DVC remote\n"
        f"or point paths.data_dir at a folder that already holds {dataset}/ "
        f"(`dlwp data status` shows what is where)."
    )


class BookDataModule(L.LightningDataModule):
    """Splits and their cuts, for any data module.

    Args:
        batch_size: training batch size (the book's `batch_size`): the global batch, split over
            the processes of a distributed run (it must be divisible by their number).
        eval_batch_size: batch size for validation and test; it does not change their metrics.
        val_size: training samples held out for validation; 0 means no validation (as book 2.1).
            Not with a dataset that has a validation split of its own.
        val_from: take the hold-out from the `head` of the training set (book 3.5, 3.6), its
            `tail` (Keras `validation_split`), or use the `test` split for validation (book 4.4).
        subset: keep only this many samples of each split (seeded, stratified by class); for
            smoke tests. None keeps everything.
        subset_seed: seed of that subset; fixed so that runs with different seeds share it.
        stratify_on: the named target whose classes a subset is stratified by, when targets are
            a dict (e.g. `sentiment`); None: a single integer target is used, a dict is not.
        num_folds: K of K-fold validation (book 3.7); 0 disables it. With K > 0 the training set is
            cut into K contiguous folds (the last one takes any remainder) and fold `fold` is the
            validation set; the others are trained on. See `dlwp.kfold`.
        fold: which fold validates, 0 <= fold < num_folds.
        source: `real` (the dataset's files) or `synthetic`: generated data with the real format
            and a learnable signal, for tests on machines without the data. Only ever used when
            asked for; never a silent stand-in for missing files.
        download: when the dataset's files are missing, `dlwp train` fetches them (from
            `$DLWP_DATA_MIRROR`, else the published URL), verified, before training, as Keras'
            `load_data()` does. false: stop with the list of ways to get them.
        seed: seed of the per-epoch shuffle; the run's `seed` is passed in here.
    """

    dataset: ClassVar[str | None] = None
    """The dataset's name in the registry (`dlwp.data.registry`), for fetching it on first use."""

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int = 1024,
        val_size: int = 0,
        val_from: Literal["head", "tail", "test"] = "tail",
        subset: int | None = None,
        subset_seed: int = 0,
        stratify_on: str | None = None,
        num_folds: int = 0,
        fold: int = 0,
        source: Literal["real", "synthetic"] = "real",
        download: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if val_from not in ("head", "tail", "test"):
            raise ConfigError(f"data.val_from must be head, tail or test, got {val_from!r}")
        if source not in ("real", "synthetic"):
            raise ConfigError(f"data.source must be real or synthetic, got {source!r}")
        if num_folds and not 0 <= fold < num_folds:
            raise ConfigError(f"data.fold={fold} must be in [0, data.num_folds={num_folds})")
        if num_folds and (val_size or val_from == "test"):
            raise ConfigError("data.num_folds > 0 picks the validation fold itself: set data.val_size=0, val_from=tail")
        if batch_size < 1 or eval_batch_size < 1:
            raise ConfigError(
                f"data.batch_size and data.eval_batch_size must be >= 1, got {batch_size}, {eval_batch_size}"
            )
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.val_from = val_size, val_from
        self.subset, self.subset_seed, self.stratify_on = subset, subset_seed, stratify_on
        self.source, self.download, self.seed = source, download, seed
        self.num_folds, self.fold = num_folds, fold
        self.splits: dict[str, Any] = {}

    # -- what a dataset implements -------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        """At least `train`; `val` and `test` when the dataset has them, in the book's order."""
        raise NotImplementedError

    def files(self) -> list[Path]:
        """The files `load` reads; their sha256 goes into the run record."""
        raise NotImplementedError

    def synthetic(self) -> dict[str, Any]:
        """Like `load`, but generated: same shapes, dtypes and label range, a learnable signal."""
        raise NotImplementedError(f"{type(self).__name__} has no synthetic source")

    def data_files(self) -> list[Path]:
        """The files this run reads (none for synthetic data)."""
        return [] if self.source == "synthetic" else self.files()

    def save_examples(self, path: Path) -> Path | None:
        """A figure of what training sees, when that differs from the data (augmentation); None."""
        return None

    def init_network(self, network: Any) -> dict[str, Any] | None:
        """Put what the data knows into the network before training (book 6.1c: GloVe vectors for
        this data's word index into its Embedding); what was done, for the run record, or None."""
        return None

    def baselines(self) -> dict[str, float]:
        """Trivial results that need the data itself (e.g. a naive forecast); the task adds its own
        (majority class, mean predictor) from the targets."""
        return {}

    # -- how a kind of data module handles a split ----------------------------------------------
    def split_size(self, split: Any) -> int:
        raise NotImplementedError

    def split_targets(self, split: Any) -> tree.Part:
        raise NotImplementedError

    def split_take(self, split: Any, index: torch.Tensor | slice) -> Any:
        raise NotImplementedError

    def example_batch(self, n: int = 2) -> Batch:
        """The first `n` training samples as one batch, untransformed: checked against the task
        before training (named outputs and targets)."""
        raise NotImplementedError

    # -- shared mechanics ----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        loaded = self.synthetic() if self.source == "synthetic" else self.load()
        train, val, test = loaded["train"], loaded.get("val"), loaded.get("test")
        if self.subset is not None:
            train = self._subset(train, self.subset_seed)
            val = self._subset(val, self.subset_seed + 2) if val is not None else None
            test = self._subset(test, self.subset_seed + 1) if test is not None else None
        holdout = self.num_folds or self.val_size > 0 or self.val_from == "test"
        if val is not None and holdout:
            raise ConfigError(
                "this dataset has a validation split of its own: data.val_size, data.val_from=test and "
                "data.num_folds do not apply (set data.val_size=0, data.val_from=tail, data.num_folds=0)"
            )
        n = self.split_size(train)
        if self.num_folds:
            start, stop = fold_bounds(n, self.num_folds, self.fold)
            val = self.split_take(train, slice(start, stop))
            rest = torch.cat([torch.arange(0, start), torch.arange(stop, n)])
            train = self.split_take(train, slice(0, start) if stop == n else rest)
        elif self.val_from == "test":
            if test is None:
                raise ConfigError("data.val_from=test, but this dataset has no test split")
            val = test
        elif self.val_size > 0:
            if self.val_size >= n:
                raise ConfigError(f"data.val_size={self.val_size} leaves no training data (of {n})")
            cut = self.val_size if self.val_from == "head" else n - self.val_size
            head, tail = self.split_take(train, slice(0, cut)), self.split_take(train, slice(cut, n))
            val, train = (head, tail) if self.val_from == "head" else (tail, head)
        splits = {"train": train, "val": val, "test": test}
        self.splits = {name: split for name, split in splits.items() if split is not None}

    def sizes(self) -> dict[str, int]:
        return {name: self.split_size(split) for name, split in self.splits.items()}

    def targets(self, split: str) -> tree.Part:
        """All targets of a split (for baselines)."""
        return self.split_targets(self.splits[split])

    def inputs(self, split: str) -> tree.Part:
        """All inputs of a split (for the baselines of a task whose targets are its inputs)."""
        raise NotImplementedError(f"{type(self).__name__} does not hold its inputs in memory")

    def _subset(self, split: Any, seed: int) -> Any:
        """`subset` samples of `split`, in their order, stratified by class where labels allow."""
        n = self.split_size(split)
        if self.subset >= n:
            return split
        rng = np.random.default_rng(seed)
        labels = class_labels(self.split_targets(split), self.stratify_on)
        idx = rng.permutation(n)[: self.subset] if labels is None else stratified_indices(labels, self.subset, rng)
        return self.split_take(split, torch.from_numpy(np.sort(idx)))

    def ranks(self) -> tuple[int, int]:
        """(global rank, world size) of this process: from the attached Trainer, else (0, 1)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def on_gpu(self) -> bool:
        trainer = getattr(self, "trainer", None)
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def global_batch_size(self, split: str, train: bool) -> int:
        """`batch_size` (training) or `eval_batch_size`, checked against the number of processes:
        both are global (see `dlwp.data.batches`)."""
        batch_size = self.batch_size if train else self.eval_batch_size
        _, world_size = self.ranks()
        if train and batch_size % world_size:
            raise ConfigError(
                f"data.batch_size={batch_size} is the global batch; it must be divisible by the "
                f"{world_size} processes (devices x nodes) so that each gets the same share"
            )
        n = self.split_size(self.splits[split])
        if 0 < n < world_size:
            raise ConfigError(f"the {split} split has {n} samples: fewer than the {world_size} processes")
        return batch_size


class InMemoryDataModule(BookDataModule):
    """Serves `train`/`val`/`test` tensors (or dicts of named tensors) as whole-batch slices.

    Args:
        batches_per_call: training batches handed to the module per Lightning step; it still takes
            one optimiser step per batch (same batches, same order, same updates), but Lightning's
            per-step overhead is paid once per group. Larger is faster for small models; the
            progress bar and `trainer.limit_train_batches` count groups.
        device_resident: on a GPU run, copy the splits into the accelerator's memory once, so that
            batches are sliced there (no host-to-device copy per step; the book's datasets fit
            easily). The order of samples is the same as on the CPU. No effect on CPU runs.
        steps_per_epoch: Keras' `fit_generator(steps_per_epoch=...)`: training batches per epoch,
            drawn from successive shuffles (book 6.3: 500 batches of windows); null: one pass.
        shuffle: reshuffle the training samples every epoch (Keras' `fit`); false serves them in
            order, epoch after epoch (book 8.5's GAN walks its frogs sequentially, wrapping around).
        **kwargs: see `BookDataModule`.
    """

    def __init__(self, batches_per_call: int = 8, device_resident: bool = True, steps_per_epoch: int | None = None,
                 shuffle: bool = True, **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.shuffle = shuffle
        if batches_per_call < 1:
            raise ConfigError(f"data.batches_per_call must be >= 1, got {batches_per_call}")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise ConfigError(f"data.steps_per_epoch must be >= 1 (or null), got {steps_per_epoch}")
        self.steps_per_epoch = steps_per_epoch
        self.batches_per_call = batches_per_call
        self.device_resident = device_resident
        self._resident: dict[tuple[str, str], Split] = {}

    batch_transform = None
    """Optionally a method applied to each whole batch of every split, for datasets stored in a
    compact encoding (e.g. word indices -> multi-hot). It decodes; it must not be random."""

    train_augment: BatchAugment | None = None
    """Optionally a random transform of each training batch's inputs (augmentation), applied
    before `batch_transform`; never to validation or test batches."""

    # -- split operations ----------------------------------------------------------------------
    def split_size(self, split: Split) -> int:
        return tree.length(split[1])

    def split_targets(self, split: Split) -> tree.Part:
        return split[1]

    def inputs(self, split: str) -> tree.Part:
        return self.splits[split][0]

    def split_take(self, split: Split, index: torch.Tensor | slice) -> Split:
        return tree.take(split[0], index), tree.take(split[1], index)

    def example_batch(self, n: int = 2) -> Batch:
        batch = self.split_take(self.splits["train"], slice(0, n))
        return self.batch_transform(batch) if self.batch_transform else batch

    # -- loaders -------------------------------------------------------------------------------
    def _tensors(self, split: str) -> Split:
        """`split`'s tensors where the batches will be consumed: on the run's accelerator when
        `device_resident` (copied once per split and device), else in host memory."""
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if device.type == "cpu" or not self.device_resident:
            return self.splits[split]
        key = (split, str(device))
        if key not in self._resident:
            self._resident[key] = tuple(tree.to(part, device) for part in self.splits[split])
        return self._resident[key]

    def _loader(self, split: str, train: bool) -> TensorBatches:
        """Batches of `split` for this process. With W processes (DDP) each rank serves its 1/W
        part of every global batch (see `dlwp.data.batches`), so W processes train on the same
        batches as one process would and evaluate every sample exactly once."""
        batch_size = self.global_batch_size(split, train)
        rank, world_size = self.ranks()
        samples = self.steps_per_epoch * batch_size if train and self.steps_per_epoch else None
        return TensorBatches(self._tensors(split), batch_size, train and self.shuffle, self.seed, self.batch_transform,
                             rank=rank, world_size=world_size, short_last="drop" if train else "merge",
                             samples_per_epoch=samples, augment=self.train_augment if train else None)  # fmt: skip

    def save_examples(self, path: Path, images: int = 4, draws: int = 4) -> Path | None:
        """A figure of the training augmentation (book figure 5.11): the first `images` training
        images as stored, then `draws` augmented versions (each as a batch of epoch 0, 1, ...
        at the epoch's first position would draw it). None without augmentation."""
        if self.train_augment is None:
            return None
        stored = self.split_take(self.splits["train"], slice(0, images))
        n, augment = len(stored[1]), self.train_augment
        shown = [stored[0]] + [augment(stored[0], augment_draws(self.seed, epoch, 0, n, augment.draws))
                               for epoch in range(draws)]  # fmt: skip
        if self.batch_transform is not None:
            shown = [self.batch_transform((x, stored[1]))[0] for x in shown]
        return augmentation_figure(path, [[x[i] for x in shown] for i in range(n)])

    def train_dataloader(self) -> TensorBatches | GroupedBatches:
        batches = self._loader("train", train=True)
        return GroupedBatches(batches, self.batches_per_call) if self.batches_per_call > 1 else batches

    def val_dataloader(self) -> TensorBatches | list:
        return self._loader("val", train=False) if "val" in self.splits else []

    def test_dataloader(self) -> TensorBatches | list:
        return self._loader("test", train=False) if "test" in self.splits else []


def fold_bounds(n: int, num_folds: int, fold: int) -> tuple[int, int]:
    """[start, stop) of fold `fold` of `n` samples: the book's `i * (n // k)` slices, the last fold
    extended to the end so that the folds cover every sample exactly once."""
    size = n // num_folds
    if size == 0:
        raise ConfigError(f"data.num_folds={num_folds} is more than the {n} training samples")
    return fold * size, n if fold == num_folds - 1 else (fold + 1) * size


def class_labels(targets: tree.Part, key: str | None) -> np.ndarray | None:
    """Integer class labels to stratify by: the `key` target, or the one target when it is a 1-D
    integer tensor; None when there are none (regression, multi-label, an unnamed dict)."""
    if isinstance(targets, dict):
        if key is None:
            return None
        if key not in targets:
            raise ConfigError(
                f"data.stratify_on={key!r} is not a target of this dataset; targets: {', '.join(targets)}"
            )
        targets = targets[key]
    elif key is not None:
        raise ConfigError(f"data.stratify_on={key!r}: this dataset has a single, unnamed target")
    integer = targets.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
    return targets.cpu().numpy() if integer and targets.ndim == 1 else None


def stratified_indices(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    # hand out what rounding left over to the classes with the largest remainders
    remainder = counts / counts.sum() * n - quota
    for c in np.argsort(-remainder)[: n - quota.sum()]:
        quota[c] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota, strict=True)]
    return np.concatenate(picked)


def check_target_names(spec: Any, table: dict[str, Any]) -> str | list[str]:
    """`data.targets`: one name (the batch's targets are a tensor) or a list of names (a dict of
    named tensors, for a multi-output task), each a key of the dataset's `table`."""
    names = [spec] if isinstance(spec, str) else list(spec) if isinstance(spec, Sequence) else []
    if not names or any(not isinstance(n, str) or n not in table for n in names):
        raise ConfigError(f"data.targets={spec!r}: give one name or a list of names from {list(table)}")
    return spec if isinstance(spec, str) else names


def make_targets(spec: str | list[str], table: dict[str, Any], *sources: Any) -> tree.Part:
    """The targets `spec` names, each made by `table[name](*sources)`."""
    if isinstance(spec, str):
        return table[spec](*sources)
    return {name: table[name](*sources) for name in spec}
