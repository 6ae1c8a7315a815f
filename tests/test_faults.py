"""Hostile-but-fair runs, as a user meets them through the `dlwp` CLI (docs/RELIABILITY.md).

Each case must end in a non-zero exit status and one clear line on stderr that names the problem
and its fix, with no traceback; nothing already saved may be lost, and nothing may be written
that should not be (a rejected config leaves no run directory; no secret reaches any file).
The data-side cases are in test_faults_data.py.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, dlwp, record, run_dirs
from dlwp.record import status_of

FAST = ["trainer.max_epochs=2"]


def one_error(stderr: str, command: str = "train") -> str:
    """The single `dlwp <command>: error:` line of a failed command (and no traceback)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith(f"dlwp {command}: error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


# -- 1. divergence --------------------------------------------------------------------------------


def test_a_diverged_run_fails_and_its_sweep_job_is_marked_failed(tmp_path):
    """lr=1e9: Keras' clipped loss stays finite (~14 of at most 16.1), so NaN checks never fire;
    the run must still fail, in one line, at the end of the epoch it diverged in."""
    proc = dlwp("train", "task.optimizer.lr=1e9", *FAST, runs=tmp_path, check=False)
    assert proc.returncode == 2
    assert "diverged" in one_error(proc.stderr)
    (run,) = run_dirs(tmp_path)
    rec = record(run)
    assert rec["status"] == "failed" and "TrainingDivergedError" in rec["error"]
    assert not (run / "checkpoints" / "last.ckpt").exists()  # the diverged epoch is never saved

    sweep = dlwp("train", "-m", "task.optimizer.lr=0.001,1e9", *FAST, runs=tmp_path / "sweep", check=False)
    (sweep_dir,) = (tmp_path / "sweep" / "multirun").iterdir()
    rows = {p.parent.name: status_of(json.loads(p.read_text())) for p in sweep_dir.glob("*/run.json")}
    assert rows == {"0": "completed", "1": "failed"}
    assert "failed jobs: 1" in sweep.stdout + sweep.stderr
    first, second = (json.loads((sweep_dir / job / "run.json").read_text()) for job in ("0", "1"))
    # both jobs ran in one process: the second's start-up is its own, not the process's age
    assert "launch" in first["startup_phases"] and "launch" not in second["startup_phases"]
    assert second["startup_s"] == pytest.approx(sum(second["startup_phases"].values()), abs=0.02)
    assert "| 1 | failed |" in (sweep_dir / "summary.md").read_text()


def test_the_divergence_rules():
    """The signs besides a NaN loss: a NaN weight, a loss near the clipped loss's ceiling, a loss
    that has not moved for STUCK_EPOCHS epochs; a slowly learning run trips none of them."""
    import torch
    from torch import nn

    from dlwp.errors import TrainingDivergedError
    from dlwp.task import SupervisedTask
    from dlwp.task.base import STUCK_EPOCHS, check_divergence

    task = SupervisedTask(nn.Linear(4, 3), seed=0, problem="multiclass")
    check_divergence(task, [1.1, 1.0, 0.9999999, 0.9999998], 4)  # learning, slowly
    assert task.loss_ceiling() == pytest.approx(16.118, abs=1e-3)
    with pytest.raises(TrainingDivergedError, match="ceiling"):
        check_divergence(task, [14.09], 1)
    with pytest.raises(TrainingDivergedError, match="not learning"):
        check_divergence(task, [2.0] + [0.7] * STUCK_EPOCHS, 1 + STUCK_EPOCHS)
    check_divergence(task, [0.3] + [1.4715e-06] * STUCK_EPOCHS, 1 + STUCK_EPOCHS)  # converged: learnt, not stuck
    with torch.no_grad():
        task.network.weight[0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="NaN or inf"):
        check_divergence(task, [1.0], 1)
    regression = SupervisedTask(nn.Linear(4, 1), seed=0, problem="regression")
    assert regression.loss_ceiling() is None
    check_divergence(regression, [1e4], 1)  # an unbounded loss has no ceiling


# -- 3. secrets -----------------------------------------------------------------------------------


def test_credentials_reach_no_file_and_not_wandb(tmp_path):
    """A credential in a `hydra.job.env_set` variable and a password inside a URL value: neither
    is in any file of the run (config.yaml, run.json, checkpoints, W&B's offline run and logs),
    nor in the sweep's own files."""
    secret_args = ["+hydra.job.env_set.MY_API_KEY=secret456", "logger.wandb.tags=[postgresql://u:pw789@h/db]"]
    dlwp("train", "logger=wandb", *secret_args, "trainer.max_epochs=1", runs=tmp_path)
    (run,) = run_dirs(tmp_path)
    assert (run / "wandb").is_dir() and (run / "checkpoints" / "best.ckpt").is_file()
    everything = all_bytes(run)
    assert b"secret456" not in everything and b"pw789" not in everything
    assert "<redacted>" in (run / "config.yaml").read_text()
    dlwp("train", "-m", "seed=1", *secret_args, "trainer.max_epochs=1", runs=tmp_path / "sweep")
    sweep_bytes = all_bytes(tmp_path / "sweep")
    assert b"secret456" not in sweep_bytes and b"pw789" not in sweep_bytes


def test_redaction_rules():
    from dlwp.redact import redact_argv, redact_tree

    assert redact_argv(["hydra.sweeper.storage=postgresql://user:pw@host:5432/db", "max_tokens=5"]) == [
        "hydra.sweeper.storage=postgresql://user:<redacted>@host:5432/db", "max_tokens=5"]  # fmt: skip
    tree = {"logger": {"api_key": "abc", "tokens": 3, "url": "https://a:b@c/d", "enabled": True}, "lr": 0.1}
    assert redact_tree(tree) == {
        "logger": {"api_key": "<redacted>", "tokens": 3, "url": "https://a:<redacted>@c/d", "enabled": True},
        "lr": 0.1,
    }


# -- 4. signals -----------------------------------------------------------------------------------


def _start(tmp_path: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dlwp.cli", "train", "trainer.enable_progress_bar=false", f"paths.runs_dir={tmp_path}",
           *args]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _wait_for_epoch(runs: Path, proc: subprocess.Popen, timeout: float = 240) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for run in run_dirs(runs):
            if (run / "checkpoints" / "last.ckpt").is_file():
                return run
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.5)
    proc.kill()
    raise AssertionError("no epoch finished in time")


