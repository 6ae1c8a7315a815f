"""Distributed training (DDP over 2 CPU processes, gloo) through the real CLI; docs/SCALING.md.

DDP re-launches the command it runs in, so every distributed run here is `dlwp train` in a
subprocess of its own session, with a timeout; the whole process group is killed afterwards, so
no rank outlives its test. Small runs: the file takes ~3 minutes on 2 idle cores.

Tolerance of "same result as one process": with `data.batch_size` the global batch, 2 processes
average their gradients over exactly the samples of the single-process step, so the runs differ
only by float summation order (~1e-6 after several epochs) -- except on a last training batch
that does not split evenly over the processes (digits: 1,257 = 9 x 128 + 105 -> 53 + 52). There
DDP's average of the two per-rank means weights the samples 1/106 and 1/104 instead of 1/105,
which moves the losses by up to ~3e-4 over 20 epochs (measured) and can flip a borderline
validation sample. Hence: losses within 1e-3, accuracies within 2 samples of their split, for
the default task; 1e-5 for MNIST (real, and synthetic on purpose) on a subset whose batches all
split evenly.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT, dlwp, metric_rows, record, run_dirs
from dlwp.data.batches import TensorBatches

TIMEOUT = 240  # seconds for one distributed command; they take 15-60 s here
DDP = ("trainer=ddp_cpu", "trainer.devices=2")
RANK0_FILES = {"run.json", "config.yaml", "metrics.csv", "model_summary.txt", "checkpoints", "train.log", "git.diff"}
RANK1_LOG = "train_ddp_process_1.log"  # Hydra's log of the worker Lightning starts: rank 1's only file


def dlwp_ddp(*args: str, runs: Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """`dlwp ARGS` in a new session; on timeout, and in any case afterwards, its whole process
    group (the DDP workers included) is killed."""
    cmd = [sys.executable, "-m", "dlwp.cli", *args, "trainer.enable_progress_bar=false", f"paths.runs_dir={runs}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{' '.join(cmd)} ran over {timeout} s\n--- stderr ---\n{err[-4000:]}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any worker left behind
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n--- stderr ---\n{err[-4000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def assert_close_rows(rows_a, rows_b, loss_tol: float, acc_samples: dict[str, int]) -> None:
    assert [r["epoch"] for r in rows_a] == [r["epoch"] for r in rows_b]
    for a, b in zip(rows_a, rows_b, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if key.endswith("loss"):
                assert a[key] == pytest.approx(b[key], abs=loss_tol), (a["epoch"], key)
            elif key.endswith("acc"):
                n = acc_samples[key.split("/")[0]]
                assert abs(a[key] - b[key]) <= 2 / n + 1e-7, (a["epoch"], key, a[key], b[key])


def assert_same_rows(rows_a, rows_b, tol: float = 1e-6) -> None:
    """Equal histories up to float summation order."""
    assert [sorted(r) for r in rows_a] == [sorted(r) for r in rows_b]
    for a, b in zip(rows_a, rows_b, strict=True):
        assert a == pytest.approx(b, abs=tol), a["epoch"]


def finals(run_dir: Path) -> dict[str, float]:
    return {k: v for k, v in record(run_dir)["metrics"]["final"].items() if k != "time/epoch_s"}


# -- the loader's sharding (in process, fast) ----------------------------------------------------


def rank_batches(n: int, batch: int, world: int, shuffle: bool, short_last: str, epoch: int = 0):
    """Each rank's list of index batches for one epoch."""
    idx = torch.arange(n)
    out = []
    for rank in range(world):
        loader = TensorBatches((idx, idx), batch, shuffle, seed=5, rank=rank, world_size=world, short_last=short_last)
        loader.sampler.set_epoch(epoch)
        out.append([b[0] for b in loader])
    return out


@pytest.mark.parametrize(("n", "batch", "world"), [(1257, 128, 2), (360, 1024, 2), (1000, 96, 3), (129, 128, 2),
                                                   (130, 128, 4), (7, 2, 2), (5, 1024, 4), (1024, 128, 8)])  # fmt: skip
def test_evaluation_shards_cover_every_sample_exactly_once(n, batch, world):
    parts = rank_batches(n, batch, world, shuffle=False, short_last="merge")
    assert len({len(p) for p in parts}) == 1, "every rank runs the same number of steps"
    assert all(len(b) > 0 for p in parts for b in p), "no empty batch"
    seen = torch.cat([b for p in parts for b in p])
    assert sorted(seen.tolist()) == list(range(n)), "no sample dropped, none counted twice (no padding)"


