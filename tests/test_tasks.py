"""Smoke tests of the book's tasks (chapters 3-5 and 7.1.3) through the real CLI, on tiny subsets: learning happened.

Real data (the shared mirror) when present; otherwise the data modules' synthetic source, which
has the real format and a learnable signal, so the suite passes on a machine without ../shared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MIRROR, dlwp, metric_rows, record, run_dirs

FILES = {
    "mnist": ["mnist/mnist.npz"],
    "imdb": ["imdb/imdb_word_index.json", ("imdb/aclImdb_v1.tar.gz", "imdb/aclImdb_v1_labeled.tar.gz")],
    "reuters": [("reuters/reuters.npz", "reuters/reuters_rebuilt.npz")],
}


@pytest.fixture(scope="module")
def data_args(tmp_path_factory) -> dict[str, list[str]]:
    """Per dataset: overrides that point at the real mirror (symlinked) or select synthetic data."""
    data_dir = tmp_path_factory.mktemp("data")
    args = {}
    for name, files in FILES.items():
        sources = []
        for spec in files:
            target, source = (spec, spec) if isinstance(spec, str) else spec
            if (MIRROR / source).is_file():
                (data_dir / target).parent.mkdir(parents=True, exist_ok=True)
                (data_dir / target).symlink_to(MIRROR / source)
                sources.append(True)
            else:
                sources.append(False)
        real = all(sources)
        args[name] = [f"paths.data_dir={data_dir}"] if real else ["data.source=synthetic"]
    return args


def _learned(run_dir: Path, metric: str = "acc") -> dict:
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
def test_chapter3_task_beats_its_trivial_baseline(task, dataset, extra, data_args, tmp_path):
    dlwp("train", f"task={task}", *data_args[dataset], *extra, runs=tmp_path)
    (run_dir,) = run_dirs(tmp_path, task)
    rec = _learned(run_dir)
    acc, majority = rec["metrics"]["final"]["test/acc"], rec["baselines"]["majority_acc"]
    assert acc > majority + 0.1, f"{task}: test acc {acc:.3f} vs majority-class baseline {majority:.3f}"


def test_reuters_bottleneck_learns_less_than_the_full_network(data_args, tmp_path):
    common = ["data.subset=3000", "data.val_size=500", "trainer.max_epochs=8", *data_args["reuters"]]
    dlwp("train", "-m", "task=reuters_dense,reuters_bottleneck", "data.batch_size=128", *common, runs=tmp_path)
    (sweep,) = (tmp_path / "multirun").iterdir()
    accs = {record(d)["task"]: record(d)["metrics"]["best"]["val/acc"]["value"] for d in sweep.iterdir()
            if (d / "run.json").exists()}  # fmt: skip
    majority = record(next(iter(sweep.glob("*/run.json"))).parent)["baselines"]["majority_acc"]
    assert accs["reuters_bottleneck"] > majority + 0.05, "the bottleneck still learns: beats always-the-commonest-topic"
    assert accs["reuters_bottleneck"] < accs["reuters_dense"], "a 4-unit bottleneck loses information (book 3.6)"


def test_chapter4_study_runs_all_variants_in_one_command_with_figures(data_args, tmp_path):
    dlwp("train", "-m", "+experiment=ch4_study", "data.subset=2000", "trainer.max_epochs=3", *data_args["imdb"],
         runs=tmp_path)  # fmt: skip
    (sweep,) = (tmp_path / "multirun").iterdir()
    tasks = {record(d)["task"]: d for d in sweep.iterdir() if (d / "run.json").exists()}
    assert set(tasks) == {"imdb_original", "imdb_smaller", "imdb_bigger", "imdb_l2", "imdb_dropout"}
    for run_dir in tasks.values():
        rec = _learned(run_dir)
        assert rec["metrics"]["final"]["val/acc"] > rec["baselines"]["majority_acc"] + 0.1
    figures = {p.name for p in (sweep / "report").glob("*.png")}
    assert {f"vs_imdb_original_{t}.png" for t in ("imdb_smaller", "imdb_bigger", "imdb_l2", "imdb_dropout")} <= figures
    assert (sweep / "summary.md").read_text().count("completed") == 5


def test_mnist_convnet_learns_and_its_checkpoints_evaluate_and_ensemble(data_args, tmp_path):
    """Book 5.1 on a subset: two seeds beat the majority class; `dlwp eval` of a checkpoint and an
    ensemble of the two work on the convnet."""
    dlwp("train", "-m", "task=mnist_convnet", "seed=0,1", "data.subset=1500", "trainer.max_epochs=2",
         *data_args["mnist"], runs=tmp_path)  # fmt: skip
    (sweep,) = (tmp_path / "multirun").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if (p / "run.json").exists())
    for job in jobs:
        rec = _learned(job)
        assert rec["metrics"]["final"]["test/acc"] > rec["baselines"]["majority_acc"] + 0.5
    where = [a for a in data_args["mnist"] if a.startswith("paths.")]  # the checkpoint knows the rest
    dlwp("eval", f"ckpt_path={jobs[0] / 'checkpoints' / 'last.ckpt'}", *where, runs=tmp_path)
    (eval_dir,) = run_dirs(tmp_path, "eval")
    assert record(eval_dir)["metrics"]["final"]["test/acc"] == record(jobs[0])["metrics"]["final"]["test/acc"]
    dlwp("ensemble", f"sweep={sweep}", *where, runs=tmp_path)
    (ens_dir,) = run_dirs(tmp_path, "ensemble")
    ens = record(ens_dir)
    assert len(ens["members"]) == 2
    assert ens["metrics"]["final"]["test/acc"] >= min(m["test/acc"] for m in ens["members"]) - 0.01


def test_imdb_multi_output_beats_each_heads_baseline(data_args, tmp_path):
    dlwp("train", "task=imdb_multi_output", "data.subset=3000", "trainer.max_epochs=4", *data_args["imdb"],
         runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "imdb_multi_output")
    rec = _learned(run_dir)
    final, base = rec["metrics"]["final"], rec["baselines"]
    assert final["test/sentiment/acc"] > base["sentiment/majority_acc"] + 0.1
    assert final["test/rating/mae"] < base["rating/mean_target_mae"] - 0.3
    assert final["test/rating_class/acc"] > base["rating_class/majority_acc"] + 0.03


def test_imdb_multi_output_with_the_conv1d_encoder_learns_every_head(data_args, tmp_path):
    """Book 7.1.3's listing shape (a 1D-convnet encoder, one head per output) on real reviews."""
    if data_args["imdb"] == ["data.source=synthetic"]:
        pytest.skip("the data mirror's IMDB reviews are absent")
    dlwp("train", "task=imdb_multi_output_conv1d", "data.subset=4000", "data.maxlen=150", "trainer.max_epochs=4",
         "task.optimizer.lr=1e-3", *data_args["imdb"], runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "imdb_multi_output_conv1d")
    rec = _learned(run_dir)
    final, base = rec["metrics"]["final"], rec["baselines"]
    assert final["test/sentiment/acc"] > base["sentiment/majority_acc"] + 0.15
    assert final["test/rating/mae"] < base["rating/mean_target_mae"] - 0.5
    assert final["test/rating_class/acc"] > base["rating_class/majority_acc"] + 0.05