@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_a_signal_exits_non_zero_and_says_how_to_resume(tmp_path, sig, code, name):
    proc = _start(tmp_path, "trainer.max_epochs=10000", "seed=4")
    run = _wait_for_epoch(tmp_path, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if f"interrupted by {name}" in line]
    assert f"resume with: dlwp train trainer.max_epochs=10000 seed=4 ckpt_path={run}" in line
    assert record(run)["status"] == "interrupted"
    from dlwp.checkpoints import load

    assert load(run / "checkpoints" / "last.ckpt")["epoch"] >= 0  # the resumable checkpoint is whole


def test_a_swallowed_interrupt_is_raised_again_at_the_next_batch(tmp_path):
    """A Ctrl-C whose KeyboardInterrupt some code swallows must still end the run (it would
    otherwise train on to max_epochs, and Lightning ignores every later Ctrl-C)."""
    import lightning as L
    import torch

    from dlwp.signals import ReRaiseStopSignal, stop_signals

    class Net(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer, self.steps = torch.nn.Linear(2, 1), 0

        def training_step(self, batch, batch_idx):
            self.steps += 1
            if self.steps == 3:
                try:  # the signal lands inside code that swallows what it raises
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(1)
                except KeyboardInterrupt:
                    pass
            return self.layer(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 2)), batch_size=4)
    net = Net()
    trainer = L.Trainer(max_epochs=100, callbacks=[ReRaiseStopSignal()], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit), stop_signals():  # Lightning turns KeyboardInterrupt into sys.exit(1)
        trainer.fit(net, data)
    assert net.steps == 3, "stopped at the end of the batch the signal came in"
    assert trainer.interrupted
    assert signal.getsignal(signal.SIGINT) is before, "the handlers are put back"


def test_a_run_killed_with_sigkill_reads_as_stale(tmp_path):
    proc = _start(tmp_path, "trainer.max_epochs=10000")
    run = _wait_for_epoch(tmp_path, proc)
    proc.kill()
    proc.wait()
    rec = record(run)
    assert rec["status"] == "running" and status_of(rec) == "stale"
    summary = dlwp("report", str(run))
    assert "stale" in (run / "report" / "summary.md").read_text(), summary.stdout


# -- 5. ranges and unknown keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("data.batch_size=0", "data.batch_size=0 (allowed: >= 1)"),
        ("data.batch_size=-5", "data.batch_size=-5"),
        ("seed=-1", "seed=-1"),
        ("task.optimizer.lr=-1", "task.optimizer.lr=-1 (allowed: > 0)"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1 (allowed: >= 0)"),
        ("trainer.cpu_threads=0", "trainer.cpu_threads=0 (allowed: >= 1 or null)"),
        ("data.subset=-3", "data.subset=-3"),
        ("+foo=1", "unknown config key(s): foo"),
        ("+trainer.max_epoch=3", "did you mean trainer.max_epochs?"),
        ("+task.optimizer.lrr=0.1", "'task.optimizer.lrr'"),
    ],
)
def test_bad_values_fail_at_start_up_with_the_key_and_leave_no_run_directory(tmp_path, override, named):
    proc = dlwp("train", override, runs=tmp_path, check=False)
    assert proc.returncode == 2
    assert named in one_error(proc.stderr)
    assert run_dirs(tmp_path) == []


