"""Jena climate windows (book 6.3): index arithmetic against hand-computed windows, statistics from
training rows only, the naive baseline, and clear errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from conftest import MIRROR
from dlwp.data.jena import JenaDataModule
from dlwp.errors import ConfigError, DataMissingError

HEADER = '"Date Time","p (mbar)","T (degC)","rh (%)"'


def write_series(path, rows: int, empty_rh_at: int | None = None):
    """A Jena-format csv: p = row, T = 10 * row, rh = -row (so every value names its row)."""
    lines = [HEADER]
    for r in range(rows):
        rh = "" if r == empty_rh_at else f"{-r:.2f}"
        lines.append(f"01.01.2009 00:{r % 60:02d}:00,{r:.2f},{10 * r:.2f},{rh}")
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    return path


def module(path, **kwargs) -> JenaDataModule:
    options = {"lookback": 6, "step": 2, "delay": 3, "train_rows": [0, 40], "val_rows": [30, 60],
               "test_rows": [50, 80], "batch_size": 4, "eval_batch_size": 4} | kwargs  # fmt: skip
    dm = JenaDataModule(path=str(path), **options)
    dm.setup("fit")
    return dm


def test_windows_and_targets_are_the_books_index_arithmetic(tmp_path):
    dm = module(write_series(tmp_path / "j.csv.gz", 80))
    ends, _ = dm.splits["train"]
    # the book's rows: i in [min_index + lookback, max_index) with max_index = stop - delay
    assert ends[0] == 6 and ends[-1] == 36 and len(ends) == 31
    x, y = dm.batch_transform((ends[[0, -1]], dm.splits["train"][1][[0, -1]]))
    raw = x * torch.tensor(dm.std, dtype=torch.float32) + torch.tensor(dm.mean, dtype=torch.float32)
    # samples = data[i - lookback : i : step]: rows 0, 2, 4 for i = 6; the target is T at i + delay
    assert torch.allclose(raw[0, :, 0], torch.tensor([0.0, 2.0, 4.0]), atol=1e-4)
    assert torch.allclose(raw[1, :, 0], torch.tensor([30.0, 32.0, 34.0]), atol=1e-4)
    target_t = y * float(dm.std[1]) + float(dm.mean[1])
    assert torch.allclose(target_t, torch.tensor([90.0, 390.0]), atol=1e-3)
    val, test = dm.splits["val"][0], dm.splits["test"][0]
    assert (val[0], val[-1], test[0], test[-1]) == (36, 56, 56, 76)
    # statistics from the rows training windows read (0 .. 36), not from validation or test rows
    assert dm.mean[0] == pytest.approx(np.arange(37).mean()) and dm.std[0] == pytest.approx(np.arange(37).std())


def test_blocks_keep_every_window_inside_one_block(tmp_path):
    """`data=jena_partial_blocks`'s form: a split as a list of [start, stop) blocks."""
    path = write_series(tmp_path / "j.csv.gz", 120)
    dm = module(path, train_rows=[[0, 30], [60, 100]], val_rows=[[30, 60]], test_rows=[[100, 120]])
    train = dm.splits["train"][0].tolist()
    # lookback 6, delay 3: ends in [start + 6, stop - 3) of each block, none across the edge at 30..60
    assert train == list(range(6, 27)) + list(range(66, 97))
    assert dm.splits["val"][0].tolist() == list(range(36, 57))
    assert dm.splits["test"][0].tolist() == list(range(106, 117))
    # statistics from the rows the training windows read: 0..26 and 60..96
    rows = np.r_[0:27, 60:97]
    assert dm.mean[0] == pytest.approx(rows.mean()) and dm.std[0] == pytest.approx(rows.std())
    with pytest.raises(ConfigError, match=r"the val split, rows \[30, 35\), is too short"):
        module(path, train_rows=[[0, 30]], val_rows=[[30, 35], [35, 60]], test_rows=[[100, 120]])
    with pytest.raises(ConfigError, match=r"data.train_rows=.*give \[start, stop\] or a list of \[start, stop\]"):
        module(path, train_rows=[[0, 30, 40]])
    with pytest.raises(ConfigError, match=r"data.test_rows: \[100, 130\) must lie within the 120 rows"):
        module(path, test_rows=[[100, 130]])


