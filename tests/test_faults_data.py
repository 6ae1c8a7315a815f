"""Faults on the data side, run as a user meets them: through the `dlwp` CLI, with real files.

Each one must end in one clear line that says what is wrong and how to fix it (no traceback),
write nothing it should not and lose nothing already saved:

1. training on a registered dataset file whose bytes match no registered version;
2. a `DLWP_DATA_MIRROR` (or `--mirror`) that does not exist;
3. the DVC status cache after `dvc add data` (keyed on data.dvc's content);
4. the checksum chain of `dogs_vs_cats/SHA256SUMS`, and files no checksum can verify.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import MIRROR, dlwp, record, run_dirs, sh
from dlwp.data.fetch import unmatched_files
from dlwp.data.registry import DATASETS

TINY = ["trainer.max_epochs=1", "data.subset=300"]


def error_lines(stderr: str, command: str) -> list[str]:
    """The `dlwp <command>: error:` lines of a failed command; asserts there is no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith(f"dlwp {command}: error:")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_of(root: Path) -> dict[str, str]:
    """Every file under `root` and its sha256 (what must not change)."""
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


# -- 1. training on bytes the registry rejects ---------------------------------------------------


@pytest.fixture(scope="module")
def permuted_mnist(tmp_path_factory) -> Path:
    """A data dir whose mnist/mnist.npz is a valid npz of the real images with permuted labels."""
    source = MIRROR / "mnist" / "mnist.npz"
    if not source.is_file():
        pytest.skip(f"the mirror's {source} is absent")
    data_dir = tmp_path_factory.mktemp("permuted")
    with np.load(source) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["y_train"] = np.random.default_rng(0).permutation(arrays["y_train"])
    (data_dir / "mnist").mkdir()
    np.savez(data_dir / "mnist" / "mnist.npz", **arrays)
    return data_dir


def test_training_on_a_registered_file_with_unknown_bytes_stops_before_training(permuted_mnist, tmp_path):
    npz = permuted_mnist / "mnist" / "mnist.npz"
    before = sha256(npz)
    status = dlwp("data", "--data-dir", str(permuted_mnist), "status").stdout
    assert "mnist           corrupt" in status

    proc = dlwp("train", "task=mnist_dense", f"paths.data_dir={permuted_mnist}", *TINY, runs=tmp_path, check=False)
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr, "train")
    assert str(npz) in line and f"sha256 {before} matches no registered version of mnist/mnist.npz" in line
    assert f"dlwp data --data-dir {permuted_mnist} fetch mnist" in line and "allow_unverified_data=true" in line
    assert sha256(npz) == before, "the file is left as it was"
    (run,) = run_dirs(tmp_path, "mnist_dense")
    rec = record(run)
    assert rec["status"] == "failed" and "epochs_done" not in rec and "matches no registered version" in rec["error"]
    assert not (run / "metrics.csv").exists() and not (run / "checkpoints").exists(), "nothing was trained"
    (entry,) = rec["data"]["files"]
    assert entry["variant"] == "matches no registered version" and entry["dataset"] == "mnist"


def test_allow_unverified_data_trains_and_records_the_files(permuted_mnist, tmp_path):
    npz = permuted_mnist / "mnist" / "mnist.npz"
    proc = dlwp("train", "task=mnist_dense", f"paths.data_dir={permuted_mnist}", *TINY, "allow_unverified_data=true",
                runs=tmp_path)  # fmt: skip
    assert "allow_unverified_data=true: training on 1 file(s) that match no registered version" in proc.stderr
    (run,) = run_dirs(tmp_path, "mnist_dense")
    rec = record(run)
    assert rec["status"] == "completed" and rec["epochs_done"] == 1
    assert rec["data"]["allowed_unverified"] == [str(npz)]


def test_verified_data_and_a_users_own_files_are_not_reported(mnist_data_dir, tmp_path):
    """Registered files with registered bytes, and files the registry does not name, stay accepted."""
    real = mnist_data_dir / "mnist" / "mnist.npz"
    own = tmp_path / "mine" / "digits.npz"
    own.parent.mkdir()
    own.write_bytes(b"a user's own dataset")
    inside = mnist_data_dir / "my_dataset" / "x.npz"  # under the data dir, but not a registered path
    files = [(real, sha256(real)), (own, sha256(own)), (inside, "0" * 64)]
    assert unmatched_files(files, mnist_data_dir) == []
    assert unmatched_files([(real, "0" * 64)], mnist_data_dir)[0]["file"] == "mnist/mnist.npz"


