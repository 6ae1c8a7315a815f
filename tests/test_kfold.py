"""K-fold validation (book 3.7): how folds are cut, how their results are aggregated, the real CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import statistics
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from conftest import MIRROR, dlwp, record, run_dirs
from dlwp.data.base import InMemoryDataModule, fold_bounds
from dlwp.errors import ConfigError
from dlwp.kfold import check, fold_config, mean_curve, mean_std, smooth_curve
from dlwp.record import read_metrics_csv

TASK = "boston_kfold"
SMOKE_EPOCHS = 20
FINAL = ["trainer.max_epochs=20", "data.batch_size=16"]


def final_override(overrides: list[str]) -> str:
    """`kfold.final=[...]` on a command line: each override quoted, since Hydra's grammar reads `=`."""
    return "kfold.final=[" + ",".join(f'"{o}"' for o in overrides) + "]"


def compose_train(*overrides: str):
    from hydra import compose, initialize_config_dir

    from dlwp.config.schema import register
    from dlwp.paths import conf_dir, register_resolvers

    register()
    register_resolvers()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose("train", overrides=list(overrides))


# --------------------------------------------------------------------------------------------- (a) folds


@pytest.mark.parametrize(("n", "k"), [(10, 2), (10, 3), (11, 4), (7, 7), (100, 9), (404, 4)])
def test_folds_are_disjoint_contiguous_in_order_and_cover_every_sample(n, k):
    class Indexed(InMemoryDataModule):
        def load(self):  # each sample's value is its index, and its label says which sample it is
            return {"train": (torch.arange(n), torch.arange(n) * 10)}

    seen: list[int] = []
    for fold in range(k):
        dm = Indexed(num_folds=k, fold=fold)
        dm.setup()
        (val_x, val_y), (train_x, train_y) = dm.splits["val"], dm.splits["train"]
        val, train = val_x.tolist(), train_x.tolist()
        assert val_y.tolist() == [10 * i for i in val] and train_y.tolist() == [10 * i for i in train]
        assert val == list(range(*fold_bounds(n, k, fold))) and val, "a fold is one contiguous slice, in order"
        assert train == [i for i in range(n) if i not in set(val)], "training part: the rest, in order"
        seen += val
    assert seen == list(range(n)), "the folds cover every training sample exactly once"


def test_book_folds_are_four_slices_of_101():
    assert [fold_bounds(404, 4, i) for i in range(4)] == [(0, 101), (101, 202), (202, 303), (303, 404)]


def test_boston_module_validates_on_the_fold_and_trains_on_the_rest():
    from dlwp.data.boston import BostonHousingDataModule

    full = BostonHousingDataModule(path="unused.npz", source="synthetic")
    full.setup()
    fold = BostonHousingDataModule(path="unused.npz", source="synthetic", num_folds=4, fold=2)
    fold.setup()
    assert fold.sizes() == {"train": 303, "val": 101, "test": 102}
    x, y = full.splits["train"]
    assert torch.equal(fold.splits["val"][1], y[202:303])
    assert torch.equal(fold.splits["train"][0], torch.cat([x[:202], x[303:]]))


# --------------------------------------------------------------------------------------------- (b) aggregation


def test_mean_curve_averages_each_epoch_over_the_folds_that_reached_it():
    a = [{"epoch": 1, "val/mae": 4.0, "train/mae": 9.0}, {"epoch": 2, "val/mae": 2.0}]
    b = [{"epoch": 1, "val/mae": 6.0, "train/mae": 9.0}, {"epoch": 2, "val/mae": 3.0}, {"epoch": 3, "val/mae": 1.0}]
    curve = mean_curve([a, b])
    assert [r["folds"] for r in curve] == [2, 2, 1]
    assert [r["val/mae"] for r in curve] == [5.0, 2.5, 1.0]
    assert curve[0]["val/mae_std"] == pytest.approx(statistics.stdev([4.0, 6.0]))
    assert "train/mae" not in curve[0], "only validation metrics are averaged"


def test_mean_std_is_the_sample_std_of_keys_every_fold_has():
    mean, std = mean_std([{"val/mae": 2.0, "val/loss": 1.0}, {"val/mae": 4.0}])
    assert mean == {"val/mae": 3.0} and std == {"val/mae": pytest.approx(math.sqrt(2.0))}


def test_smooth_curve_is_the_books_exponential_moving_average():
    def book_smooth_curve(points, factor=0.9):  # book 3.7, verbatim
        smoothed_points = []
        for point in points:
            if smoothed_points:
                previous = smoothed_points[-1]
                smoothed_points.append(previous * factor + point * (1 - factor))
            else:
                smoothed_points.append(point)
        return smoothed_points

    points = [5.0, 3.0, 4.0, 2.5, 2.0, 2.2]
    assert smooth_curve(points) == pytest.approx(book_smooth_curve(points))


# --------------------------------------------------------------------------------------------- config