def test_max_epochs_zero_is_reported_as_untrained(tmp_path):
    proc = dlwp("train", "trainer.max_epochs=0", runs=tmp_path)
    assert "UNTRAINED (trainer.max_epochs=0)" in proc.stderr
    (run,) = run_dirs(tmp_path)
    assert record(run)["trained"] is False


# -- 6. unwritable and full disks -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["/proc/dlwp-runs", "a-file/runs"])
def test_an_unusable_runs_dir_is_one_line(tmp_path, where):
    (tmp_path / "a-file").write_text("not a folder")
    target = where if where.startswith("/") else str(tmp_path / where)
    proc = dlwp("train", runs=Path(target), check=False)
    assert proc.returncode == 2
    assert f"paths.runs_dir={target}: cannot create a run directory there" in one_error(proc.stderr)


def test_a_full_disk_keeps_no_truncated_checkpoint(tmp_path):
    """A file-size limit (what a full disk looks like to the writer: EFBIG instead of ENOSPC)
    that the records fit in but a checkpoint does not: the run stops with one line, run.json
    says failed, and no half-written checkpoint or temporary file is left for a resume to pick."""

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))

    cmd = [
        sys.executable,
        "-m",
        "dlwp.cli",
        "train",
        "trainer.enable_progress_bar=false",
        f"paths.runs_dir={tmp_path}",
        "model.hidden=[2048,256]",
        *FAST,
    ]  # fmt: skip  (~10 MB of weights and RMSprop state)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, preexec_fn=limit, timeout=600)
    assert proc.returncode == 2
    line = one_error(proc.stderr)
    assert "File too large" in line and "no checkpoint had been saved" in line
    (run,) = run_dirs(tmp_path)
    assert record(run)["status"] == "failed"
    assert list((run / "checkpoints").iterdir()) == []  # neither a truncated last.ckpt nor a temporary
    assert not [p for p in run.rglob("*.tmp")]


# -- 7. smaller ones ------------------------------------------------------------------------------


def test_eval_without_a_checkpoint_is_one_line_and_leaves_nothing(tmp_path):
    proc = dlwp("eval", f"paths.runs_dir={tmp_path}", check=False)
    assert proc.returncode == 2
    assert "ckpt_path is required" in one_error(proc.stderr, "eval")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_resuming_another_network_names_the_keys_that_differ(tmp_path):
    dlwp("train", "trainer.max_epochs=1", runs=tmp_path)
    (run,) = run_dirs(tmp_path)
    before = (run / "checkpoints" / "last.ckpt").read_bytes()
    proc = dlwp("train", "trainer.max_epochs=2", "model.hidden=[256]", f"ckpt_path={run}", runs=tmp_path, check=False)
    assert proc.returncode == 2
    assert "model.hidden: checkpoint [512], now [256]" in one_error(proc.stderr)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before


def test_wandb_mode_from_the_environment(tmp_path):
    """W&B's own WANDB_MODE is honoured when logger.wandb.mode is not set; a bad value is one line."""
    dlwp("train", "logger=wandb", "trainer.max_epochs=1", runs=tmp_path, env={"WANDB_MODE": "disabled"})
    (run,) = run_dirs(tmp_path)
    assert "wandb" not in record(run) and not (run / "wandb").exists()
    proc = dlwp("train", "logger=wandb", "trainer.max_epochs=1", runs=tmp_path / "bad", env={"WANDB_MODE": "sometimes"},
                check=False)  # fmt: skip
    assert proc.returncode == 2 and "WANDB_MODE=sometimes" in one_error(proc.stderr)


def test_checkpoints_are_written_atomically(tmp_path):
    """The checkpoint writer never writes into the final path (a kill or a full disk mid-write
    leaves the previous file): Lightning's own writer is replaced."""
    from dlwp.trainer import AtomicCheckpointIO

    target = tmp_path / "last.ckpt"
    target.write_bytes(b"previous")
    os.chmod(tmp_path, 0o755)

    class Exploding(dict):
        def __reduce_ex__(self, protocol):
            raise RuntimeError("killed mid-save")

    with pytest.raises(RuntimeError):
        AtomicCheckpointIO().save_checkpoint({"state": Exploding()}, target)
    assert target.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    AtomicCheckpointIO().save_checkpoint({"epoch": 3}, target)
    import torch

    assert torch.load(target, weights_only=True) == {"epoch": 3}
