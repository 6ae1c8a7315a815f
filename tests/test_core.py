"""The core that chapters 5-8 build on: named inputs and outputs, task classes by `_target_`, several
optimisers and schedules, streaming data, trainer limits, run records and the config search path.

Behaviour is checked in process where that is exact and fast, and through the real CLI where the
user's path matters (errors at start-up, multi-output runs, a project of one's own).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ROOT, dlwp, metric_rows, record, run_dirs
from dlwp.data import tree
from dlwp.data.batches import BatchGroup, GroupedBatches, TensorBatches
from dlwp.errors import ConfigError
from dlwp.model.dense import DenseNet
from dlwp.task import MultiOutputTask, SupervisedTask

# -- named batches -------------------------------------------------------------------------------


def test_named_parts_are_cut_like_tensors():
    x = {"title": torch.arange(10), "body": torch.arange(10) * 10}
    y = {"topic": torch.arange(10) % 3, "length": torch.arange(10).float()}
    batches = list(TensorBatches((x, y), 4, shuffle=True, seed=1))
    assert [tree.length(b[1]) for b in batches] == [4, 4, 2]
    for inputs, targets in batches:
        assert torch.equal(inputs["body"], inputs["title"] * 10), "every named tensor takes the same samples"
        assert torch.equal(targets["length"].long(), inputs["title"])
    seen = torch.cat([b[0]["title"] for b in batches])
    assert sorted(seen.tolist()) == list(range(10))


def test_grouped_batches_have_their_own_type():
    x = torch.arange(20).float().unsqueeze(1)
    groups = list(GroupedBatches(TensorBatches((x, x), 4), 2))
    assert all(isinstance(g, BatchGroup) for g in groups) and [len(g) for g in groups] == [2, 2, 1]
    assert not isinstance([x, x], BatchGroup), "a plain DataLoader batch (a list) is not a group"


def test_subsets_stratify_on_a_named_target():
    from dlwp.data.digits import DigitsDataModule

    dm = DigitsDataModule(targets=["digit", "odd", "value"], stratify_on="digit", subset=200, batches_per_call=1)
    dm.setup()
    counts = torch.bincount(dm.splits["train"][1]["digit"], minlength=10)
    assert counts.sum() == 200 and counts.min() >= 19 and counts.max() <= 21, counts
    y = dm.splits["train"][1]
    assert torch.equal(y["odd"], (y["digit"] % 2).float()) and torch.equal(y["value"], y["digit"].float())
    with pytest.raises(ConfigError, match="stratify_on='colour' is not a target"):
        DigitsDataModule(targets=["digit", "odd"], stratify_on="colour", subset=100).setup()


def test_hold_outs_and_folds_cut_named_targets_alike():
    from dlwp.data.digits import DigitsDataModule

    full = DigitsDataModule(targets=["digit", "odd"])
    full.setup()
    fold = DigitsDataModule(targets=["digit", "odd"], num_folds=4, fold=1)
    fold.setup()
    n = full.sizes()["train"]
    start, stop = n // 4, 2 * (n // 4)
    assert torch.equal(fold.splits["val"][1]["digit"], full.splits["train"][1]["digit"][start:stop])
    assert torch.equal(
        fold.splits["train"][0], torch.cat([full.splits["train"][0][:start], full.splits["train"][0][stop:]])
    )
    held = DigitsDataModule(targets=["digit", "odd"], val_size=100, val_from="head")
    held.setup()
    assert torch.equal(held.splits["val"][1]["odd"], full.splits["train"][1]["odd"][:100])


# -- tasks ---------------------------------------------------------------------------------------


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.a, self.b = nn.Linear(8, 3), nn.Linear(8, 1)

    def forward(self, x):
        h = self.body(x).relu()
        return {"a": self.a(h), "b": self.b(h)}


def test_multi_output_loss_is_the_weighted_sum_and_heads_are_logged_apart():
    torch.manual_seed(0)
    outputs = {"a": {"problem": "multiclass", "loss_weight": 0.5}, "b": {"problem": "regression", "loss_weight": 2.0}}
    task = MultiOutputTask(TwoHeads(), seed=0, outputs=outputs)
    x = torch.randn(6, 4)
    y = {"a": torch.tensor([0, 1, 2, 0, 1, 2]), "b": torch.randn(6)}
    total = task._step("train", (x, y), 1)
    out = task.network(x)
    expected = 0.5 * nn.functional.cross_entropy(out["a"], y["a"]) + 2.0 * nn.functional.mse_loss(
        out["b"][:, 0], y["b"]
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert {"train/loss", "train/a/loss", "train/a/acc", "train/b/loss", "train/b/mae"} <= set(task.metric_names())
    assert task.train_metrics["b/loss"].compute().item() == pytest.approx(
        nn.functional.mse_loss(out["b"][:, 0], y["b"]).item(), rel=1e-5
    ), "each output's loss is logged unweighted, as Keras does"


@pytest.mark.parametrize(
    ("outputs", "targets", "message"),
    [
        ({"a": {"problem": "multiclass"}, "c": {"problem": "binary"}}, {"a": 0, "b": 0, "c": 0},
         "task.outputs.c: the network has no output named 'c'"),
        ({"a": {"problem": "multiclass"}, "b": {"problem": "regression"}}, {"a": 0},
         "task.outputs.b: the batch has no target named 'b'"),
        ({"a": {"problem": "multiclass"}}, {"a": 0, "b": 0}, r"output\(s\) b have no entry in task.outputs"),
        ({"a": {"problem": "binary"}, "b": {"problem": "regression"}}, {"a": 0, "b": 0},
         r"task.outputs.a=binary: its loss cannot be computed"),
    ],
)  # fmt: skip
def test_outputs_that_do_not_fit_the_network_or_the_data_fail_naming_the_key(outputs, targets, message):
    task = MultiOutputTask(TwoHeads(), seed=0, outputs=outputs)
    batch = (torch.randn(2, 4), {k: torch.zeros(2, dtype=torch.long) for k in targets})
    with pytest.raises(ConfigError, match=message):
        task.check_batch(batch)


def test_negative_loss_weight_and_unknown_problem_fail_naming_the_key():
    with pytest.raises(ConfigError, match=r"task.outputs.b.loss_weight=-1.0: a loss weight must be >= 0"):
        MultiOutputTask(
            TwoHeads(),
            seed=0,
            outputs={"a": {"problem": "multiclass"}, "b": {"problem": "regression", "loss_weight": -1}},
        )
    with pytest.raises(ConfigError, match=r"task.outputs.b.problem='ranking' is not a problem type"):
        MultiOutputTask(TwoHeads(), seed=0, outputs={"b": {"problem": "ranking"}})


def test_a_single_output_task_refuses_named_outputs_clearly():
    task = SupervisedTask(TwoHeads(), seed=0, problem="multiclass")
    with pytest.raises(ConfigError, match="MultiOutputTask"):
        task.check_batch((torch.randn(2, 4), torch.zeros(2, dtype=torch.long)))


def test_task_keys_are_checked_against_the_task_class(tmp_path):
    from dlwp.config import validate
    from test_config import compose_train

    with pytest.raises(ConfigError, match=r"'task.monitr' \(did you mean 'task.monitor'\?\)"):
        validate(compose_train("+task.monitr=val/loss"))
    with pytest.raises(ConfigError, match=r"unknown key 'task.problem' for dlwp.task.MultiOutputTask"):
        validate(compose_train("task=digits_multi_output", "+task.problem=binary"))
    with pytest.raises(ConfigError, match=r"task.optimizer.lrr"):
        validate(compose_train("+task.optimizer.lrr=0.1"))
    with pytest.raises(ConfigError, match=r"'task.problem' must be one of"):
        validate(compose_train("task.problem=ranking"))
    cfg = validate(compose_train("task=digits_multi_output"))
    assert cfg.task._target_ == "dlwp.task.MultiOutputTask" and cfg.task.outputs.value.loss_weight == 0.25


def test_book_convnet_has_the_books_parameters_and_keras_initialisation():
    import math

    from dlwp.model.convnet import ConvNet

    net = ConvNet([1, 28, 28], [32, 64, 64], 10, pool=[True, True, False], hidden=[64])
    assert sum(p.numel() for p in net.parameters()) == 93_322, "book 5.1's model.summary()"
    conv = net.features[0]
    bound = math.sqrt(6 / (1 * 9 + 32 * 9))  # glorot-uniform over the receptive field, as Keras
    assert bound * 0.9 < conv.weight.abs().max() <= bound and not conv.bias.any()
    cats_dogs = ConvNet([3, 150, 150], [32, 64, 128, 128], 1, hidden=[512], dropout=0.5)
    assert sum(p.numel() for p in cats_dogs.parameters()) == 3_453_121, "book 5.2's model.summary()"


def test_channels_last_gives_the_same_network_function():
    from dlwp.model.convnet import ConvNet

    torch.manual_seed(0)
    nchw = SupervisedTask(ConvNet([1, 12, 12], [4, 8], 3, hidden=[8]), seed=0, problem="multiclass")
    nhwc = SupervisedTask(ConvNet([1, 12, 12], [4, 8], 3, hidden=[8]), seed=0, problem="multiclass")
    nhwc.network.load_state_dict(nchw.network.state_dict())
    nhwc.use_channels_last()
    assert nhwc.network.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(5, 1, 12, 12)
    assert torch.allclose(nchw(x), nhwc(x), atol=1e-6)


def test_compiled_network_trains_as_eager_and_its_checkpoint_loads_without_compiling(tmp_path):
    """`trainer.compile`: inductor's kernels give the eager run's metrics up to float rounding, and
    the checkpoint keeps the eager module's keys, so an eager `dlwp eval` reads it."""
    args = ("train", "seed=0", "trainer.max_epochs=4")
    dlwp(*args, runs=tmp_path / "eager")
    dlwp(*args, "trainer.compile=default", runs=tmp_path / "compiled")
    (eager,), (compiled,) = run_dirs(tmp_path / "eager"), run_dirs(tmp_path / "compiled")
    assert "compile: default" in (compiled / "config.yaml").read_text()
    rows_e, rows_c = metric_rows(eager), metric_rows(compiled)
    assert rows_c[-1]["train/loss"] < rows_c[0]["train/loss"] / 2, "the compiled network must learn"
    for e, c in zip(rows_e, rows_c, strict=True):
        assert c["train/loss"] == pytest.approx(e["train/loss"], rel=1e-3)
        assert c["val/acc"] == pytest.approx(e["val/acc"], abs=0.006)  # one of 180 images may flip
    ckpt = torch.load(compiled / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert not any("_orig_mod" in key for key in ckpt["state_dict"]), "keys must be the eager module's"
    dlwp("eval", f"ckpt_path={compiled / 'checkpoints' / 'last.ckpt'}", runs=tmp_path / "eval")
    (eval_dir,) = (tmp_path / "eval" / "eval").iterdir()
    assert record(eval_dir)["metrics"]["final"]["test/acc"] == record(compiled)["metrics"]["final"]["test/acc"]
    typo = dlwp("train", "trainer.compile=fast", runs=tmp_path / "typo", check=False)
    assert typo.returncode != 0 and "reduce_overhead" in typo.stderr and "Traceback" not in typo.stderr


def test_denormal_floats_are_flushed_by_default_and_kept_on_request():
    """RMSprop states of dead units decay into the slow denormal range unless flushed (as in TF)."""
    from dlwp.config.schema import TrainerConfig
    from dlwp.trainer import flush_denormals

    assert TrainerConfig().flush_denormal
    tiny = torch.tensor([1e-30])
    try:
        flush_denormals(True)
        assert (tiny * 1e-10).item() == 0.0
        flush_denormals(False)
        assert 0.0 < (tiny * 1e-10).item() < 1.2e-38
    finally:
        flush_denormals(False)


# -- optimisers ----------------------------------------------------------------------------------


def fit(task, batches, epochs: int = 1, **trainer_args):
    """Train `task` on in-memory batches with a real Lightning Trainer (CPU, no logging)."""
    import lightning as L

    from dlwp.trainer import keep_fresh_memory_unfilled

    class Data(L.LightningDataModule):
        def train_dataloader(self):
            return batches

    trainer = L.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                        use_distributed_sampler=False, **trainer_args)  # fmt: skip
    keep_fresh_memory_unfilled()
    trainer.fit(task, datamodule=Data())
    return trainer


