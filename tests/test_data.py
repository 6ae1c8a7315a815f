"""Data modules: the whole-batch loader, subsets, splits, and MNIST (errors; real-data tests skip without the
mirror, synthetic ones are named so)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import dlwp, record, run_dirs
from dlwp.data.batches import TensorBatches
from dlwp.data.digits import DigitsDataModule
from dlwp.data.mnist import MNISTDataModule
from dlwp.errors import DataMissingError


def test_batches_cover_every_sample_once_per_epoch_in_a_seeded_order():
    x, y = torch.arange(1000).float().unsqueeze(1), torch.arange(1000)
    loader = TensorBatches((x, y), batch_size=128, shuffle=True, seed=3)
    assert len(loader) == 8  # 7 full batches and a last one of 104, as Keras fit() does

    def epoch(e: int) -> torch.Tensor:
        loader.sampler.set_epoch(e)
        batches = list(loader)
        assert all(torch.equal(bx.squeeze(1).long(), by) for bx, by in batches), "x and y stay aligned"
        return torch.cat([by for _, by in batches])

    first, again, second = epoch(0), epoch(0), epoch(1)
    assert sorted(first.tolist()) == list(range(1000))
    assert torch.equal(first, again), "an epoch's order depends only on (seed, epoch): resumable"
    assert not torch.equal(first, second), "each epoch is reshuffled"


def test_gpu_runs_copy_each_split_to_the_device_once_and_keep_the_cpu_order():
    """`device_resident`: exercised on torch's `meta` device, which stands in for a GPU on any machine."""
    from types import SimpleNamespace

    dm = DigitsDataModule(batch_size=100, batches_per_call=1, seed=5)
    dm.setup()
    host = list(dm.train_dataloader())
    meta = SimpleNamespace(root_device=torch.device("meta"))
    dm.trainer = SimpleNamespace(strategy=meta, global_rank=0, world_size=1)
    on_device = list(dm.train_dataloader())
    assert all(bx.device.type == "meta" and by.device.type == "meta" for bx, by in on_device)
    assert [bx.shape for bx, _ in on_device] == [bx.shape for bx, _ in host], "same batches, now sliced on the device"
    assert dm._tensors("train")[0] is dm._tensors("train")[0], "copied once, not per epoch"
    assert dm.splits["train"][0].device.type == "cpu", "the host copy stays for checkpoints and other consumers"
    dm_host = DigitsDataModule(batch_size=100, batches_per_call=1, seed=5, device_resident=False)
    dm_host.setup()
    dm_host.trainer = dm.trainer
    assert next(iter(dm_host.train_dataloader()))[0].device.type == "cpu", "device_resident=false keeps the host path"


def test_unshuffled_batches_are_in_order():
    y = torch.arange(10)
    assert torch.cat([b for _, b in TensorBatches((y, y), 4)]).tolist() == list(range(10))


def test_data_shuffle_false_walks_the_training_set_in_order_every_epoch():
    """Book 8.5's sequential walk: `data.shuffle: false` serves the training samples in order."""
    dm = DigitsDataModule(batch_size=100, batches_per_call=1, seed=5, shuffle=False)
    dm.setup()
    loader = dm.train_dataloader()
    n = len(loader) * 100  # whole batches only, as training drops a short last one
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        assert torch.equal(torch.cat([by for _, by in loader]), dm.splits["train"][1][:n])
    shuffled = DigitsDataModule(batch_size=100, batches_per_call=1, seed=5)
    shuffled.setup()
    assert not torch.equal(torch.cat([by for _, by in shuffled.train_dataloader()]), shuffled.splits["train"][1][:n])


def test_batch_transform_runs_on_whole_batches():
    idx = torch.tensor([[1, 3], [0, 2]])
    loader = TensorBatches((idx, torch.zeros(2)), 2, transform=lambda b: (b[0] * 10, b[1]))
    ((bx, _),) = list(loader)
    assert bx.tolist() == [[10, 30], [0, 20]]


def test_subset_is_stratified_and_fixed():
    dm = DigitsDataModule(subset=200)
    dm.setup()
    labels = dm.splits["train"][1]
    counts = torch.bincount(labels, minlength=10)
    assert len(labels) == 200 and counts.min() >= 18 and counts.max() <= 22
    again = DigitsDataModule(subset=200, seed=99)  # the run seed does not move the subset
    again.setup()
    assert torch.equal(again.splits["train"][1], labels)


