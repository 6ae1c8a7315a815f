"""The book's chapter 3 numbers and chapter 4 orderings on the real datasets, one seed each, through the CLI.

Marked `slow` (about 10 minutes together): not in the default run; `python -m pytest -m slow` runs
them. They skip when the mirror (../shared/datasets or $DLWP_DATA_MIRROR) is absent. The
multi-seed tables of docs/RESULTS.md come from `bench/reproduce.py`; the targets here are the
issue's, on one seed, so they hold with the margin the 3-seed figures show.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MIRROR, dlwp, record, run_dirs

pytestmark = pytest.mark.slow

LINKS = {  # name in the data dir -> file in the mirror (recorded variants: no opt-in needed)
    "imdb/imdb_word_index.json": "imdb/imdb_word_index.json",
    "imdb/aclImdb_v1.tar.gz": "imdb/aclImdb_v1_labeled.tar.gz",
    "reuters/reuters.npz": "reuters/reuters_rebuilt.npz",
    "boston_housing/boston_housing.npz": "boston_housing/boston_housing.npz",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data root of symlinks into the mirror (the IMDB cache is built in this tmp dir)."""
    missing = [source for source in LINKS.values() if not (MIRROR / source).is_file()]
    if missing:
        pytest.skip(f"the real-data mirror lacks {missing} (looked in {MIRROR})")
    root = tmp_path_factory.mktemp("data")
    for name, source in LINKS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(MIRROR / source)
    return root


def train(task: str, data_dir: Path, runs: Path, *overrides: str) -> dict:
    dlwp("train", f"task={task}", f"paths.data_dir={data_dir}", *overrides, runs=runs, timeout=900)
    (run_dir,) = run_dirs(runs, task)
    return record(run_dir)


def test_imdb_dense_reaches_the_books_test_accuracy(data_dir, tmp_path):
    """Book 3.5: retrained on all 25,000 reviews for 4 epochs, test accuracy 0.885 (target >= 0.875)."""
    rec = train("imdb_dense", data_dir, tmp_path)
    assert rec["data"]["sizes"] == {"train": 25000, "test": 25000}
    assert rec["metrics"]["final"]["test/acc"] >= 0.875


def test_reuters_dense_reaches_the_books_test_accuracy_and_random_baseline(data_dir, tmp_path):
    """Book 3.6: test accuracy 0.777 after 8 epochs (target >= 0.77); random guessing ~0.18."""
    rec = train("reuters_dense", data_dir, tmp_path)
    assert rec["metrics"]["final"]["test/acc"] >= 0.77
    assert rec["baselines"]["random_acc"] == pytest.approx(0.1848, abs=0.01)


def test_boston_kfold_reaches_the_books_mae(data_dir, tmp_path):
    """Book 3.7: 4-fold mean validation MAE 2.38 (target <= 2.7), final model's test MAE 2.55 (<= 2.9)."""
    rec = train("boston_kfold", data_dir, tmp_path)
    assert len(rec["kfold"]["folds"]) == 4
    assert rec["kfold"]["mean"]["val/mae"] <= 2.7
    assert rec["kfold"]["final"]["metrics"]["test/mae"] <= 2.9


def test_chapter4_study_shows_the_books_orderings(data_dir, tmp_path):
    """Book 4.4, seed 0: the bigger network overfits first and worst, the smaller one later than the
    original, and L2 and dropout end with a lower validation loss than the original (~5 minutes)."""
    dlwp("train", "-m", "+experiment=ch4_study", "seed=0", f"paths.data_dir={data_dir}", runs=tmp_path, timeout=1500)
    (sweep,) = (tmp_path / "multirun").iterdir()
    runs = {rec["task"]: rec for rec in (record(d) for d in sweep.iterdir() if (d / "run.json").is_file())}
    best_epoch = {task: rec["metrics"]["best"]["val/loss"]["epoch"] for task, rec in runs.items()}
    final = {task: rec["metrics"]["final"]["val/loss"] for task, rec in runs.items()}
    assert len(runs) == 5 and all(rec["status"] == "completed" for rec in runs.values())
    assert best_epoch["imdb_bigger"] <= min(best_epoch.values()), best_epoch
    assert final["imdb_bigger"] == max(final.values()), final
    assert best_epoch["imdb_smaller"] > best_epoch["imdb_original"], best_epoch
    assert final["imdb_l2"] < final["imdb_original"] and final["imdb_dropout"] < final["imdb_original"], final