def data(n: int = 64, features: int = 5):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=gen)
    return x, (x.sum(1) > 0).float()


def test_frozen_parameters_are_not_trained_nor_optimised():
    task = SupervisedTask(DenseNet(5, [8], 1), seed=0, problem="binary", freeze=["net.0.*"], unfreeze=["net.0.bias"])
    before = {k: v.clone() for k, v in task.network.state_dict().items()}
    fit(task, TensorBatches(data(), 16))
    after = task.network.state_dict()
    assert torch.equal(before["net.0.weight"], after["net.0.weight"]), "a frozen kernel stays as it was"
    assert not torch.equal(before["net.0.bias"], after["net.0.bias"]), "unfreeze takes it back"
    assert not torch.equal(before["net.2.weight"], after["net.2.weight"])
    optimised = {id(p) for g in task.slots["main"].optimizer.param_groups for p in g["params"]}
    assert id(task.network.net[0].weight) not in optimised and task.frozen == ["net.0.weight"]
    with pytest.raises(ConfigError, match=r"'base\.\*' matches no parameter"):
        SupervisedTask(DenseNet(5, [8], 1), seed=0, problem="binary", freeze=["base.*"])


def test_parameter_groups_get_their_own_learning_rates():
    optimizer = {"name": "sgd", "lr": 0.1, "param_groups": [{"params": "net.0.*", "lr": 0.001}]}
    task = SupervisedTask(DenseNet(5, [8], 1), seed=0, problem="binary", optimizer=optimizer)
    fit(task, TensorBatches(data(), 16), max_steps=1)
    groups = task.slots["main"].optimizer.param_groups
    assert sorted(g["lr"] for g in groups) == [0.001, 0.1]
    small = next(g for g in groups if g["lr"] == 0.001)
    assert {id(p) for p in small["params"]} == {id(p) for p in task.network.net[0].parameters()}


