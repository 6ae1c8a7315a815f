"""`dlwp reproduce`: a recorded run re-run exactly (identical metrics on a CPU), and every condition
that differs from the record is a clear refusal, never a silent re-run under other conditions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import dlwp, record, run_dirs


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """A small run whose command line carried a credential (redacted in its record)."""
    runs = tmp_path_factory.mktemp("original")
    dlwp("train", "trainer.max_epochs=2", "seed=0", "+hydra.job.env_set.MY_API_TOKEN=abc123", runs=runs)
    (run,) = run_dirs(runs)
    assert "+hydra.job.env_set.MY_API_TOKEN=<redacted>" in record(run)["command"]
    return run


def test_a_run_reproduces_identically_and_links_to_its_original(original, tmp_path):
    proc = dlwp("reproduce", str(original), "--runs-dir", str(tmp_path))
    assert "verdict: identical" in proc.stdout, proc.stdout + proc.stderr
    (again,) = run_dirs(tmp_path)
    rec = record(again)
    assert rec["reproduces"] == str(original) and rec["seed"] == 0
    assert rec["metrics"]["final"]["test/acc"] == record(original)["metrics"]["final"]["test/acc"]
    assert "reproduces=" not in " ".join(rec["overrides"])  # a reproduction reproduces like its original
    assert "MY_API_TOKEN" not in " ".join(rec["command"])  # the redacted credential was left out


def _altered(original: Path, tmp_path: Path, change) -> Path:
    copy = tmp_path / "record" / original.name
    shutil.copytree(original, copy, ignore=shutil.ignore_patterns("checkpoints"))
    rec = record(copy)
    change(rec)
    (copy / "run.json").write_text(json.dumps(rec))
    return copy


def _refused(copy: Path, tmp_path: Path, *extra: str) -> str:
    proc = dlwp("reproduce", str(copy), "--runs-dir", str(tmp_path / "again"), *extra, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "again").exists()  # nothing was re-run
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("dlwp reproduce: error:")]
    return line


def test_a_record_from_another_commit_is_refused_with_the_fix(original, tmp_path):
    copy = _altered(original, tmp_path, lambda rec: rec["git"].update(commit="0" * 40))
    line = _refused(copy, tmp_path)
    assert "the code differs" in line and "0000000000" in line and "--any-commit" in line


def test_data_that_no_longer_matches_is_refused_with_the_fetch_command(original, tmp_path):
    def other_bytes(rec):
        rec["data"]["files"][0]["sha256"] = "f" * 64

    line = _refused(_altered(original, tmp_path, other_bytes), tmp_path)
    assert "the data differs" in line and "other bytes" in line and "dlwp data fetch" in line


def test_a_task_that_no_longer_exists_is_refused(original, tmp_path):
    copy = _altered(original, tmp_path, lambda rec: rec["overrides"].append("task=gone_since"))
    assert "task 'gone_since' no longer exists" in _refused(copy, tmp_path)


def test_a_record_that_is_not_a_training_run_is_refused(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"kind": "eval"}))
    proc = dlwp("reproduce", str(tmp_path), check=False)
    assert proc.returncode == 2 and "only training runs are reproduced" in proc.stderr