@pytest.fixture(scope="module")
def dogs_data_dir(tmp_path_factory) -> Path:
    """A data dir linking the mirror's SHA256SUMS and the 30-per-class smoke split's images."""
    sums = MIRROR / "dogs_vs_cats" / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip(f"the mirror's {sums} is absent")
    from dlwp.data.dogs_vs_cats import DogsVsCatsDataModule

    data_dir = tmp_path_factory.mktemp("dogs")
    dogs = data_dir / "dogs_vs_cats"
    listed = DogsVsCatsDataModule(root=str(MIRROR / "dogs_vs_cats"), per_class=30).files()
    for source in [sums, *listed]:
        link = dogs / source.relative_to(MIRROR / "dogs_vs_cats")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
    return data_dir


def test_a_swapped_image_and_a_rewritten_checksum_list_both_stop_a_run(dogs_data_dir, tmp_path):
    """More than 50 files (run.json summarises them): each image is checked against the pinned
    SHA256SUMS, and a SHA256SUMS rewritten to match the swapped image is itself refused."""
    dogs = dogs_data_dir / "dogs_vs_cats"
    image = dogs / "cats_and_dogs_filtered" / "train" / "cats" / "cat.0.jpg"
    other = dogs / "cats_and_dogs_filtered" / "train" / "cats" / "cat.1.jpg"
    original = sha256(image)
    image.unlink()
    image.write_bytes(other.read_bytes())  # a real JPEG, in the wrong place
    args = ("train", "task=cats_dogs_scratch", f"paths.data_dir={dogs_data_dir}", "+data.per_class=30",
            "trainer.max_epochs=1")  # fmt: skip

    proc = dlwp(*args, runs=tmp_path / "image", check=False)
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr, "train")
    assert str(image) in line and "matches no registered version of dogs_vs_cats/" in line
    assert "fetch dogs_vs_cats" in line
    (run,) = run_dirs(tmp_path / "image", "cats_dogs_scratch")
    assert record(run)["data"]["files"]["count"] == 180 and not (run / "metrics.csv").exists()

    sums = dogs / "SHA256SUMS"
    rewritten = sums.read_text().replace(original, sha256(image), 1)
    assert rewritten != sums.read_text()
    sums.unlink()
    sums.write_text(rewritten)  # now the list "verifies" the swapped image
    proc = dlwp(*args, runs=tmp_path / "list", check=False)
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr, "train")
    assert f"{sums}: its sha256 {sha256(sums)} matches no registered version of dogs_vs_cats/SHA256SUMS" in line
    assert not (dogs / ".cache").exists(), "no image was decoded"


# -- 2. a mirror that does not exist -------------------------------------------------------------


def test_a_nonexistent_mirror_is_named_and_leaves_no_folder(tmp_path):
    data_dir, missing = tmp_path / "data", tmp_path / "no-such-mirror"
    data_dir.mkdir()
    env = {"DLWP_DATA_MIRROR": str(missing)}

    proc = dlwp("train", "task=mnist_dense", f"paths.data_dir={data_dir}", *TINY, runs=tmp_path / "runs", env=env,
                check=False)  # fmt: skip
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr, "train")
    assert f"DLWP_DATA_MIRROR={missing} does not exist" in line and "unset DLWP_DATA_MIRROR" in line
    assert "fetching" not in proc.stderr, "no claim that it fetches from a mirror that is not there"

    proc = dlwp("data", "--data-dir", str(data_dir), "fetch", "mnist", "--quiet", env=env, check=False)
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr, "data")
    assert f"DLWP_DATA_MIRROR={missing} does not exist" in line

    proc = dlwp("data", "--data-dir", str(data_dir), "fetch", "mnist", "--quiet", "--mirror", str(missing),
                env={"DLWP_DATA_MIRROR": None}, check=False)  # fmt: skip
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr, "data")
    assert f"--mirror={missing} does not exist" in line and "leave out --mirror" in line
    assert list(data_dir.iterdir()) == [], "no empty dataset folder left behind"


def test_a_failed_fetch_leaves_no_empty_dataset_folder(tmp_path):
    mirror, data_dir = tmp_path / "mirror", tmp_path / "data"
    (mirror / "mnist").mkdir(parents=True)
    (mirror / "mnist" / "mnist.npz").write_bytes(b"not mnist")
    proc = dlwp("data", "--data-dir", str(data_dir), "fetch", "mnist", "--quiet", "--mirror", str(mirror),
                check=False)  # fmt: skip
    assert proc.returncode == 1 and "checksum mismatch for mnist/mnist.npz" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not data_dir.exists(), "the folders made for the fetch are removed again"


# -- 3. the DVC status cache after `dvc add data` --------------------------------------------------


