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


@pytest.mark.skipif(not compat.HYDRA_OK, reason="hydra-core outside the checked versions")
@pytest.mark.parametrize("mode", [None, "MULTIRUN"])
def test_skipping_hydras_mode_probe_answers_as_the_probe(monkeypatch, tmp_path, mode):
    """Without a config that sets `hydra.mode` the shortcut returns what Hydra's probe composes
    (None); with one, or with an override that could set it, Hydra's probe runs."""
    from hydra import initialize_config_dir
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.setattr(Hydra, "get_mode", Hydra.get_mode)  # put back after the test
    probe = getattr(Hydra.get_mode, "__wrapped__", Hydra.get_mode)
    (tmp_path / "app.yaml").write_text("seed: 0\n" + (f"hydra:\n  mode: {mode}\n" if mode else ""))
    assert compat.skip_hydra_mode_probe([tmp_path], ["seed=1"]) is (mode is None)
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(tmp_path), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        answer = hydra.get_mode("app", ["seed=1"])
        assert answer == probe(hydra, "app", ["seed=1"])
        assert (answer and answer.name) == mode
    assert not compat.skip_hydra_mode_probe([tmp_path], ["hydra.mode=MULTIRUN"])
    assert not compat.skip_hydra_mode_probe([tmp_path], ["--config-dir", "elsewhere"])


def test_dlwp_s_own_configs_leave_hydras_mode_to_the_command_line():
    """dlwp's conf/ sets no `hydra.mode` (`-m` chooses), so its commands compose their config once."""
    from dlwp.paths import conf_dir

    assert not compat._files_set_hydra_mode([conf_dir()])
