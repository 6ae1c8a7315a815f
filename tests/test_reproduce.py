"""The book's numbers on the real datasets, one seed each, through the CLI: its targets are checked.

The fast ones (book 2.1 MNIST, 3.5 IMDB, 3.6 Reuters: about 45 s together on 2 idle cores, at the
book's full size) run in the default suite; the long ones (3.7 K-fold, the chapter 4 study: about
10 minutes) are marked `slow` (`python -m pytest -m slow` runs them). Each test skips, saying why,
when the mirror (../shared/datasets or $DLWP_DATA_MIRROR) lacks its files, and fails when the mirror
lists them but they are missing or broken. The targets are those of bench/reproduce.py's specs
(the issue's acceptance targets; docs/RESULTS.md shows the 3-seed figures they hold with margin).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conftest import MIRROR, dlwp, record, run_dirs


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(task: str, data_dir: Path, runs: Path, *overrides: str) -> dict:
    """One `dlwp train` of `task` on the mirror's files; its record, after checking that the run read
    exactly the mirror's bytes (no synthetic or other stand-in)."""
    dlwp("train", f"task={task}", f"paths.data_dir={data_dir}", *overrides, runs=runs, timeout=900)
    (run_dir,) = run_dirs(runs, task)
    rec = record(run_dir)
    assert rec["status"] == "completed" and rec["data"]["source"] == "real"
    read = {Path(f["path"]).resolve(): f["sha256"] for f in rec["data"]["files"]}
    linked = {p.resolve() for p in data_dir.rglob("*") if p.is_symlink()}
    assert set(read) == linked and all(p.is_relative_to(MIRROR.resolve()) for p in read), read
    assert all(sha256(p) == digest for p, digest in read.items())
    return rec


def test_mnist_dense_reaches_the_books_test_accuracy(mnist_data_dir, tmp_path):
    """Book 2.1, at full size (5 epochs on all 60,000): test accuracy 0.9777 in the notebook, 0.9785
    in print; target >= 0.973 (bench/reproduce.py). ~30 s on 2 idle cores."""
    rec = train("mnist_dense", mnist_data_dir, tmp_path)
    assert rec["data"]["sizes"] == {"train": 60000, "test": 10000}
    assert rec["metrics"]["final"]["epoch"] == 5
    assert rec["metrics"]["final"]["test/acc"] >= 0.973
    assert rec["metrics"]["final"]["train/acc"] == pytest.approx(0.9890, abs=0.005)  # notebook, epoch 5


def test_imdb_dense_reaches_the_books_test_accuracy(imdb_data_dir, tmp_path):
    """Book 3.5, at full size: retrained on all 25,000 reviews for 4 epochs, test accuracy 0.885
    (target >= 0.875, bench/reproduce.py). ~20 s on 2 idle cores, tokenising the reviews included."""
    rec = train("imdb_dense", imdb_data_dir, tmp_path)
    assert rec["data"]["sizes"] == {"train": 25000, "test": 25000}
    assert rec["metrics"]["final"]["epoch"] == 4
    assert rec["metrics"]["final"]["test/acc"] >= 0.875


def test_reuters_dense_reaches_the_books_test_accuracy_and_random_baseline(reuters_data_dir, tmp_path):
    """Book 3.6, at full size: test accuracy 0.777 after 8 epochs on 7,982 wires (target >= 0.77,
    bench/reproduce.py); random guessing ~0.18 (notebook cell 35). ~10 s on 2 idle cores."""
    rec = train("reuters_dense", reuters_data_dir, tmp_path)
    assert rec["data"]["sizes"] == {"train": 7982, "val": 1000, "test": 2246}
    assert rec["metrics"]["final"]["epoch"] == 8
    assert rec["metrics"]["final"]["test/acc"] >= 0.77
    assert rec["baselines"]["random_acc"] == pytest.approx(0.1848, abs=0.01)


@pytest.mark.slow
def test_boston_kfold_reaches_the_books_mae(boston_data_dir, tmp_path):
    """Book 3.7: 4-fold mean validation MAE 2.38 (target <= 2.7), final model's test MAE 2.55 (<= 2.9)."""
    rec = train("boston_kfold", boston_data_dir, tmp_path)
    assert len(rec["kfold"]["folds"]) == 4
    assert rec["kfold"]["mean"]["val/mae"] <= 2.7
    assert rec["kfold"]["final"]["metrics"]["test/mae"] <= 2.9


@pytest.mark.slow
def test_chapter4_study_shows_the_books_orderings(imdb_data_dir, tmp_path):
    """Book 4.4, seed 0: the bigger network overfits first and worst, the smaller one later than the
    original, and L2 and dropout end with a lower validation loss than the original (~5 minutes)."""
    dlwp(
        "train", "-m", "+experiment=ch4_study", "seed=0", f"paths.data_dir={imdb_data_dir}", runs=tmp_path, timeout=1500
    )
    (sweep,) = (tmp_path / "multirun").iterdir()
    runs = {rec["task"]: rec for rec in (record(d) for d in sweep.iterdir() if (d / "run.json").is_file())}
    best_epoch = {task: rec["metrics"]["best"]["val/loss"]["epoch"] for task, rec in runs.items()}
    final = {task: rec["metrics"]["final"]["val/loss"] for task, rec in runs.items()}
    assert len(runs) == 5 and all(rec["status"] == "completed" for rec in runs.values())
    assert best_epoch["imdb_bigger"] <= min(best_epoch.values()), best_epoch
    assert final["imdb_bigger"] == max(final.values()), final
    assert best_epoch["imdb_smaller"] > best_epoch["imdb_original"], best_epoch
    assert final["imdb_l2"] < final["imdb_original"] and final["imdb_dropout"] < final["imdb_original"], final