def test_keras_decay_schedule_and_plateau():
    optimizer = {"name": "sgd", "lr": 0.1, "schedule": {"name": "keras_decay", "decay": 0.5}}
    task = SupervisedTask(DenseNet(5, [8], 1), seed=0, problem="binary", optimizer=optimizer)
    fit(task, TensorBatches(data(), 16), epochs=2)  # 8 optimiser steps
    assert task.slots["main"].optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / (1 + 0.5 * 8))
    plateau = {"name": "sgd", "lr": 0.1, "schedule": {"name": "plateau", "monitor": "train/loss", "patience": 0,
                                                       "factor": 0.5, "mode": "max"}}  # fmt: skip
    task = SupervisedTask(DenseNet(5, [8], 1), seed=0, problem="binary", optimizer=plateau)
    fit(task, TensorBatches(data(), 16), epochs=3)  # the loss falls: "max" mode sees no improvement
    assert task.slots["main"].optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


class TwoOptimisers(SupervisedTask):
    """A task with two named optimisers (as a GAN has), one per layer."""

    def optimizer_specs(self):
        named = list(self.network.named_parameters())
        return {"main": ([p for p in named if p[0].startswith("net.0")], {"name": "sgd", "lr": 0.1}),
                "second": ([p for p in named if not p[0].startswith("net.0")], {"name": "sgd", "lr": 0.0})}  # fmt: skip

    def training_step(self, batch, batch_idx):
        loss = self._step("train", batch, batch_idx)
        self.optimise(self.slots["main"], loss)
        self.optimise(self.slots["second"], self._step("train", batch, batch_idx))