def test_the_dvc_status_cache_follows_data_dvc_after_dvc_add(tmp_path):
    """`dvc add data` re-pins; putting the old data.dvc back (same mtime as the new one, data/
    untouched) must not be answered from the cache of the new pin."""
    project = tmp_path / "p"
    (project / "data" / "notes").mkdir(parents=True)
    sh("git", "init", "-q", "-b", "main", cwd=project)
    sh("dvc", "init", "-q", cwd=project)
    note = project / "data" / "notes" / "a.txt"
    note.write_text("first version\n")
    sh("dvc", "add", "-q", "data", cwd=project)
    dvc_file = project / "data.dvc"

    def status() -> str:
        out = dlwp("data", "--data-dir", str(project / "data"), "status", env={"DLWP_ROOT": str(project)}).stdout
        return out.strip().splitlines()[-1]

    first_pin, first = dvc_file.read_bytes(), status()
    assert first.startswith("data/ matches data.dvc")
    note.write_text("second version\n")
    sh("dvc", "add", "-q", "data", cwd=project)
    second = status()
    assert second.startswith("data/ matches data.dvc") and second != first, "the new pin's md5"
    assert (project / "data" / ".cache" / "dvc_status.json").is_file(), "the match is cached"
    stat = dvc_file.stat()
    dvc_file.write_bytes(first_pin)  # e.g. `git checkout data.dvc`: the old pin, data/ unchanged
    os.utime(dvc_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "does NOT match data.dvc" in status(), "not the cached verdict of the other pin"


# -- 4. the checksum chain of dogs_vs_cats, and files no checksum verifies --------------------------


def test_a_mirrors_own_checksum_list_is_refused_and_not_written(tmp_path):
    mirror, data_dir = tmp_path / "mirror", tmp_path / "data"
    image = mirror / "dogs_vs_cats" / "cats_and_dogs_filtered" / "train" / "cats" / "cat.0.jpg"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"any image at all")
    listing = f"{sha256(image)}  cats_and_dogs_filtered/train/cats/cat.0.jpg\n"
    (mirror / "dogs_vs_cats" / "SHA256SUMS").write_text(listing)
    proc = dlwp("data", "--data-dir", str(data_dir), "fetch", "dogs_vs_cats", "--quiet", "--mirror", str(mirror),
                check=False)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [line.strip() for line in proc.stderr.splitlines()]
    assert any(line.startswith("checksum mismatch for dogs_vs_cats/SHA256SUMS") for line in lines), proc.stderr
    assert not data_dir.exists(), "neither the list nor any image was written"
    assert DATASETS["dogs_vs_cats"].files[0].sha256, "the registry pins the list by its sha256"


@pytest.mark.skipif(not (MIRROR / "dogs_vs_cats" / "SHA256SUMS").is_file(), reason="shared mirror absent")
def test_the_pinned_list_is_the_mirrors():
    assert sha256(MIRROR / "dogs_vs_cats" / "SHA256SUMS") == DATASETS["dogs_vs_cats"].files[0].sha256


def test_files_without_a_published_checksum_are_counted_as_unverified(tmp_path):
    mirror, data_dir = tmp_path / "mirror", tmp_path / "data"
    (mirror / "nietzsche").mkdir(parents=True)
    (mirror / "nietzsche" / "nietzsche.txt").write_text("not the book at all\n")
    proc = dlwp("data", "--data-dir", str(data_dir), "fetch", "nietzsche", "--quiet", "--mirror", str(mirror))
    assert (
        f"nietzsche: ok, 0 file(s) verified, 1 unverified (no published checksum: nietzsche/nietzsche.txt) "
        f"in {data_dir.resolve() / 'nietzsche'}" in proc.stdout
    )


def test_every_file_the_project_can_pin_is_pinned(tmp_path):
    """Only downloads with no checksum published anywhere stay unpinned (`unverified`); the Reuters
    word index is checked by the md5 Keras' `get_word_index` uses."""
    unpinned = {s.path for d in DATASETS.values() for s in d.files if s.sha256 is None and s.md5 is None}
    assert unpinned == {
        "reuters/reuters21578.tar.gz",
        "jena_climate/jena_climate_2009_2016.csv.zip",
        "nietzsche/nietzsche.txt",
        "glove/glove.6B.zip",
    }
    bogus = tmp_path / "reuters" / "reuters_word_index.json"
    bogus.parent.mkdir()
    bogus.write_text("{}")
    status = dlwp("data", "--data-dir", str(tmp_path), "status").stdout
    assert "reuters/reuters_word_index.json: corrupt" in status
