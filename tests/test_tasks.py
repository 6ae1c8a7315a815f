"""Smoke tests of the book's tasks (chapters 3-5 and 7.1.3) through the real CLI, on tiny subsets: learning happened.

Real-data tests take the shared mirror's files (symlinked into a tmp data dir by conftest's
fixtures) and skip, saying why, without them; nothing falls back to other data. The tests named
`test_synthetic_*` check the pipelines (sweeps, figures, eval, ensembles) on the data modules'
synthetic source on purpose, so that these run on a machine without ../shared too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MIRROR, dlwp, metric_rows, record, run_dirs


def data_args(data_dir: Path) -> list[str]:
    return [f"paths.data_dir={data_dir}"]


SYNTHETIC = ["data.source=synthetic"]


def _real(rec: dict) -> None:
    """The run read the mirror's files (through the tmp data dir's links), no stand-in."""
    assert rec["data"]["source"] == "real" and rec["data"]["files"]
    assert all(Path(f["path"]).resolve().is_relative_to(MIRROR.resolve()) for f in rec["data"]["files"])


def _learned(run_dir: Path) -> dict:
    rec = record(run_dir)
    assert rec["status"] == "completed"
    rows = metric_rows(run_dir)
    assert rows[-1]["train/loss"] < rows[0]["train/loss"], "training loss must fall"
    return rec


@pytest.mark.parametrize(
    ("task", "dataset", "extra"),
    [
        ("imdb_dense", "imdb", ["data.subset=3000", "trainer.max_epochs=4"]),
        ("imdb_dense_curves", "imdb", ["data.subset=3000", "data.val_size=1000", "trainer.max_epochs=3"]),
        ("reuters_dense", "reuters", ["data.subset=3000", "data.val_size=500", "trainer.max_epochs=8"]),
    ],
)
def test_chapter3_task_beats_its_trivial_baseline(task, dataset, extra, request, tmp_path):
    data_dir = request.getfixturevalue(f"{dataset}_data_dir")  # skips without the mirror's files
    dlwp("train", f"task={task}", *data_args(data_dir), *extra, runs=tmp_path)
    (run_dir,) = run_dirs(tmp_path, task)
    rec = _learned(run_dir)
    _real(rec)
    acc, majority = rec["metrics"]["final"]["test/acc"], rec["baselines"]["majority_acc"]
    assert acc > majority + 0.1, f"{task}: test acc {acc:.3f} vs majority-class baseline {majority:.3f}"


def test_reuters_bottleneck_learns_less_than_the_full_network(reuters_data_dir, tmp_path):
    common = ["data.subset=3000", "data.val_size=500", "trainer.max_epochs=8", *data_args(reuters_data_dir)]
    dlwp("train", "-m", "task=reuters_dense,reuters_bottleneck", "data.batch_size=128", *common, runs=tmp_path)
    (sweep,) = (tmp_path / "multirun").iterdir()
    recs = [record(d) for d in sweep.iterdir() if (d / "run.json").exists()]
    assert len(recs) == 2 and all(rec["status"] == "completed" for rec in recs)
    for rec in recs:
        _real(rec)
    accs = {rec["task"]: rec["metrics"]["best"]["val/acc"]["value"] for rec in recs}
    (majority,) = {rec["baselines"]["majority_acc"] for rec in recs}  # the same validation wires
    assert accs["reuters_bottleneck"] > majority + 0.05, "the bottleneck still learns: beats always-the-commonest-topic"
    assert accs["reuters_bottleneck"] < accs["reuters_dense"], "a 4-unit bottleneck loses information (book 3.6)"


def _chapter4_study(runs: Path, *args: str) -> tuple[Path, dict[str, Path]]:
    """`+experiment=ch4_study` in one command: its sweep directory, and each variant's run; checks
    that all five ran and were compared in figures and a summary."""
    dlwp("train", "-m", "+experiment=ch4_study", "data.subset=2000", "trainer.max_epochs=3", *args, runs=runs)
    (sweep,) = (runs / "multirun").iterdir()
    tasks = {record(d)["task"]: d for d in sweep.iterdir() if (d / "run.json").exists()}
    assert set(tasks) == {"imdb_original", "imdb_smaller", "imdb_bigger", "imdb_l2", "imdb_dropout"}
    figures = {p.name for p in (sweep / "report").glob("*.png")}
    assert {f"vs_imdb_original_{t}.png" for t in ("imdb_smaller", "imdb_bigger", "imdb_l2", "imdb_dropout")} <= figures
    assert (sweep / "summary.md").read_text().count("completed") == 5
    return sweep, tasks


def test_chapter4_study_runs_all_variants_in_one_command_on_real_reviews(imdb_data_dir, tmp_path):
    _, tasks = _chapter4_study(tmp_path, *data_args(imdb_data_dir))
    for run_dir in tasks.values():
        rec = _learned(run_dir)
        _real(rec)
        assert rec["metrics"]["final"]["val/acc"] > rec["baselines"]["majority_acc"] + 0.1


def test_synthetic_chapter4_study_runs_all_variants_in_one_command_with_figures(tmp_path):
    """Synthetic on purpose (every machine): the sweep, its figures and summary; each variant learns."""
    _, tasks = _chapter4_study(tmp_path, *SYNTHETIC)
    for run_dir in tasks.values():
        rec = _learned(run_dir)
        assert rec["data"]["source"] == "synthetic" and rec["data"]["files"] == []
        # above chance; the 4-unit imdb_smaller learns the synthetic reviews slowest (0.59 vs 0.50 at epoch 3)
        assert rec["metrics"]["final"]["val/acc"] > rec["baselines"]["majority_acc"] + 0.05


def _convnet_seeds_evaluate_and_ensemble(runs: Path, *args: str, where: tuple[str, ...] = ()) -> list[dict]:
    """Book 5.1 on a subset: two seeds in one sweep beat the majority class; `dlwp eval` of a
    checkpoint gives its run's test accuracy again, and an ensemble of the two is no worse than its
    weaker member. `where`: the data location for eval/ensemble (the checkpoint knows the rest)."""
    dlwp("train", "-m", "task=mnist_convnet", "seed=0,1", "data.subset=1500", "trainer.max_epochs=2", *args,
         runs=runs)  # fmt: skip
    (sweep,) = (runs / "multirun").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if (p / "run.json").exists())
    recs = [_learned(job) for job in jobs]
    assert [rec["seed"] for rec in recs] == [0, 1]
    for rec in recs:
        assert rec["metrics"]["final"]["test/acc"] > rec["baselines"]["majority_acc"] + 0.5
    dlwp("eval", f"ckpt_path={jobs[0] / 'checkpoints' / 'last.ckpt'}", *where, runs=runs)
    (eval_dir,) = run_dirs(runs, "eval")
    assert record(eval_dir)["data"]["source"] == recs[0]["data"]["source"]
    assert record(eval_dir)["metrics"]["final"]["test/acc"] == recs[0]["metrics"]["final"]["test/acc"]
    dlwp("ensemble", f"sweep={sweep}", *where, runs=runs)
    (ens_dir,) = run_dirs(runs, "ensemble")
    ens = record(ens_dir)
    members = sorted(m["test/acc"] for m in ens["members"])
    trained = sorted(rec["metrics"]["final"]["test/acc"] for rec in recs)
    assert members == pytest.approx(trained, abs=1e-6), "its members are the two runs"
    assert ens["metrics"]["final"]["test/acc"] >= members[0] - 0.01
    return recs


def test_mnist_convnet_learns_on_real_digits_and_its_checkpoints_evaluate_and_ensemble(mnist_data_dir, tmp_path):
    where = tuple(data_args(mnist_data_dir))
    recs = _convnet_seeds_evaluate_and_ensemble(tmp_path, *where, where=where)
    for rec in recs:
        _real(rec)


def test_synthetic_mnist_convnet_checkpoints_evaluate_and_ensemble(tmp_path):
    """Synthetic on purpose (every machine): the convnet's sweep, eval and ensemble pipeline."""
    recs = _convnet_seeds_evaluate_and_ensemble(tmp_path, *SYNTHETIC)
    assert all(rec["data"]["source"] == "synthetic" for rec in recs)