def test_several_named_optimisers_each_step_their_own_parameters():
    task = TwoOptimisers(DenseNet(5, [8], 1), seed=0, problem="binary")
    before = {k: v.clone() for k, v in task.network.state_dict().items()}
    trainer = fit(task, TensorBatches(data(), 16))
    after = task.network.state_dict()
    assert list(task.slots) == ["main", "second"]
    assert not torch.equal(before["net.0.weight"], after["net.0.weight"])
    assert torch.equal(before["net.2.weight"], after["net.2.weight"]), "lr 0: the second optimiser's own layer"
    assert trainer.global_step == 8, "Lightning counts every optimiser step (4 batches x 2)"


def test_the_backward_of_a_bf16_mixed_step_runs_outside_autocast():
    """Lightning runs a manual-optimisation step inside autocast; a backward there is autocast again,
    a cast around each of its kernels (x0.5 on the Jena GRU's many small ones)."""
    task = SupervisedTask(DenseNet(5, [8], 1), seed=0, problem="binary")
    seen: dict[str, list[bool]] = {"forward": [], "backward": []}
    task.network.register_forward_hook(lambda *_: seen["forward"].append(torch.is_autocast_enabled("cpu")))
    for p in task.network.parameters():
        p.register_hook(lambda grad: seen["backward"].append(torch.is_autocast_enabled("cpu")))
    fit(task, TensorBatches(data(), 16), precision="bf16-mixed")
    assert seen["forward"] and all(seen["forward"]), "the forward ran under bf16 autocast"
    assert seen["backward"] and not any(seen["backward"])