@pytest.mark.parametrize(("n", "batch", "world"), [(1257, 128, 2), (1000, 96, 3), (2000, 128, 2), (129, 128, 2)])
def test_training_ranks_split_the_single_process_batches(n, batch, world):
    single = rank_batches(n, batch, 1, shuffle=True, short_last="drop", epoch=3)[0]
    parts = rank_batches(n, batch, world, shuffle=True, short_last="drop", epoch=3)
    assert len({len(p) for p in parts}) == 1, "every rank runs the same number of steps (DDP would hang)"
    for step, whole in enumerate(single):
        if len(whole) < world:  # the one batch too small to split: dropped by every rank
            assert step == len(single) - 1 and all(len(p) == step for p in parts)
            continue
        together = torch.cat([p[step] for p in parts])
        assert torch.equal(together, whole), "the ranks' parts make up exactly the single-process batch"
        assert max(len(p[step]) for p in parts) - min(len(p[step]) for p in parts) <= 1


def test_one_process_batches_are_unchanged():
    x = torch.arange(1000)
    loader = TensorBatches((x, x), 128, shuffle=True, seed=3)
    loader.sampler.set_epoch(2)
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(3 * 100_003 + 2))
    expected = [order[s : s + 128] for s in range(0, 1000, 128)]
    assert len(loader) == 8 and all(torch.equal(b[0], e) for b, e in zip(loader, expected, strict=True))


def test_global_batch_must_divide_over_the_processes():
    from dlwp.data.digits import DigitsDataModule
    from dlwp.errors import ConfigError

    dm = DigitsDataModule(batch_size=128, batches_per_call=1)
    dm.setup("fit")
    cpu = type("FakeStrategy", (), {"root_device": torch.device("cpu")})()
    dm.trainer = type("FakeTrainer", (), {"global_rank": 1, "world_size": 3, "strategy": cpu})()
    with pytest.raises(ConfigError, match="divisible by the 3 processes"):
        dm.train_dataloader()
    dm.trainer.world_size = 2
    assert (dm.train_dataloader().plan.rank, dm.test_dataloader().plan.world_size) == (1, 2)


# -- the default task: 1 process vs 2, in a Hydra multirun of 2 jobs x 2 processes ---------------


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("single")
    dlwp("train", "trainer.max_epochs=6", runs=runs)
    (run_dir,) = run_dirs(runs)
    return run_dir


@pytest.fixture(scope="module")
def ddp_sweep(tmp_path_factory) -> dict[int, Path]:
    """`dlwp train -m trainer=ddp_cpu trainer.devices=2 trainer.max_epochs=3,6`: two jobs of two
    processes each, by number of epochs. The 6-epoch job is the DDP run the tests below compare
    with one process; the 3-epoch one is where the resume test starts from."""
    runs = tmp_path_factory.mktemp("sweep")
    dlwp_ddp("train", "-m", *DDP, "trainer.max_epochs=3,6", runs=runs)
    assert [p.name for p in runs.iterdir()] == ["multirun"], "no run directory claimed outside the sweep"
    (sweep,) = (runs / "multirun").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"], "one directory per job"
    return {len(metric_rows(job)): job for job in jobs}


@pytest.fixture(scope="module")
def ddp_run(ddp_sweep) -> Path:
    return ddp_sweep[6]


def test_ddp_trains_the_default_task_like_one_process(single_run, ddp_run):
    rec = record(ddp_run)
    assert rec["status"] == "completed"
    assert rec["device"]["world_size"] == 2 and rec["device"]["strategy"] == "DDPStrategy"
    assert rec["data"]["sizes"] == record(single_run)["data"]["sizes"] == {"train": 1257, "val": 180, "test": 360}
    samples = {"train": 1257, "val": 180, "test": 360}
    assert_close_rows(metric_rows(ddp_run), metric_rows(single_run), loss_tol=1e-3, acc_samples=samples)
    final_ddp, final_one = finals(ddp_run), finals(single_run)
    assert_close_rows([final_ddp], [final_one], loss_tol=1e-3, acc_samples=samples)
    assert final_ddp["test/acc"] >= 0.9, "it learns"


def test_ddp_test_metric_equals_single_process_eval_of_its_checkpoint(ddp_run, tmp_path):
    """Each rank tests a disjoint part of the 360 test images and the metric states are summed over
    the ranks: the figure is the one-process evaluation's, not one over a padded or halved set."""
    dlwp("eval", f"ckpt_path={ddp_run / 'checkpoints' / 'last.ckpt'}", runs=tmp_path)
    (eval_dir,) = (tmp_path / "eval").iterdir()
    evaluated, trained = record(eval_dir)["metrics"]["final"], record(ddp_run)["metrics"]["final"]
    assert evaluated["test/acc"] == trained["test/acc"]
    assert evaluated["test/loss"] == pytest.approx(trained["test/loss"], abs=1e-6)  # summation order only