def test_imdb_multi_output_beats_each_heads_baseline(imdb_data_dir, tmp_path):
    dlwp("train", "task=imdb_multi_output", "data.subset=3000", "trainer.max_epochs=4", *data_args(imdb_data_dir),
         runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "imdb_multi_output")
    rec = _learned(run_dir)
    _real(rec)
    final, base = rec["metrics"]["final"], rec["baselines"]
    assert final["test/sentiment/acc"] > base["sentiment/majority_acc"] + 0.1
    assert final["test/rating/mae"] < base["rating/mean_target_mae"] - 0.3
    assert final["test/rating_class/acc"] > base["rating_class/majority_acc"] + 0.03


def test_imdb_multi_output_with_the_conv1d_encoder_learns_every_head(imdb_data_dir, tmp_path):
    """Book 7.1.3's listing shape (a 1D-convnet encoder, one head per output) on real reviews."""
    dlwp("train", "task=imdb_multi_output_conv1d", "data.subset=4000", "data.maxlen=150", "trainer.max_epochs=4",
         "task.optimizer.lr=1e-3", *data_args(imdb_data_dir), runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "imdb_multi_output_conv1d")
    rec = _learned(run_dir)
    _real(rec)
    final, base = rec["metrics"]["final"], rec["baselines"]
    assert final["test/sentiment/acc"] > base["sentiment/majority_acc"] + 0.15
    assert final["test/rating/mae"] < base["rating/mean_target_mae"] - 0.5
    assert final["test/rating_class/acc"] > base["rating_class/majority_acc"] + 0.05