def test_gradient_accumulation_equals_the_larger_batch():
    x, y = data(32)
    one = SupervisedTask(DenseNet(5, [8], 1), seed=0, problem="binary", optimizer={"name": "sgd", "lr": 0.5})
    two = SupervisedTask(DenseNet(5, [8], 1), seed=0, problem="binary", optimizer={"name": "sgd", "lr": 0.5})
    two.network.load_state_dict(one.network.state_dict())
    two.accumulate = 2
    fit(one, TensorBatches((x, y), 32))
    fit(two, TensorBatches((x, y), 16))
    for a, b in zip(one.network.parameters(), two.network.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_grouped_batches_train_exactly_as_ungrouped_ones():
    """`data.batches_per_call` only changes how often Lightning's loop runs: same steps, same weights,
    same epoch metrics. The task's per-fit optimiser lookup is redone when a module is fit again."""
    x, y = data(40)
    tasks = [SupervisedTask(DenseNet(5, [8], 1), seed=0, problem="binary") for _ in range(2)]
    tasks[1].network.load_state_dict(tasks[0].network.state_dict())
    ones = [TensorBatches((x, y), 1, shuffle=True, seed=3) for _ in range(2)]
    trainers = [fit(tasks[0], ones[0], epochs=2), fit(tasks[1], GroupedBatches(ones[1], 16), epochs=2)]
    assert [t.global_step for t in trainers] == [80, 80], "one optimiser step per batch, grouped or not"
    for a, b in zip(tasks[0].network.parameters(), tasks[1].network.parameters(), strict=True):
        assert torch.equal(a, b)
    assert trainers[0].callback_metrics["train/loss"] == trainers[1].callback_metrics["train/loss"]
    assert not tasks[1]._wrapped_optimizers, "the lookup is dropped when a fit ends"
    again = fit(tasks[1], TensorBatches((x, y), 8), epochs=1)
    assert again.global_step == 5 and not tasks[1]._wrapped_optimizers


# -- CLI: multi-output runs, limits, errors, records ---------------------------------------------


def test_digits_multi_output_learns_every_head(tmp_path):
    dlwp("train", "task=digits_multi_output", "trainer.max_epochs=8", "task.monitor=val/digit/acc",
         "task.monitor_mode=max", runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "digits_multi_output")
    rec = record(run_dir)
    final, base = rec["metrics"]["final"], rec["baselines"]
    assert final["test/digit/acc"] > base["digit/majority_acc"] + 0.5
    assert final["test/odd/acc"] > base["odd/majority_acc"] + 0.3
    assert final["test/value/mae"] < 0.75 * base["value/mean_target_mae"]
    rows = metric_rows(run_dir)
    assert {"val/digit/acc", "val/odd/loss", "val/value/mae", "val/loss"} <= set(rows[0])
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert rec["metrics"]["best"]["val/digit/acc"]["value"] == max(r["val/digit/acc"] for r in rows)
    dlwp("report", str(run_dir))
    assert {"loss.png", "digit_acc.png", "odd_loss.png", "value_mae.png"} <= {
        p.name for p in (run_dir / "report").iterdir()
    }
    dlwp("eval", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", runs=tmp_path)  # the weights tested
    (eval_dir,) = run_dirs(tmp_path, "eval")
    evaluated = record(eval_dir)["metrics"]["final"]
    for key in ("test/digit/acc", "test/odd/acc", "test/value/mae", "test/loss"):
        assert evaluated[key] == pytest.approx(final[key], abs=1e-6), key


def test_bad_multi_output_configs_stop_at_start_up_naming_the_key(tmp_path):
    """Through the CLI once (exit 2, one line, no traceback), the other cases in process."""
    from dlwp.train import train
    from test_config import compose_train

    proc = dlwp("train", "task=digits_multi_output", "task.outputs.odd.loss_weight=-1", runs=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "task.outputs.odd.loss_weight=-1.0: a loss weight must be >= 0" in proc.stderr
    cases = [
        (["+task.outputs.colour={problem: binary}"], "task.outputs.colour: the network has no output named 'colour'"),
        (["data.targets=[digit,value]"], "task.outputs.odd: the batch has no target named 'odd'"),
        (["task.monitor=val/colour/acc"], "task.monitor=val/colour/acc is not a metric this task logs"),
    ]
    for overrides, message in cases:
        cfg = compose_train("task=digits_multi_output", *overrides, f"paths.runs_dir={tmp_path}")
        with pytest.raises(ConfigError) as err:
            train(cfg)
        assert message in str(err.value)


def test_max_steps_stops_training(tmp_path):
    dlwp("train", "trainer.max_steps=5", "trainer.max_epochs=20", "data.batches_per_call=1", runs=tmp_path)
    (run_dir,) = run_dirs(tmp_path)
    rec = record(run_dir)
    assert rec["status"] == "completed" and rec["epochs_done"] == 1, "12 batches an epoch: stopped inside the first"


def test_init_from_starts_from_saved_weights_and_resume_is_distinct(tmp_path):
    dlwp("train", "trainer.max_epochs=3", runs=tmp_path)
    (source,) = run_dirs(tmp_path)
    dlwp("train", f"init_from={source}", "trainer.max_epochs=1", runs=tmp_path)
    started = run_dirs(tmp_path)[-1]
    rec = record(started)
    assert rec["init_from"]["loaded"] == 4 and rec["init_from"]["kept_initial"] == []
    first = metric_rows(started)[0]
    scratch = metric_rows(source)[0]
    assert first["train/loss"] < scratch["train/loss"], "started from trained weights, the first epoch is better"
    proc = dlwp("train", f"init_from={source}", f"ckpt_path={source}", runs=tmp_path, check=False, timeout=120)
    assert proc.returncode == 2 and "give one of them" in proc.stderr


def test_file_hashes_are_cached_by_path_size_and_times(tmp_path, monkeypatch):
    from dlwp import record as rec

    monkeypatch.setenv("DLWP_CACHE_DIR", str(tmp_path / "cache"))
    files = [tmp_path / f"f{i}.bin" for i in range(3)]
    for i, f in enumerate(files):
        f.write_bytes(bytes([i]) * 1000)
    hashed = []
    real = rec.sha256_file
    monkeypatch.setattr(rec, "sha256_file", lambda p: hashed.append(p) or real(p))
    first = rec.file_identities(files)
    again = rec.file_identities(files)
    assert len(hashed) == 3 and first == again, "the second run hashes nothing"
    files[1].write_bytes(b"changed")
    changed = rec.file_identities(files)
    assert len(hashed) == 4 and changed[1]["sha256"] == real(files[1])
    files[2].unlink()  # a temporary data dir's file: its entry goes at the next rewrite
    files[0].write_bytes(b"new")
    rec.file_identities(files[:2])
    cached = json.loads(rec.hash_cache_file().read_text())
    assert sorted(cached) == sorted(str(f.resolve()) for f in files[:2])


# -- streaming data ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_images(tmp_path_factory) -> Path:
    """scikit-learn's digits written as PNG files in class folders: train / validation / test."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digit_images")
    digits = load_digits()
    images = (digits.images * 255 / 16).astype(np.uint8)
    splits = {"train": range(0, 1000), "validation": range(1000, 1300), "test": range(1300, 1600)}
    for split, rows in splits.items():
        for i in rows:
            folder = root / split / f"d{digits.target[i]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(folder / f"{i:04d}.png")
    return root


def image_module(root: Path, **kwargs):
    from dlwp.data.images import ImageFolderDataModule

    args = {"color_mode": "grayscale", "batch_size": 64, "shift": 0.25, "seed": 3} | kwargs
    dm = ImageFolderDataModule(root=str(root), **args)
    dm.setup()
    return dm


def test_image_folder_reads_classes_in_order_and_augments_training_only(digit_images):
    dm = image_module(digit_images)
    assert dm.sizes() == {"train": 1000, "val": 300, "test": 300}
    assert dm.load()["train"].classes == [f"d{i}" for i in range(10)]
    x, y = next(iter(dm.val_dataloader()))
    plain = image_module(digit_images, shift=0.0)
    x0, y0 = next(iter(plain.val_dataloader()))
    assert torch.equal(x, x0) and torch.equal(y, y0), "validation samples are never augmented"
    train, plain_train = next(iter(dm.train_dataloader())), next(iter(plain.train_dataloader()))
    assert torch.equal(train[1], plain_train[1]) and not torch.equal(train[0], plain_train[0])
    assert x.shape == (300, 1, 8, 8) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_streaming_samples_are_seeded_by_seed_epoch_and_index_whatever_the_workers(digit_images):
    def epoch_batches(workers: int, epoch: int):
        loader = image_module(digit_images, num_workers=workers).train_dataloader()
        loader.batch_sampler.sampler.set_epoch(epoch)
        return [b for b, _ in zip(loader, range(3), strict=False)]

    in_process, with_workers = epoch_batches(0, 1), epoch_batches(2, 1)
    for (xa, ya), (xb, yb) in zip(in_process, with_workers, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(epoch_batches(0, 2)[0][0], in_process[0][0]), "another epoch, other draws"


def test_a_streaming_run_with_dropout_learns_the_same_with_and_without_workers(digit_images, tmp_path):
    """The loaders must not draw from torch's global generator, which drives dropout: a DataLoader
    draws its workers' base seed from it once per epoch without workers but once per fit with
    persistent workers, so from the second epoch on the dropout masks, and the results, differed."""
    args = ["data=image_folder", "data.color_mode=grayscale", "data.val_size=0", "data.shift=0.25",
            f"data.root={digit_images}", "data.batch_size=64", "model.dropout=0.5", "trainer.max_epochs=3",
            "test=false"]  # fmt: skip
    rows = {}
    for workers in (0, 2):
        dlwp("train", *args, f"data.num_workers={workers}", runs=tmp_path / str(workers))
        (run,) = run_dirs(tmp_path / str(workers))
        rows[workers] = [{k: v for k, v in r.items() if not k.startswith("time/")} for r in metric_rows(run)]
    assert len(rows[0]) == 3 and rows[0] == rows[2]


STREAMING = ("data=image_folder", "data.color_mode=grayscale", "data.val_size=0", "data.shift=0.25",
             "data.num_workers=2", "data.batch_size=64", "task.monitor=val/loss")  # fmt: skip


def test_streaming_run_learns_and_a_killed_run_resumes_to_the_same_result(digit_images, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    args = [*STREAMING, f"data.root={digit_images}", "trainer.max_epochs=4"]
    dlwp("train", *args, runs=tmp_path / "whole")
    (whole,) = run_dirs(tmp_path / "whole")
    rec = record(whole)
    assert rec["metrics"]["final"]["test/acc"] > rec["baselines"]["majority_acc"] + 0.5
    assert rec["data"]["files"]["count"] == 1600 and (whole / "data.sha256").is_file()
    runs = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "dlwp.cli",
        "train",
        *args,
        f"paths.runs_dir={runs}",
        "trainer.enable_progress_bar=false",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            dirs = run_dirs(runs)
            if dirs and (dirs[0] / "run.json").is_file() and record(dirs[0]).get("epochs_done", 0) >= 2:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    (killed,) = run_dirs(runs)
    assert record(killed)["status"] == "running" and record(killed)["epochs_done"] < 4
    dlwp("train", *args, f"ckpt_path={killed}", runs=runs)
    resumed = run_dirs(runs)[-1]
    assert metric_rows(resumed) == metric_rows(whole)
    assert record(resumed)["metrics"]["final"]["test/acc"] == rec["metrics"]["final"]["test/acc"]


# -- data on first use, your own project ---------------------------------------------------------


def test_missing_data_with_download_off_lists_the_ways_to_get_it(tmp_path):
    proc = dlwp("train", "task=mnist_dense", f"paths.data_dir={tmp_path / 'data'}", "data.download=false",
                runs=tmp_path, check=False, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "dlwp data fetch mnist" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_data_is_fetched_on_first_use_from_the_mirror(tmp_path):
    from conftest import MIRROR

    if not (MIRROR / "mnist" / "mnist.npz").is_file():
        pytest.skip(f"real MNIST not available at {MIRROR}")
    data_dir = tmp_path / "data"
    proc = dlwp("train", "task=mnist_dense", f"paths.data_dir={data_dir}", "data.subset=500", "trainer.max_epochs=1",
                runs=tmp_path, env={"DLWP_DATA_MIRROR": str(MIRROR)})  # fmt: skip
    assert "mnist is not in" in proc.stderr and (data_dir / "mnist" / "mnist.npz").is_file()
    (run_dir,) = run_dirs(tmp_path, "mnist_dense")
    assert record(run_dir)["data"]["files"][0]["dataset"] == "mnist"


def test_a_project_of_ones_own_adds_a_task_without_editing_dlwp(tmp_path):
    """A package outside src/dlwp with its own conf/: a data module, a network and a task."""
    project = tmp_path / "myproject"
    (project / "src" / "myproject").mkdir(parents=True)
    (project / "src" / "myproject" / "__init__.py").write_text("")
    (project / "src" / "myproject" / "parity.py").write_text(
        textwrap.dedent('''
        import torch
        from torch import nn
        from dlwp.data.base import InMemoryDataModule

        class ParityData(InMemoryDataModule):
            """Is the number of ones in 8 bits odd? All 256 patterns, twice."""
            def __init__(self, repeats: int = 8, **kwargs):
                super().__init__(**kwargs)
                self.repeats = repeats
            def files(self):
                return []
            def load(self):
                x = ((torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1).float()
                y = (x.sum(1) % 2).float()
                return {"train": (x.repeat(self.repeats, 1), y.repeat(self.repeats)), "test": (x, y)}

        class Mlp(nn.Module):
            def __init__(self, width: int = 64):
                super().__init__()
                self.net = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 1))
            def forward(self, x):
                return self.net(x)
    ''')
    )
    conf = project / "conf"
    for group in ("task", "data", "model"):
        (conf / group).mkdir(parents=True)
    (conf / "data" / "parity.yaml").write_text(
        "defaults: [_in_memory, _self_]\n_target_: myproject.parity.ParityData\nrepeats: 8\n"
    )
    (conf / "model" / "mlp.yaml").write_text("_target_: myproject.parity.Mlp\nwidth: 64\n")
    (conf / "task" / "parity.yaml").write_text(
        textwrap.dedent("""
        # @package _global_
        defaults:
          - override /data: parity
          - override /model: mlp
        task: {name: parity, section: "-", title: 8-bit parity, dataset: generated, problem: binary,
               monitor: train/loss, optimizer: {name: adam, lr: 0.01}}
        data: {batch_size: 64}
        trainer: {max_epochs: 40}
    """)
    )
    env = {"DLWP_CONFIG_PATH": str(conf), "PYTHONPATH": str(project / "src")}
    listed = dlwp("tasks", env=env)
    assert "parity" in listed.stdout and "mnist_convnet" in listed.stdout
    dlwp("train", "task=parity", runs=tmp_path / "runs", env=env)
    (run_dir,) = run_dirs(tmp_path / "runs", "parity")
    final = record(run_dir)["metrics"]["final"]
    assert final["test/acc"] > 0.9, final
    dlwp("eval", f"ckpt_path={run_dir}", runs=tmp_path / "runs", env=env)
    (eval_dir,) = run_dirs(tmp_path / "runs", "eval")
    assert record(eval_dir)["metrics"]["final"]["test/acc"] > 0.9
    assert json.loads((run_dir / "run.json").read_text())["task"] == "parity"