def test_multirun_jobs_train_their_own_config_in_one_directory_each(ddp_sweep):
    for epochs, job in ddp_sweep.items():
        rec = record(job)
        assert rec["status"] == "completed" and rec["run_dir"] == str(job)
        assert rec["device"]["world_size"] == 2
        assert {p.name for p in job.iterdir()} <= RANK0_FILES | {RANK1_LOG}, "rank 1 writes only its log"
        assert {p.name for p in (job / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
        rank1 = (job / RANK1_LOG).read_text()
        pattern = rf"rank 1 of 2: overrides .*trainer.max_epochs={epochs}\b.*config identical to rank 0's"
        assert re.search(pattern, rank1), "rank 1 trained its own job's config"
    # both processes of each job trained that job's config: the 3-epoch job is the 6-epoch one, cut short
    assert_same_rows(metric_rows(ddp_sweep[3]), metric_rows(ddp_sweep[6])[:3])


def test_optuna_trial_processes_share_the_trial_parameters(tmp_path):
    dlwp_ddp("train", "-m", *DDP, "trainer.max_epochs=1", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2",
             "hydra.sweeper.seed=1", "task.optimizer.lr=interval(1e-4,1e-2)", runs=tmp_path)  # fmt: skip
    (sweep,) = (tmp_path / "multirun").iterdir()
    trials = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(trials) == 2 and (sweep / "optuna_results.yaml").is_file()
    lrs = set()
    for trial in trials:
        rec = record(trial)
        assert rec["status"] == "completed"
        (lr,) = [o for o in rec["overrides"] if o.startswith("task.optimizer.lr=")]
        rank1 = (trial / RANK1_LOG).read_text()
        assert lr in rank1 and "config identical to rank 0's" in rank1, "rank 1 trained other parameters"
        assert OmegaConf.load(trial / "config.yaml").task.optimizer.lr == float(lr.split("=")[1])
        lrs.add(lr)
    assert len(lrs) == 2, "the trials tried different learning rates"


def test_resume_under_ddp_continues_as_an_uninterrupted_run(ddp_sweep, tmp_path):
    last = ddp_sweep[3] / "checkpoints" / "last.ckpt"
    proc = dlwp_ddp("train", *DDP, "trainer.max_epochs=6", f"ckpt_path={last}", runs=tmp_path)
    assert proc.stderr.count("dlwp: digits_dense") == 1, "only rank 0 prints the summary"
    (resumed,) = run_dirs(tmp_path)
    assert {p.name for p in resumed.iterdir()} <= RANK0_FILES | {RANK1_LOG}
    assert record(resumed)["resumed_from"] == str(last)
    # the epoch's global batches depend on (seed, epoch) only, each rank's part of them on its rank
    assert_same_rows(metric_rows(resumed), metric_rows(ddp_sweep[6]))
    assert finals(resumed) == pytest.approx(finals(ddp_sweep[6]), abs=1e-6)


# -- MNIST (book 2.1) on a subset whose batches split evenly ---------------------------------------


def _mnist_dense_ddp_matches_one_process(tmp_path: Path, *data: str) -> tuple[dict, dict]:
    # 2,000 = 15 x 128 + 80: every batch, the last included, splits evenly (64 + 64, 40 + 40)
    args = ["train", "task=mnist_dense", "data.subset=2000", "trainer.max_epochs=2", *data]
    dlwp(*args, runs=tmp_path / "one")
    dlwp_ddp(*args, *DDP, runs=tmp_path / "two")
    (one,), (two,) = run_dirs(tmp_path / "one", "mnist_dense"), run_dirs(tmp_path / "two", "mnist_dense")
    assert record(two)["device"]["world_size"] == 2 and record(one)["device"]["world_size"] == 1
    samples = {"train": 2000, "test": 2000}
    assert record(one)["data"]["sizes"] == record(two)["data"]["sizes"] == samples
    assert_close_rows(metric_rows(two), metric_rows(one), loss_tol=1e-5, acc_samples=samples)
    assert finals(two)["test/acc"] == pytest.approx(finals(one)["test/acc"], abs=1.5 / 2000)
    assert finals(two)["test/loss"] == pytest.approx(finals(one)["test/loss"], abs=1e-5)
    assert finals(one)["test/acc"] > 0.8, "it learns"
    return record(one)["data"], record(two)["data"]


def test_mnist_dense_ddp_matches_one_process_on_real_mnist(mnist_data_dir, tmp_path):
    """Real-data test (skips without the mirror): both runs read the mirror's MNIST."""
    for data in _mnist_dense_ddp_matches_one_process(tmp_path, f"paths.data_dir={mnist_data_dir}"):
        assert data["source"] == "real" and [f["file"] for f in data["files"]] == ["mnist/mnist.npz"]


def test_synthetic_mnist_dense_ddp_matches_one_process(tmp_path):
    """Synthetic on purpose (every machine): the evenly split batches' 1e-5 agreement does not depend
    on the pixels, so the data module's synthetic MNIST (same shapes) checks it without the mirror."""
    for data in _mnist_dense_ddp_matches_one_process(tmp_path, "data.source=synthetic"):
        assert data["source"] == "synthetic" and data["files"] == []


# -- SLURM launcher config (no cluster here: compose it and render its sbatch script) --------------


def test_slurm_launcher_composes_into_the_expected_sbatch_script(tmp_path, monkeypatch):
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    from dlwp.config.schema import register
    from dlwp.paths import conf_dir, register_resolvers

    register()
    register_resolvers()
    # resolving the launcher claims a sweep directory and exports it for launcher workers: keep
    # that out of this process's environment (later tests' sweeps must not join it)
    monkeypatch.setenv("DLWP_SWEEP_DIR", "")
    overrides = [
        "hydra/launcher=slurm", "task=mnist_dense", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
        "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30", f"paths.runs_dir={tmp_path}",
    ]  # fmt: skip
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"
    params = dict(launcher.params)
    assert {k: params[k] for k in ("nodes", "tasks_per_node", "gpus_per_node", "partition", "timeout_min")} == {
        "nodes": 2, "tasks_per_node": 4, "gpus_per_node": 4, "partition": "gpu", "timeout_min": 30}  # fmt: skip
    # the sbatch script, built as SlurmLauncher.launch builds its executor (srun: a stand-in)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"),
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))  # fmt: skip
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text("python -m dlwp.cli", "uid")
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu", "--time=30"):
        assert f"#SBATCH {line}\n" in script
    assert [p.name for p in tmp_path.iterdir() if p.name != "bin"] == ["multirun"]  # the sweep dir it would use