def test_the_naive_baseline_is_the_last_temperature_of_each_window(tmp_path):
    dm = module(write_series(tmp_path / "j.csv.gz", 80))
    ends = dm.splits["val"][0].numpy()
    # T = 10 * row: the last sample of a window is row i - step, the target row i + delay
    expected = np.abs(10.0 * (ends - 2) - 10.0 * (ends + 3)).mean() / dm.std[1]
    assert dm.baselines()["naive_val_mae"] == pytest.approx(expected, rel=1e-5)
    assert dm.baselines()["naive_val_mae_degC"] == pytest.approx(50.0, rel=1e-5)
    assert dm.baselines()["naive_train_mae"] * dm.std[1] == pytest.approx(50.0, rel=1e-5)  # what training must beat
    dm = module(write_series(tmp_path / "k.csv.gz", 80), batches_per_call=1)
    served = torch.cat([targets for _, targets in dm.train_dataloader()])
    stored = dm.splits["train"][1]
    assert not torch.equal(served, stored[: len(served)]), "training windows come shuffled"
    assert set(served.tolist()) <= set(stored.tolist())
    assert torch.equal(torch.cat([t for _, t in dm.val_dataloader()]), dm.splits["val"][1]), "validation in order"


def test_settings_that_cannot_work_are_named(tmp_path):
    path = write_series(tmp_path / "j.csv.gz", 80, empty_rh_at=45)
    with pytest.raises(DataMissingError, match=r"column 'rh \(%\)' is empty in 1 used rows .* nothing is imputed"):
        module(path)
    module(path, columns=["p (mbar)", "T (degC)"])  # without the empty column it loads
    with pytest.raises(ConfigError, match=r"too short for data.lookback=30"):
        module(path, columns=["p (mbar)", "T (degC)"], lookback=30)
    with pytest.raises(ConfigError, match=r"\['wind'\] not in j.csv.gz"):
        module(path, columns=["T (degC)", "wind"])
    with pytest.raises(ConfigError, match="a step that divides it"):
        module(path, lookback=7, step=2)


def test_the_mirrors_partial_copy_loads_with_its_present_columns():
    path = MIRROR / "jena_climate" / "jena_climate_2009-01-01_2009-05-19_partial.csv.gz"
    if not path.is_file():
        pytest.skip("the data mirror's partial Jena copy is absent")
    dm = JenaDataModule(path=str(path), variant="partial", batch_size=128, eval_batch_size=128)
    dm.setup("fit")
    assert dm.sizes() == {"train": 6417, "val": 2416, "test": 2417}
    x, _ = dm.example_batch()
    assert x.shape == (2, 240, 7) and torch.isfinite(x).all()
    assert dm.baselines()["naive_val_mae"] == pytest.approx(0.7277, abs=1e-3)
    with pytest.raises(DataMissingError, match=r"column 'Tpot \(K\)' is empty"):
        JenaDataModule(path=str(path), variant="partial", columns=["T (degC)", "Tpot (K)"]).setup("fit")
    # the calendar blocks (conf/data/jena_partial_blocks.yaml): validation and test inside the training season
    from omegaconf import OmegaConf

    from conftest import ROOT

    blocks = OmegaConf.load(ROOT / "conf/data/jena_partial_blocks.yaml")
    dm = JenaDataModule(path=str(path), variant="partial", **{k: blocks[k] for k in ("train_rows", "val_rows",
                                                                                      "test_rows")})  # fmt: skip
    dm.setup("fit")
    assert dm.sizes() == {"train": 5916, "val": 1083, "test": 1083}
    assert dm.baselines()["naive_val_mae"] == pytest.approx(0.3223, abs=1e-3)
    assert abs(float(dm.splits["val"][1].mean())) < 1 and abs(float(dm.splits["test"][1].mean())) < 1, "no drift"


# -- the tasks --------------------------------------------------------------------------------------


def sine_series(path, rows: int = 3000):
    """Pressure a slow sine, temperature a faster one plus noise: its value a day ahead follows from
    the window (a learnable signal), while the last value of the window (the naive forecast) is off."""
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    temperature = 10 * np.sin(2 * np.pi * t / 40) + rng.normal(0, 0.3, rows)
    lines = [HEADER]
    lines += [f"01.01.2009 00:00:00,{1000 + np.sin(t_ / 300):.4f},{temperature[t_]:.4f},{50 + t_ % 7:.2f}" for t_ in t]
    path.write_text("\n".join(lines))
    return path


