"""The team's DVC workflow, with real DVC and git in a temporary repo and a local-folder remote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import dlwp, record, run_dirs, sh
from dlwp.data.version import data_version, describe


def fake_mnist(path: Path, seed: int = 0) -> None:
    """A file in the real MNIST format (60k/10k uint8 images), generated: a fixture, not data."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        x_train=(rng.random((60000, 28, 28)) > 0.97).astype(np.uint8) * 255,
        y_train=rng.integers(0, 10, 60000).astype(np.uint8),
        x_test=np.zeros((10000, 28, 28), np.uint8),
        y_test=rng.integers(0, 10, 10000).astype(np.uint8),
    )


@pytest.fixture(scope="module")
def pinned_clone(tmp_path_factory) -> Path:
    """A project with data/ pinned by data.dvc and pushed to a remote; returns a fresh clone after `dvc pull`."""
    base = tmp_path_factory.mktemp("dvc")
    origin, remote, clone = base / "origin", base / "remote", base / "clone"
    origin.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=origin)
    sh("dvc", "init", "-q", cwd=origin)
    sh("dvc", "config", "core.analytics", "false", cwd=origin)
    fake_mnist(origin / "data" / "mnist" / "mnist.npz")
    sh("dvc", "add", "-q", "data", cwd=origin)
    sh("dvc", "remote", "add", "-d", "local", str(remote), cwd=origin)
    sh("git", "add", "-A", cwd=origin)
    sh("git", "commit", "-qm", "pin data", cwd=origin)
    sh("dvc", "push", "-q", cwd=origin)
    sh("git", "clone", "-q", str(origin), str(clone), cwd=base)
    assert not (clone / "data").exists()
    sh("dvc", "pull", "-q", cwd=clone)
    return clone


def test_pull_in_a_fresh_clone_gives_the_pinned_bytes(pinned_clone):
    origin = pinned_clone.parent / "origin"
    pulled = (pinned_clone / "data" / "mnist" / "mnist.npz").read_bytes()
    assert pulled == (origin / "data" / "mnist" / "mnist.npz").read_bytes()
    info = data_version(pinned_clone, pinned_clone / "data")
    assert info["tracked"] and info["in_sync"] is True and info["md5"].endswith(".dir")


def test_runs_record_the_pinned_version_and_require_pinned_refuses_changed_data(pinned_clone, tmp_path):
    # fake_mnist is not a registered version of mnist.npz: trained on only with allow_unverified_data=true
    common = ["task=mnist_dense", f"paths.root={pinned_clone}", f"paths.data_dir={pinned_clone / 'data'}",
              "data.subset=300", "trainer.max_epochs=1", "allow_unverified_data=true"]  # fmt: skip
    dlwp("train", *common, "require_pinned_data=true", runs=tmp_path / "ok")
    (run,) = run_dirs(tmp_path / "ok", "mnist_dense")
    version = record(run)["data"]["version"]
    assert version["in_sync"] is True and version["md5"] == data_version(pinned_clone, pinned_clone / "data")["md5"]
    assert record(run)["git"]["commit"] and record(run)["git"]["dirty"] is False

    (pinned_clone / "data" / "mnist" / "extra.txt").write_text("an unpinned change")
    info = data_version(pinned_clone, pinned_clone / "data")
    assert info["in_sync"] is False
    status = dlwp("data", "--data-dir", str(pinned_clone / "data"), "status",
                  env={"DLWP_ROOT": str(pinned_clone)}).stdout  # fmt: skip
    assert "does NOT match data.dvc" in status

    refused = dlwp("train", *common, "require_pinned_data=true", runs=tmp_path / "refused", check=False)
    assert refused.returncode == 2 and "does NOT match data.dvc" in refused.stderr and "dvc checkout" in refused.stderr
    (failed,) = run_dirs(tmp_path / "refused", "mnist_dense")
    assert record(failed)["status"] == "failed" and "epochs_done" not in record(failed)

    sh("dvc", "checkout", "-q", "--force", cwd=pinned_clone)  # `dvc checkout` restores the pin
    (pinned_clone / "data" / "mnist" / "extra.txt").unlink(missing_ok=True)
    assert data_version(pinned_clone, pinned_clone / "data")["in_sync"] is True


def test_a_mismatch_mended_outside_data_is_seen_at_once(tmp_path):
    """`dvc add` (or a DVC cache filled later) can make unchanged files match the pin: the status
    cache must not keep the old verdict (only matches are remembered)."""
    project = tmp_path / "p"
    project.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=project)
    sh("dvc", "init", "-q", cwd=project)
    fake_mnist(project / "data" / "mnist" / "mnist.npz")
    sh("dvc", "add", "-q", "data", cwd=project)
    cache = project / ".dvc" / "cache"
    moved = tmp_path / "cache-elsewhere"
    cache.rename(moved)  # data.dvc pins bytes the DVC cache does not hold: "not in cache"
    unknown = data_version(project, project / "data")
    assert unknown["in_sync"] is False
    assert "dvc commit -f data.dvc" in describe(unknown) and "not in the DVC cache" in describe(unknown)
    moved.rename(cache)  # mended without touching data/ or data.dvc
    assert data_version(project, project / "data")["in_sync"] is True