# -- the presets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("cpu", {"accelerator": "cpu", "devices": 1, "strategy": "auto"}),
        ("gpu", {"accelerator": "gpu", "devices": 1, "strategy": "auto"}),
        ("ddp", {"accelerator": "gpu", "devices": "auto", "strategy": "ddp", "num_nodes": 1}),
        ("ddp_cpu", {"accelerator": "cpu", "devices": 2, "strategy": "ddp"}),
        ("fsdp", {"accelerator": "gpu", "devices": "auto", "strategy": "fsdp", "precision": "bf16-mixed"}),
    ],
)
def test_trainer_presets_compose(preset, expected):
    from hydra import compose, initialize_config_dir

    from dlwp.config.schema import register
    from dlwp.paths import conf_dir, register_resolvers

    register()
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[f"trainer={preset}", "task=mnist_dense", "trainer.num_nodes=1"])
    assert {k: cfg.trainer[k] for k in expected} == expected
    assert cfg.trainer.max_epochs == 5, "the task still sets the epochs"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_gpu_preset_without_a_gpu_fails_clearly(tmp_path):
    proc = dlwp("train", "trainer=gpu", "trainer.max_epochs=1", runs=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "this trainer cannot run here" in proc.stderr and "accelerator=gpu" in proc.stderr


def test_named_inputs_and_outputs_train_under_ddp_like_one_process(tmp_path):
    """Dict batches (book 7.1.3's named outputs) are split over the ranks like tensors: the
    multi-output task on 2 processes gets one process's per-output metrics."""
    args = ("task=digits_multi_output", "trainer.max_epochs=3")
    dlwp("train", *args, runs=tmp_path / "one")
    dlwp_ddp("train", *args, *DDP, runs=tmp_path / "two")
    (one,), (two,) = (
        run_dirs(tmp_path / "one", "digits_multi_output"),
        run_dirs(tmp_path / "two", "digits_multi_output"),
    )
    assert record(two)["device"]["world_size"] == 2
    samples = {"train": 1257, "val": 180, "test": 360}
    rows_one, rows_two = metric_rows(one), metric_rows(two)
    assert_close_rows(rows_two, rows_one, loss_tol=1e-3, acc_samples=samples)
    for a, b in zip(rows_two, rows_one, strict=True):
        assert a["val/value/mae"] == pytest.approx(b["val/value/mae"], abs=1e-3)
    final_one, final_two = finals(one), finals(two)
    assert_close_rows([final_two], [final_one], loss_tol=1e-3, acc_samples=samples)
    assert {"test/digit/acc", "test/odd/acc", "test/value/mae"} <= set(final_two)