@pytest.mark.parametrize(("val_from", "expected"), [("head", slice(0, 100)), ("tail", slice(1337, 1437))])
def test_validation_hold_out_from_head_or_tail(val_from, expected):
    full = DigitsDataModule()
    full.setup()
    dm = DigitsDataModule(val_size=100, val_from=val_from)
    dm.setup()
    assert dm.sizes() == {"train": 1337, "val": 100, "test": 360}
    assert torch.equal(dm.splits["val"][0], full.splits["train"][0][expected])


def test_test_split_as_validation():
    dm = DigitsDataModule(val_from="test")
    dm.setup()
    assert dm.splits["val"] is dm.splits["test"]


def test_missing_mnist_says_how_to_provide_it(tmp_path):
    ways = r"(?s)does not exist.*dlwp data fetch mnist.*DLWP_DATA_MIRROR.*dvc pull"
    with pytest.raises(DataMissingError, match=ways):
        MNISTDataModule(path=str(tmp_path / "mnist" / "mnist.npz")).setup()


def test_corrupt_or_partial_mnist_is_named(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(DataMissingError, match="corrupt or not the expected format"):
        MNISTDataModule(path=str(bad)).setup()
    partial = tmp_path / "partial.npz"
    z = np.zeros
    np.savez(partial, x_train=z((10, 28, 28), np.uint8), y_train=z(10, np.uint8),
             x_test=z((10, 28, 28), np.uint8), y_test=z(10, np.uint8))  # fmt: skip
    with pytest.raises(DataMissingError, match=r"has shape \(10, 28, 28\), expected \(60000, 28, 28\)"):
        MNISTDataModule(path=str(partial)).setup()


def test_cli_without_mnist_fails_at_once_with_instructions(tmp_path):
    proc = dlwp("train", "task=mnist_dense", f"paths.data_dir={tmp_path}", "data.download=false",
                runs=tmp_path / "runs", check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "mnist.npz does not exist" in proc.stderr and "Traceback" not in proc.stderr
    (run_dir,) = run_dirs(tmp_path / "runs", "mnist_dense")
    assert record(run_dir)["status"] == "failed" and "DataMissingError" in record(run_dir)["error"]


def test_mnist_is_read_as_the_book_does(mnist_data_dir):
    dm = MNISTDataModule(path=str(mnist_data_dir / "mnist" / "mnist.npz"))
    dm.setup()
    x, y = dm.splits["train"]
    assert dm.sizes() == {"train": 60000, "test": 10000}
    assert x.shape == (60000, 784) and x.dtype == torch.float32 and x.min() >= 0 and x.max() == 1.0
    assert torch.bincount(y).tolist()[:3] == [5923, 6742, 5958]  # MANIFEST.md class counts


def _train_mnist_dense_on_a_subset(runs: Path, *source: str) -> dict:
    dlwp("train", "task=mnist_dense", "data.subset=3000", "trainer.max_epochs=3", *source, runs=runs)
    (run_dir,) = run_dirs(runs, "mnist_dense")
    rec = record(run_dir)
    assert rec["status"] == "completed" and rec["data"]["sizes"] == {"train": 3000, "test": 3000}
    assert rec["metrics"]["final"]["test/acc"] > 0.85, "far above chance (0.10) after 3 epochs on 3,000 digits"
    return rec


def test_mnist_dense_learns_on_a_subset_of_the_real_mnist(mnist_data_dir, tmp_path):
    """Real-data test (skips without the mirror): the run names the bytes it read, which registered
    file and which copy of it. The book's full-size number: tests/test_reproduce.py."""
    rec = _train_mnist_dense_on_a_subset(tmp_path, f"paths.data_dir={mnist_data_dir}")
    assert rec["data"]["source"] == "real"
    (read,) = rec["data"]["files"]
    assert (read["dataset"], read["file"]) == ("mnist", "mnist/mnist.npz")
    assert read["variant"] == "array-identical re-pack of the Keras file (shared mirror)"
    mirror = mnist_data_dir / "mnist" / "mnist.npz"
    assert Path(read["path"]).resolve() == mirror.resolve()
    assert read["sha256"] == hashlib.sha256(mirror.read_bytes()).hexdigest()


def test_synthetic_mnist_dense_learns_on_a_subset(tmp_path):
    """Synthetic on purpose (`data.source=synthetic`, runs on every machine): the stand-in has
    MNIST's format and a learnable signal, and the run record says it read no file."""
    rec = _train_mnist_dense_on_a_subset(tmp_path, "data.source=synthetic", f"paths.data_dir={tmp_path / 'none'}")
    assert rec["data"]["source"] == "synthetic" and rec["data"]["files"] == []
