"""Tracking and sweeps through the real CLI: W&B offline, Optuna studies on disk, sweep summaries."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
import yaml

from conftest import dlwp, record, run_dirs
from wandb_records import summarize

QUIET_WANDB = {"WANDB_API_KEY": None, "WANDB_MODE": None, "WANDB_BASE_URL": None}  # no account, no network


def wandb_log(run_dir: Path) -> Path:
    (log,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    return log


def test_wandb_offline_run_logs_config_metrics_checkpoint(tmp_path):
    dlwp("train", "logger=wandb", "trainer.max_epochs=3", runs=tmp_path, env=QUIET_WANDB)
    (run_dir,) = run_dirs(tmp_path)
    rec = record(run_dir)
    assert rec["wandb"]["mode"] == "offline" and rec["wandb"]["status"] == "finished"
    logged = summarize(wandb_log(run_dir))
    assert logged["run"]["group"] == "digits_dense" and "book-2.1" in logged["run"]["tags"]
    assert logged["config"]["task"]["name"] == "digits_dense"
    assert logged["config"]["record"]["git_commit"] == rec["git"]["commit"]
    epochs = [h for h in logged["history"] if "val/loss" in h]
    assert len(epochs) == 3, "one history row of validation metrics per epoch"
    assert logged["summary"]["test/acc"] == pytest.approx(rec["metrics"]["final"]["test/acc"], abs=1e-6)
    assert "model" in logged["artifacts"] and logged["exit"] == 0
    assert (run_dir / "metrics.csv").exists(), "the local CSV record stays on alongside W&B"


def test_wandb_unreachable_server_does_not_block_or_break_the_run(tmp_path):
    t0 = time.time()
    dlwp("train", "logger=wandb", "logger.wandb.mode=online", "logger.wandb.init_timeout=8", "trainer.max_epochs=2",
         runs=tmp_path, env={"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"})  # fmt: skip
    (run_dir,) = run_dirs(tmp_path)
    rec = record(run_dir)
    assert rec["status"] == "completed" and rec["wandb"]["status"] == "failed"
    assert (run_dir / "metrics.csv").exists() and (run_dir / "checkpoints" / "best.ckpt").exists()
    assert time.time() - t0 < 120


def test_multirun_with_wandb_is_one_group_with_one_finished_run_per_job(tmp_path):
    dlwp("train", "-m", "logger=wandb", "seed=0,1", "trainer.max_epochs=2", runs=tmp_path, env=QUIET_WANDB)
    (sweep,) = (tmp_path / "multirun").iterdir()
    logs = [summarize(wandb_log(sweep / job)) for job in ("0", "1")]
    assert {log["run"]["group"] for log in logs} == {f"sweep-{sweep.name}"}
    assert all(log["exit"] == 0 and "sweep" in log["run"]["tags"] for log in logs)
    assert [log["config"]["seed"] for log in logs] == [0, 1]
    rows = list(csv.DictReader((sweep / "summary.csv").read_text().splitlines()))
    assert [r["job"] for r in rows] == ["0", "1"] and all(r["status"] == "completed" for r in rows)
    assert all(Path(r["best_checkpoint"]).is_file() and float(r["test/acc"]) > 0.5 for r in rows)


def test_optuna_sweep_persists_resumes_and_survives_a_failed_trial(tmp_path):
    space = ["hydra/sweeper=optuna", "hydra.sweeper.seed=0", "trainer.max_epochs=2",
             "task.optimizer.lr=tag(log, interval(1e-4, 1e-2))"]  # fmt: skip
    dlwp("train", "-m", *space, "hydra.sweeper.n_trials=3", runs=tmp_path)
    (sweep,) = (tmp_path / "multirun").iterdir()
    assert (sweep / "optuna.db").is_file()
    assert yaml.safe_load((sweep / "optuna_results.yaml").read_text())["trials"] == 3
    # resume the same study for 2 more trials; the second invocation's jobs get new directories
    dlwp("train", "-m", *space, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}", runs=tmp_path)
    results = yaml.safe_load((sweep / "optuna_results.yaml").read_text())
    assert results["trials"] == 5 and results["complete"] == 5
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name != "report") == ["0", "1", "2", "3", "4"]
    assert results["best_value"] == min(record(sweep / j)["metrics"]["best"]["val/loss"]["value"] for j in "01234")
    # a trial that fails (here: an impossible validation split) is recorded as failed; the sweep goes on
    dlwp("train", "-m", *space, "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={sweep}", "data.val_size=100000",
         runs=tmp_path)  # fmt: skip
    results = yaml.safe_load((sweep / "optuna_results.yaml").read_text())
    assert results["trials"] == 6 and results["complete"] == 5
    rows = {r["job"]: r for r in csv.DictReader((sweep / "summary.csv").read_text().splitlines())}
    assert rows["5"]["status"] == "failed" and len(rows) == 6

    # the sweep's 2 best checkpoints as an ensemble, then a report of the sweep
    dlwp("ensemble", f"sweep={sweep}", "top_k=2", runs=tmp_path)
    (ens_dir,) = (tmp_path / "ensemble").iterdir()
    ens = record(ens_dir)
    best_two = sorted((r for r in rows.values() if r["status"] == "completed"), key=lambda r: float(r["objective"]))[:2]
    assert [m["checkpoint"] for m in ens["members"]] == [r["best_checkpoint"] for r in best_two]
    assert ens["status"] == "completed" and 0.3 < ens["metrics"]["final"]["test/acc"] <= 1.0
    dlwp("report", str(sweep))
    assert (sweep / "report" / "summary.md").is_file() and (sweep / "report" / "loss.png").is_file()


def test_a_diverging_job_fails_with_a_clear_error_and_the_sweep_goes_on(tmp_path):
    """A NaN loss ends that job at the epoch it appears (status failed, the reason in run.json and
    the summary); the other jobs of the sweep run and complete."""
    proc = dlwp("train", "-m", "task.optimizer.lr=1e30,0.001", "trainer.max_epochs=3", runs=tmp_path)
    assert "train/loss is nan at epoch 1: the optimisation diverged" in proc.stderr
    (sweep,) = (tmp_path / "multirun").iterdir()
    rows = {r["job"]: r for r in csv.DictReader((sweep / "summary.csv").read_text().splitlines())}
    assert (rows["0"]["status"], rows["1"]["status"]) == ("failed", "completed")
    diverged = record(sweep / "0")
    assert "TrainingDivergedError" in diverged["error"] and diverged["epochs_done"] <= 1
    assert record(sweep / "1")["epochs_done"] == 3


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    dlwp("train", "-m", "seed=0,1,2", "trainer.max_epochs=5", runs=runs)
    (sweep,) = (runs / "multirun").iterdir()
    return sweep


def test_ensemble_of_identical_checkpoints_equals_the_single_model(three_seeds, tmp_path):
    job = three_seeds / "0"
    dlwp("ensemble", f"ckpt_paths=[{job},{job}]", runs=tmp_path)
    dlwp("eval", f"ckpt_path={job}", runs=tmp_path)
    (ens_dir,), (eval_dir,) = (tmp_path / "ensemble").iterdir(), (tmp_path / "eval").iterdir()
    ens, single = record(ens_dir)["metrics"]["final"], record(eval_dir)["metrics"]["final"]
    assert ens["test/acc"] == pytest.approx(single["test/acc"], abs=1e-7)
    assert ens["test/loss"] == pytest.approx(single["test/loss"], rel=1e-4)


def test_weighted_ensemble_of_three_seeds_reports_every_member(three_seeds, tmp_path):
    jobs = [three_seeds / j for j in "012"]
    dlwp("ensemble", f"ckpt_paths=[{','.join(map(str, jobs))}]", "weights=[2,1,1]", runs=tmp_path)
    (ens_dir,) = (tmp_path / "ensemble").iterdir()
    ens = record(ens_dir)
    assert [m["weight"] for m in ens["members"]] == [0.5, 0.25, 0.25]
    member_accs = [m["test/acc"] for m in ens["members"]]
    assert len(set(member_accs)) > 1, "differently seeded members differ"
    assert ens["metrics"]["final"]["test/acc"] >= min(member_accs)


def test_ensemble_refuses_checkpoints_of_another_task(three_seeds, tmp_path):
    dlwp("train", "task=mnist_dense", "data.source=synthetic", "data.subset=300", "trainer.max_epochs=1",
         runs=tmp_path)  # fmt: skip
    (other,) = run_dirs(tmp_path, "mnist_dense")
    proc = dlwp("ensemble", f"ckpt_paths=[{three_seeds / '0'},{other}]", runs=tmp_path, check=False)
    assert proc.returncode == 2 and "checkpoint of task 'mnist_dense', not 'digits_dense'" in proc.stderr
    assert "Traceback" not in proc.stderr


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tensorboard_serves_a_finished_runs_scalars_histograms_and_pictures(tmp_path):
    """Book 7.2.2 as a user sees it: TensorBoard started against a finished run answers, through its
    HTTP data API, with the epoch metrics the run recorded, weight and activation histograms, and
    the run's augmentation figure."""
    import json
    import subprocess
    import sys
    import urllib.request

    dlwp("train", "task=cats_dogs_augmented", "data.source=synthetic", "data.image_size=[48,48]",
         "model.input_shape=[3,48,48]", "model.channels=[8,16]", "model.hidden=[16]", "data.steps_per_epoch=null",
         "data.num_workers=0", "trainer.max_epochs=2", "logger=tensorboard", "callbacks.histograms.enabled=true",
         runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "cats_dogs_augmented")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(run_dir / "tensorboard"),
                               "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def get(path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return json.loads(response.read())

    try:
        deadline, tags = time.time() + 90, {}
        while time.time() < deadline:
            try:
                tags = get("/data/plugin/scalars/tags")
                if tags and all("val/acc" in t and "test/acc" in t for t in tags.values()):
                    break
            except OSError:
                pass  # not listening yet
            time.sleep(1)
        assert tags, "TensorBoard never served the run's scalars"
        (run,) = [r for r, t in tags.items() if "val/acc" in t]
        served = [value for _, _, value in get(f"/data/plugin/scalars/scalars?run={run}&tag=val/acc")]
        recorded = [row["val/acc"] for row in csv.DictReader((run_dir / "metrics.csv").open())]
        assert served == pytest.approx([float(v) for v in recorded], abs=1e-6), "one val/acc per epoch, as recorded"
        histograms = get("/data/plugin/histograms/tags")[run]
        assert {t.split("/")[0] for t in histograms} == {"weights", "activations"}
        assert "images/augmentation" in get("/data/plugin/images/tags")[run]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_ensemble_weights_fitted_on_validation_beat_the_plain_average_there(three_seeds, tmp_path):
    """Book 7.3.3 with the weights found on the validation split: non-negative, summing to 1, a
    validation loss no worse than the plain average's; the test table has every member, the plain
    average and the weighted one."""
    jobs = [three_seeds / j for j in "012"]
    dlwp("ensemble", f"ckpt_paths=[{','.join(map(str, jobs))}]", "fit_weights=true", runs=tmp_path)
    (ens_dir,) = (tmp_path / "ensemble").iterdir()
    ens = record(ens_dir)
    weights = ens["weights"]
    assert all(w >= 0 for w in weights) and sum(weights) == pytest.approx(1, abs=1e-5)
    assert weights != pytest.approx([1 / 3] * 3, abs=1e-3), "fitted, not the plain average"
    assert ens["fitted_on"]["fitted_val_loss"] <= ens["fitted_on"]["plain_val_loss"]
    assert set(ens["metrics"]) == {"final", "plain_average"} and len(ens["members"]) == 3
    proc = dlwp("ensemble", f"ckpt_paths=[{jobs[0]},{jobs[1]}]", "fit_weights=true", "weights=[1,1]", runs=tmp_path,
                check=False)  # fmt: skip
    assert proc.returncode == 2 and "give weights=[...] or fit_weights=true" in proc.stderr
