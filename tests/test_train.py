"""`dlwp train` / `dlwp eval` end to end through the real CLI, on the embedded digits task."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest

from conftest import ROOT, dlwp, metric_rows, record, run_dirs

# must never appear in anything a run writes; made up per session, so that it is in no file (a dirty
# checkout's git.diff, which runs record, may show this very line)
SECRET = f"sk-test-{os.urandom(5).hex()}"


def git_head() -> str | None:
    """`git rev-parse HEAD` of the checkout the tests run in; None outside a git checkout."""
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


HEAD_BEFORE_RUN: list[str | None] = []  # HEAD when default_run started (another session may commit meanwhile)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    """`dlwp train` with no arguments (the embedded default), with a credential in the environment
    and a credential-looking override on the command line."""
    runs = tmp_path_factory.mktemp("runs")
    HEAD_BEFORE_RUN.append(git_head())
    dlwp("train", f"+hydra.job.env_set.MY_API_TOKEN={SECRET}", runs=runs, env={"WANDB_API_KEY": SECRET})
    (run_dir,) = run_dirs(runs)
    return run_dir


def test_default_task_learns(default_run):
    rec = record(default_run)
    assert rec["status"] == "completed"
    final = rec["metrics"]["final"]
    assert final["test/acc"] >= 0.95, "the book's network should classify digits far above chance (0.10)"
    rows = metric_rows(default_run)
    assert len(rows) == 20 and [r["epoch"] for r in rows] == list(range(1, 21))
    assert rows[-1]["train/loss"] < rows[0]["train/loss"] / 3, "training loss must fall"
    assert rows[-1]["val/acc"] > rows[0]["val/acc"]


def test_run_record_says_what_made_the_run(default_run):
    rec = record(default_run)
    assert rec["task"] == "digits_dense" and rec["seed"] == 42
    # the tests start `python -m dlwp.cli train ...`: argv[0] is the module's file, then the arguments
    assert Path(rec["command"][0]).name == "cli.py" and rec["command"][1] == "train"
    assert "+hydra.job.env_set.MY_API_TOKEN=<redacted>" in rec["command"]
    git = rec["git"]
    head = git_head()
    if head is None:  # not a git checkout (e.g. an unpacked sdist): the record says it does not know
        assert (git["commit"], git["dirty"]) == (None, None)
    else:
        assert re.fullmatch(r"[0-9a-f]{40}", git["commit"] or ""), git
        assert git["commit"] in {*HEAD_BEFORE_RUN, head}, f"run.json's commit is not this checkout's HEAD {head}"
        assert isinstance(git["dirty"], bool)
        if git["dirty"]:  # what makes a dirty tree reproducible: its diff against the commit, beside the record
            assert git["diff_file"] == "git.diff" and (default_run / "git.diff").read_text().startswith("diff --git")
        else:
            assert "diff_file" not in git and not (default_run / "git.diff").exists()
    for name in ("torch", "lightning", "hydra-core"):
        assert rec["packages"][name] == metadata.version(name)
    assert rec["device"]["accelerator"] == "cpu" and rec["wall_time_s"] > 0
    phases = rec["startup_phases"]  # where the start-up went (dlwp.startup), adding up to startup_s
    assert list(phases) == ["launch", "compose", "import_lightning", "config_and_record", "build", "data",
                            "summary_and_baselines", "loggers_and_trainer", "fit_to_first_step"]  # fmt: skip
    assert min(phases.values()) >= 0 and rec["startup_s"] == pytest.approx(sum(phases.values()), abs=0.02)
    (data_file,) = rec["data"]["files"]
    assert hashlib.sha256(Path(data_file["path"]).read_bytes()).hexdigest() == data_file["sha256"]
    assert rec["data"]["sizes"] == {"train": 1257, "val": 180, "test": 360}
    rows = metric_rows(default_run)  # best: recomputed from the epochs' metrics.csv rows
    best_acc = max(rows, key=lambda r: r["val/acc"])
    assert rec["metrics"]["best"]["val/acc"]["value"] == pytest.approx(best_acc["val/acc"], abs=1e-6)
    assert rec["metrics"]["best"]["val/acc"]["value"] >= rec["metrics"]["final"]["val/acc"]
    best_loss = min(rows, key=lambda r: r["val/loss"])
    assert rec["metrics"]["best"]["val/loss"] == {"value": pytest.approx(best_loss["val/loss"], abs=1e-6),
                                                  "epoch": best_loss["epoch"]}  # fmt: skip
    assert rec["metrics"]["final"] == pytest.approx(rows[-1] | {k: v for k, v in rec["metrics"]["final"].items()
                                                                if k.startswith(("test/", "time/"))})  # fmt: skip
    assert (default_run / "config.yaml").read_text().startswith("task:")
    assert {p.name for p in (default_run / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    # Keras' model.summary(): each layer's output shape and parameters, from a real batch
    summary = (default_run / "model_summary.txt").read_text().splitlines()
    assert [line.split() for line in summary if line.startswith("net.")] == [
        ["net.0", "(Linear)", "[None,", "512]", "33,280"], ["net.1", "(ReLU)", "[None,", "512]", "0"],
        ["net.2", "(Linear)", "[None,", "10]", "5,130"]]  # fmt: skip
    assert "Total params: 38,410" in summary and "Non-trainable params: 0" in summary


def test_no_secret_is_written(default_run):
    assert "<redacted>" in " ".join(record(default_run)["command"])
    for path in default_run.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            assert SECRET.encode() not in data, f"{path} contains the secret"


def test_eval_of_last_checkpoint_reproduces_the_training_test_metric(default_run, tmp_path):
    dlwp("eval", f"ckpt_path={default_run / 'checkpoints' / 'last.ckpt'}", runs=tmp_path)
    (eval_dir,) = (tmp_path / "eval").iterdir()
    evaluated = record(eval_dir)["metrics"]["final"]
    trained = record(default_run)["metrics"]["final"]
    assert evaluated["test/acc"] == trained["test/acc"]
    assert evaluated["test/loss"] == pytest.approx(trained["test/loss"], abs=1e-6)


def test_eval_rejects_bad_checkpoints_clearly(tmp_path):
    missing = dlwp("eval", f"ckpt_path={tmp_path / 'nope.ckpt'}", runs=tmp_path, check=False)
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(os.urandom(2048))
    corrupt = dlwp("eval", f"ckpt_path={garbage}", runs=tmp_path, check=False)
    assert corrupt.returncode == 2 and "not a readable checkpoint" in corrupt.stderr
    assert "Traceback" not in missing.stderr + corrupt.stderr


def test_same_seed_same_metrics_and_seed_zero_honoured(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    dlwp("train", "seed=0", "trainer.max_epochs=4", runs=a)
    dlwp("train", "seed=0", "trainer.max_epochs=4", runs=b)
    (run_a,), (run_b,) = run_dirs(a), run_dirs(b)
    assert record(run_a)["seed"] == 0
    assert metric_rows(run_a) == metric_rows(run_b)
    assert record(run_a)["metrics"]["final"]["test/acc"] == record(run_b)["metrics"]["final"]["test/acc"]
    # a multirun over seeds: one process, one directory per job, seed 0 equal to the runs above
    dlwp("train", "-m", "seed=0,1", "trainer.max_epochs=4", runs=tmp_path / "m")
    (sweep,) = (tmp_path / "m" / "multirun").iterdir()
    jobs = {record(d)["seed"]: d for d in sweep.iterdir() if (d / "run.json").exists()}
    assert set(jobs) == {0, 1}
    assert metric_rows(jobs[0]) == metric_rows(run_a)
    assert metric_rows(jobs[1]) != metric_rows(run_a), "seed=1 must train differently from seed=0"


def test_cpu_threads_sets_torchs_threads_and_the_record_says_so(tmp_path):
    """`trainer.cpu_threads` (bench/threads.py measures it per task): this run's torch threads,
    whatever the machine's default, written to run.json."""
    dlwp("train", "trainer.cpu_threads=3", "trainer.max_epochs=1", runs=tmp_path)  # no machine's default
    (run,) = run_dirs(tmp_path)
    assert record(run)["device"]["torch_threads"] == 3