def test_boston_kfold_task_is_the_book_protocol():
    cfg = compose_train(f"task={TASK}")
    assert cfg.kfold.k == 4, "conf/train.yaml must not reset `kfold` after the task set it (its _self_ is last)"
    assert list(cfg.kfold.final) == ["trainer.max_epochs=80", "data.batch_size=16"]
    assert (cfg.trainer.max_epochs, cfg.data.batch_size, cfg.data.val_size) == (100, 1, 0)
    assert (cfg.model.in_features, list(cfg.model.hidden), cfg.model.out_features) == (13, [64, 64], 1)
    assert (cfg.task.monitor, cfg.task.problem) == ("val/mae", "regression")
    assert dict(cfg.task.reference) == {"val/mae": 2.3838, "test/mae": 2.5532}


def test_fold_and_final_configs_follow_the_protocol():
    cfg = compose_train(f"task={TASK}", "kfold.k=4", final_override(FINAL), "data.source=synthetic")
    final, n = check(cfg)
    assert n == 404
    for i, fold in enumerate(fold_config(cfg, i) for i in range(4)):
        assert (fold.data.num_folds, fold.data.fold, fold.test, fold.task.monitor) == (4, i, False, "val/mae")
        assert (fold.trainer.max_epochs, fold.data.batch_size, fold.seed) == (100, 1, cfg.seed)
    assert (final.data.num_folds, final.test, final.task.monitor) == (0, True, "train/loss")
    assert (final.trainer.max_epochs, final.data.batch_size) == (20, 16)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([final_override(["trainer.max_epoch=3"])], "max_epoch"),
        (["kfold.final=[trainer.max_epochs]"], "key=value"),
        (["ckpt_path=last"], "cannot be resumed"),
    ],
)
def test_bad_kfold_requests_are_config_errors(overrides, message):
    cfg = compose_train(f"task={TASK}", "kfold.k=4", "data.source=synthetic", *overrides)
    with pytest.raises(ConfigError, match=message):
        check(cfg)


def test_a_data_module_without_folds_is_refused():
    cfg = compose_train(f"task={TASK}", "kfold.k=4", "data.source=synthetic")
    with open_dict(cfg):
        del cfg.data["num_folds"]
    with pytest.raises(ConfigError, match="no K-fold support"):
        check(cfg)


