"""The private Lightning/torchmetrics APIs dlwp relies on (dlwp/compat.py) still exist and behave.

These fail when an upstream release within `compat.CHECKED` changes one of them; outside those
versions dlwp takes the public paths, which the rest of the suite exercises.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch

from dlwp import compat
from dlwp.task.metrics import BatchMean


def test_this_environment_is_within_the_checked_versions():
    assert compat.LIGHTNING_OK and compat.TORCHMETRICS_OK, "update compat.CHECKED after checking the new versions"


@pytest.mark.skipif(not compat.TORCHMETRICS_OK, reason="torchmetrics outside the checked versions")
def test_fast_update_does_torchmetrics_bookkeeping():
    metric = BatchMean()
    assert {"_computed", "_update_count"} <= set(metric.__dict__), "torchmetrics renamed its update state"
    compat.fast_update(metric, torch.tensor(2.0), 3)
    assert metric.compute().item() == 2.0
    compat.fast_update(metric, torch.tensor(4.0), 1)
    assert metric._update_count == 2 and metric.compute().item() == pytest.approx(2.5), "a stale cached compute"


@pytest.mark.skipif(not compat.LIGHTNING_OK, reason="Lightning outside the checked versions")
def test_lightning_private_hooks_and_counters_exist():
    from lightning.pytorch.core.optimizer import LightningOptimizer

    wrapped = LightningOptimizer(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    assert callable(wrapped._on_before_step) and callable(wrapped._on_after_step)  # the fit loop replaces them
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert compat.epoch_to_serve(trainer) == 0
    module = L.LightningModule()
    assert "_current_fx_name" in compat.PLAIN_ATTRIBUTES and hasattr(module, "_current_fx_name")


def test_counted_steps_advance_lightnings_step_counter():
    """A direct optimiser step is counted as Lightning's own (trainer.global_step, max_steps)."""
    from dlwp.data.batches import TensorBatches
    from dlwp.model.dense import DenseNet
    from dlwp.task import SupervisedTask
    from test_core import data, fit

    task = SupervisedTask(DenseNet(5, [8], 1), seed=0, problem="binary")
    trainer = fit(task, TensorBatches(data(), 16), epochs=2)
    assert task._direct == compat.LIGHTNING_OK and trainer.global_step == 8


def test_public_paths_outside_the_checked_versions(monkeypatch):
    monkeypatch.setattr(compat, "TORCHMETRICS_OK", False)
    metric = BatchMean()
    compat.fast_update(metric, torch.tensor(3.0), 2)
    assert metric.compute().item() == 3.0 and metric._update_count == 1