def test_runs_started_together_never_share_a_directory(tmp_path):
    cmd = [sys.executable, "-m", "dlwp.cli", "train", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
           f"paths.runs_dir={tmp_path}"]  # fmt: skip
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    dirs = run_dirs(tmp_path)
    assert len(dirs) == 2
    assert all(record(d)["status"] == "completed" and record(d)["run_dir"] == str(d) for d in dirs)


def test_killed_run_resumes_to_the_same_result(tmp_path):
    epochs = "trainer.max_epochs=40"
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    dlwp("train", epochs, runs=whole)
    cmd = [sys.executable, "-m", "dlwp.cli", "train", epochs, "trainer.enable_progress_bar=false",
           f"paths.runs_dir={cut}"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        dirs = run_dirs(cut)
        if dirs and (dirs[0] / "metrics.csv").exists() and len(metric_rows(dirs[0])) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed; raise max_epochs"
    (killed,) = run_dirs(cut)
    assert record(killed)["status"] == "running"  # what a hard kill leaves: the record says so
    assert (killed / "checkpoints" / "last.ckpt").exists()

    dlwp("train", epochs, "ckpt_path=last", runs=cut)
    resumed = run_dirs(cut)[-1]
    assert record(resumed)["resumed_from"] == str(killed / "checkpoints" / "last.ckpt")
    (uninterrupted,) = run_dirs(whole)
    assert metric_rows(resumed) == metric_rows(uninterrupted), "history after resume differs"
    assert record(resumed)["metrics"]["final"] == {
        k: v for k, v in record(uninterrupted)["metrics"]["final"].items()
    } | {"time/epoch_s": record(resumed)["metrics"]["final"]["time/epoch_s"]}
    assert (killed / "run.json").exists() and (killed / "checkpoints" / "last.ckpt").exists(), "nothing lost"


def test_resume_from_missing_checkpoint_fails_clearly(tmp_path):
    proc = dlwp("train", "ckpt_path=last", runs=tmp_path, check=False)
    assert proc.returncode == 2
    assert "no run of task 'digits_dense'" in proc.stderr and "Traceback" not in proc.stderr


def test_early_stopping_stops_and_restores_the_best_epochs_weights(tmp_path):
    """Book 7.2.1's EarlyStopping(restore_best_weights): an improvement must exceed min_delta=10, so
    only epoch 1 counts; with patience 2 training stops after epoch 3 and epoch 1's network is put
    back. Validated again, it gives exactly epoch 1's recorded metrics."""
    stop = [
        "callbacks=early_stopping",
        "callbacks.early_stopping.monitor=val/acc",
        "callbacks.early_stopping.min_delta=10",
        "callbacks.early_stopping.patience=2",
        "trainer.max_epochs=10",
    ]
    dlwp("train", *stop, runs=tmp_path)
    (run_dir,) = run_dirs(tmp_path)
    rec, rows = record(run_dir), metric_rows(run_dir)
    assert len(rows) == 3 and rec["early_stopping"]["stopped_epoch"] == 3 and rec["early_stopping"]["best_epoch"] == 1
    assert rows[2]["val/acc"] > rows[0]["val/acc"], "the network had moved on from epoch 1"
    restored = rec["early_stopping"]["restored_val"]
    assert rec["early_stopping"]["restored"] and restored["val/acc"] == pytest.approx(rows[0]["val/acc"], abs=1e-6)
    assert restored["val/loss"] == pytest.approx(rows[0]["val/loss"], rel=1e-5)
    # without restore_best the last epoch's network stays
    dlwp("train", *stop, "callbacks.early_stopping.restore_best=false", runs=tmp_path / "plain")
    (plain,) = run_dirs(tmp_path / "plain")
    stopping = record(plain)["early_stopping"]
    assert stopping["restored"] is False and "restored_val" not in stopping