@pytest.mark.parametrize(("k", "message"), [(1, "at least 2 folds"), (405, "more than the 404 training samples")])
def test_bad_k_fails_at_start_up_with_exit_2_and_no_run_directory(tmp_path, k, message):
    proc = dlwp("train", f"task={TASK}", f"kfold.k={k}", "data.source=synthetic", runs=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert run_dirs(tmp_path, TASK) == [], "a run rejected at start-up leaves no directory behind"


# --------------------------------------------------------------------------------------------- (c) the real CLI


@pytest.fixture(scope="module", params=["real", "synthetic"])
def kfold_run(request, tmp_path_factory) -> Path:
    """One small K-fold run through the real CLI: 2 folds x 20 epochs, then a 20-epoch final model.
    `real`: on the mirror's Boston data (skips without it); `synthetic`: on the data module's
    synthetic source, on purpose, so that the K-fold machinery is checked on every machine."""
    if request.param == "real":
        data = [f"paths.data_dir={request.getfixturevalue('boston_data_dir')}"]
    else:
        data = ["data.source=synthetic"]
    runs = tmp_path_factory.mktemp(f"runs_{request.param}")
    args = [
        f"task={TASK}",
        "kfold.k=2",
        f"trainer.max_epochs={SMOKE_EPOCHS}",
        "data.batch_size=16",
        final_override(FINAL),
    ]
    dlwp("train", *args, *data, runs=runs)
    (run_dir,) = run_dirs(runs, TASK)
    return run_dir


def fold_histories(kfold_run: Path, k: int = 2) -> list[list[dict[str, float]]]:
    """Each fold's metrics.csv, as the fold's own run wrote it (not the K-fold record)."""
    return [read_metrics_csv(kfold_run / f"fold-{i}" / "metrics.csv") for i in range(k)]


def test_kfold_run_holds_every_fold_and_the_final_model(kfold_run):
    data = record(kfold_run)
    assert (data["kind"], data["status"]) == ("kfold", "completed") and data["wall_time_s"] > 0
    for name in ("fold-0", "fold-1", "final"):
        sub = record(kfold_run / name)
        assert sub["status"] == "completed" and (kfold_run / name / "metrics.csv").is_file()
    folds = data["kfold"]["folds"]
    assert [Path(f["run_dir"]).name for f in folds] == ["fold-0", "fold-1"]
    assert [f["val_range"] for f in folds] == [[0, 202], [202, 404]]
    assert Path(data["kfold"]["final"]["run_dir"]).name == "final"
    # the K-fold record names the data every one of its runs read, and it is what the run was given
    for name in ("fold-1", "final"):
        assert data["data"] == {k: v for k, v in record(kfold_run / name)["data"].items() if k != "sizes"}
    if data["data"]["source"] == "real":
        (read,) = data["data"]["files"]
        mirror = MIRROR / "boston_housing" / "boston_housing.npz"
        assert (read["dataset"], read["file"]) == ("boston_housing", "boston_housing/boston_housing.npz")
        assert Path(read["path"]).resolve() == mirror.resolve()
        assert read["sha256"] == hashlib.sha256(mirror.read_bytes()).hexdigest()
    else:
        assert data["data"]["source"] == "synthetic" and data["data"]["files"] == []
    # each fold validates on its 202 samples and trains on the other 202 (its test split is loaded, unused);
    # the final model trains on all 404
    for i in range(2):
        assert record(kfold_run / f"fold-{i}")["data"]["sizes"] == {"train": 202, "val": 202, "test": 102}
    assert record(kfold_run / "final")["data"]["sizes"] == {"train": 404, "test": 102}
    fold_cfg = (kfold_run / "fold-1" / "config.yaml").read_text()
    assert "num_folds: 2" in fold_cfg and "fold: 1" in fold_cfg and "test: false" in fold_cfg
    assert not any(k.startswith("test/") for k in record(kfold_run / "fold-0")["metrics"]["final"])


def test_kfold_learns_better_than_the_mean_target(kfold_run):
    data = record(kfold_run)
    baseline = record(kfold_run / "final")["baselines"]["mean_target_mae"]
    assert data["kfold"]["mean"]["val/mae"] < 0.8 * baseline
    assert data["kfold"]["final"]["metrics"]["test/mae"] < 0.8 * baseline
    final_run = record(kfold_run / "final")["metrics"]["final"]  # the final model's own record
    assert data["kfold"]["final"]["metrics"]["test/mae"] == final_run["test/mae"]
    assert data["metrics"]["final"]["test/mae"] == final_run["test/mae"]
    assert final_run["epoch"] == 20 and len(read_metrics_csv(kfold_run / "final" / "metrics.csv")) == 20


def test_recorded_mean_and_std_are_those_of_the_folds_metrics(kfold_run):
    """Every aggregate of run.json and kfold_curve.csv, recomputed here from the folds' own metrics.csv."""
    data = record(kfold_run)
    histories = fold_histories(kfold_run)
    last = [h[-1] for h in histories]
    assert all([row["epoch"] for row in h] == list(range(1, SMOKE_EPOCHS + 1)) for h in histories)
    for key in ("val/loss", "val/mae"):
        values = [row[key] for row in last]
        mean = statistics.fmean(values)
        assert data["kfold"]["mean"][key] == pytest.approx(mean, abs=1e-6)
        assert data["kfold"]["std"][key] == pytest.approx(statistics.stdev(values), abs=1e-6)
        assert data["metrics"]["final"][key] == pytest.approx(mean, abs=1e-6), "metrics.final: the K-fold mean"
        for i, fold in enumerate(data["kfold"]["folds"]):
            assert fold["final"][key] == pytest.approx(last[i][key], abs=1e-6)
            assert fold["epochs"] == SMOKE_EPOCHS
        best = [min(row[key] for row in h) for h in histories]
        assert data["kfold"]["best_mean"][key] == pytest.approx(statistics.fmean(best), abs=1e-6)
    with open(kfold_run / "kfold_curve.csv", newline="") as f:
        curve = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in curve] == list(range(1, SMOKE_EPOCHS + 1))
    assert [int(r["folds"]) for r in curve] == [2] * SMOKE_EPOCHS
    mean_mae = []
    for epoch, row in enumerate(curve):
        for key in ("val/loss", "val/mae"):
            values = [h[epoch][key] for h in histories]
            assert float(row[key]) == pytest.approx(statistics.fmean(values), abs=1e-5)
            assert float(row[f"{key}_std"]) == pytest.approx(statistics.stdev(values), abs=1e-5)
        mean_mae.append(statistics.fmean(h[epoch]["val/mae"] for h in histories))
    best = data["metrics"]["best"]["val/mae"]  # the best epoch of the mean curve, as the book reads it
    assert best["value"] == pytest.approx(min(mean_mae), abs=1e-5)
    assert best["epoch"] == 1 + min(range(SMOKE_EPOCHS), key=mean_mae.__getitem__)


def test_kfold_figure_is_drawn(kfold_run):
    from matplotlib.image import imread

    path = kfold_run / "kfold.png"
    assert record(kfold_run)["kfold"]["figure"] == "kfold.png"
    pixels = imread(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 2 * pixels.shape[0], "two panels: raw and smoothed"
    assert pixels[..., :3].std() > 0.05, "the figure is not blank"


def test_run_json_is_valid_json_with_paths_of_every_run(kfold_run):
    text = (kfold_run / "run.json").read_text()
    kfold = json.loads(text)["kfold"]
    assert [f["run_dir"] for f in kfold["folds"]] == [str(kfold_run / "fold-0"), str(kfold_run / "fold-1")]
    assert kfold["final"]["run_dir"] == str(kfold_run / "final")


def test_kfold_refuses_a_multi_process_trainer(tmp_path):
    proc = dlwp("train", "task=boston_kfold", "trainer=ddp_cpu", "data.source=synthetic", runs=tmp_path, check=False)
    assert proc.returncode == 2 and "multi-process trainer" in proc.stderr and "Traceback" not in proc.stderr
