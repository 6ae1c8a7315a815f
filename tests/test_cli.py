"""The command line itself: help, task list, unknown commands, start-up cost."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import ROOT, dlwp


def test_help_imports_neither_torch_nor_lightning():
    code = (
        "import sys; from dlwp.cli import main; main(['--help']); "
        "heavy = [m for m in ('torch', 'lightning', 'hydra') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "usage: dlwp" in proc.stdout
    assert time.perf_counter() - t0 < 10  # generous: the point is "no framework import", checked above


def test_tasks_lists_every_task_config_with_section_and_reference():
    out = dlwp("tasks").stdout
    task_files = sorted(p.stem for p in (ROOT / "conf" / "task").glob("*.yaml"))
    for name in task_files:
        assert name in out
    mnist_line = next(line for line in out.splitlines() if line.startswith("mnist_dense"))
    assert "2.1" in mnist_line and "0.9777" in mnist_line


def test_unknown_command_exits_2_with_usage():
    proc = dlwp("trian", check=False)
    assert proc.returncode == 2
    assert "unknown command 'trian'" in proc.stderr and "usage: dlwp" in proc.stderr


def test_every_command_of_the_table_is_in_the_help_and_runs():
    from dlwp.cli import COMMANDS, entry_point

    out = dlwp("--help").stdout
    for command in COMMANDS:
        assert f"  {command.name}" in out and command.summary in out
        assert callable(entry_point(command.entry)), command.entry


def test_a_forked_command_behaves_as_a_fresh_process(monkeypatch, tmp_path):
    """tests/zygote.py's commands against plain subprocesses: the same streams, exit status and
    environment (a variable set for one command reaches it, and not the next)."""
    probe = ["data", "fetch", "nosuchset"]
    forked = [dlwp(*probe, check=False), dlwp("trian", check=False)]
    marker = dlwp("data", "fetch", "mnist", env={"DLWP_DATA_MIRROR": str(tmp_path / "nowhere")}, check=False)
    assert str(tmp_path / "nowhere") in marker.stderr
    assert str(tmp_path / "nowhere") not in dlwp(*probe, check=False).stderr
    monkeypatch.setenv("DLWP_NO_ZYGOTE", "1")
    fresh = [dlwp(*probe, check=False), dlwp("trian", check=False)]
    for a, b in zip(forked, fresh, strict=True):
        assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)
    assert forked[1].returncode == 2