@pytest.mark.parametrize(
    ("task", "below", "extra"),
    [
        ("jena_dense", 0.5, ["trainer.max_epochs=4"]),
        ("jena_gru", 0.5, ["model.layers.0.units=16", "trainer.max_epochs=2"]),
        ("jena_gru_dropout", 0.5, ["trainer.max_epochs=2"]),
        ("jena_gru_stacked", 0.5, ["trainer.max_epochs=2"]),
        ("jena_gru_reversed", 0.5, ["trainer.max_epochs=2"]),
        ("jena_bigru", 0.5, ["trainer.max_epochs=2", "trainer.cpu_threads=1"]),
        # global max pooling keeps what the filters saw but not where: the phase of the series is
        # mostly lost (the book's point about 6.4's convnet), so it only beats the naive forecast
        ("jena_conv1d", 0.8, ["trainer.max_epochs=4", "data.lookback=240"]),
        ("jena_conv_gru", 0.5, ["trainer.max_epochs=2"]),
    ],
    ids=["dense", "gru", "gru-dropout", "gru-stacked", "gru-reversed", "bigru", "conv1d", "conv-gru"],
)
def test_a_series_with_a_learnable_future_is_learned_beyond_the_naive_forecast(task, below, extra, tmp_path):
    from conftest import dlwp, record, run_dirs

    path = sine_series(tmp_path / "sine.csv")
    dlwp("train", f"task={task}", f"data.path={path}", "data.columns=['p (mbar)','T (degC)','rh (%)']",
         "data.lookback=48", "data.step=2", "data.delay=10", "data.train_rows=[0,2000]", "data.val_rows=[2000,2500]",
         "data.test_rows=[2500,3000]", "data.val_batches=null", "data.steps_per_epoch=40", "data.batch_size=32",
         "task.optimizer.lr=3e-3", *extra, runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, task)
    rec = record(run_dir)
    naive = rec["baselines"]["naive_val_mae"]
    assert naive > 0.5, "the naive forecast is poor on this series"
    assert rec["metrics"]["best"]["val/mae"]["value"] < below * naive, (rec["metrics"]["best"], naive)
    if task == "jena_bigru":
        assert rec["device"]["torch_threads"] == 1, "trainer.cpu_threads reaches torch"
    if "gru" in task:  # the GRU ran its C loops (dlwp.model.native_rnn), and the record says which
        assert rec["native_loops"]["gru/f32"].startswith("keras_gru_f32_"), rec.get("native_loops")


def test_jena_naive_is_evaluated_not_trained_and_equals_the_baseline(tmp_path):
    """`jena_naive` (trainer.max_epochs=0): the network with nothing to learn, run through the same
    validation code as the models; its val MAE is the hand-computed naive baseline."""
    from conftest import dlwp, record, run_dirs

    path = sine_series(tmp_path / "sine.csv")
    data = [f"data.path={path}", "data.columns=['p (mbar)','T (degC)','rh (%)']", "data.lookback=48", "data.step=2",
            "data.delay=10", "data.train_rows=[0,2000]", "data.val_rows=[2000,2500]", "data.test_rows=[2500,3000]",
            "data.val_batches=null"]  # fmt: skip
    dlwp("train", "task=jena_naive", *data, runs=tmp_path)
    (run_dir,) = run_dirs(tmp_path, "jena_naive")
    rec = record(run_dir)
    assert rec["status"] == "completed"
    assert rec["metrics"]["final"]["val/mae"] == pytest.approx(rec["baselines"]["naive_val_mae"], rel=1e-5)
    assert "test/mae" in rec["metrics"]["final"] and not rec.get("checkpoints")
    assert (run_dir / "metrics.csv").read_text().splitlines()[1].startswith("0,")
    # the temperature column is checked; a network with nothing to learn is not "trained"
    out = dlwp("train", "task=jena_naive", *data, "model.layers.0.feature=0", runs=tmp_path, check=False)
    assert out.returncode != 0 and "'T (degC)' is feature 1 of data.columns: set its feature to 1" in out.stderr
    out = dlwp("train", "task=jena_naive", *data, "trainer.max_epochs=1", runs=tmp_path, check=False)
    assert out.returncode != 0 and "no trainable parameters; set trainer.max_epochs=0" in out.stderr
