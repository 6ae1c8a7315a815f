"""`dlwp report`: figures and summary.md of hand-written run and sweep directories (no training needed)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from dlwp import report

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------ run directories


def write_run(
    run_dir: Path,
    rows: list[dict[str, float]] | None,
    *,
    task: str = "mnist_dense",
    section: str = "2.1",
    seed: int = 42,
    status: str = "completed",
    test: dict[str, float] | None = None,
    reference: dict[str, float] | None = None,
    monitor: str = "val/loss",
    config: dict[str, Any] | None = None,
    error: str | None = None,
) -> Path:
    """A run directory as `dlwp train` leaves it: run.json, config.yaml and (if rows) metrics.csv."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = {
        "task": {"name": task, "section": section, "monitor": monitor, "reference": reference or {}},
        "model": {"hidden": [512], "dropout": 0.0},
        "trainer": {"max_epochs": 5},
        "paths": {"root": "/somewhere", "runs_dir": str(run_dir.parent)},
        "seed": seed,
    }
    for key, value in (config or {}).items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    record: dict[str, Any] = {
        "kind": "train",
        "status": status,
        "run_dir": str(run_dir),
        "command": ["dlwp", "train", f"task={task}", f"seed={seed}"],
        "task": task,
        "section": section,
        "seed": seed,
    }
    if rows:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with open(run_dir / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    if status == "completed" and rows:
        best = {}
        for key in (k for k in rows[0] if "/" in k and not k.startswith(("time/", "lr/"))):  # as record.best_of
            pick = min if key.endswith(("loss", "mae")) else max
            row = pick(rows, key=lambda r, k=key: r[k])
            best[key] = {"value": row[key], "epoch": row["epoch"]}
        record["metrics"] = {"final": {**rows[-1], **(test or {})}, "best": best}
    if error:
        record["error"] = error
    (run_dir / "run.json").write_text(json.dumps(record))
    return run_dir


def classification_rows(epochs: int = 5, shift: float = 0.0) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "train/acc": round(0.80 + 0.03 * e + shift, 4),
            "train/loss": round(1.0 / e + shift, 4),
            "val/acc": round(0.78 + 0.02 * e + shift, 4),
            "val/loss": round(1.1 / e + 0.05 + shift, 4),
            "time/epoch_s": 0.5,
        }
        for e in range(1, epochs + 1)
    ]


def regression_rows(epochs: int = 6) -> list[dict[str, float]]:
    return [
        {"epoch": e, "train/loss": 60 / e, "train/mae": 6 / e + 1.5, "val/loss": 70 / e + 5, "val/mae": 7 / e + 2.2}
        for e in range(1, epochs + 1)
    ]


# ------------------------------------------------------------------------------------ checks


def assert_png(path: Path, colour: str | None = None) -> None:
    """A real, non-blank figure: PNG signature, varied pixels, several colours, and `colour` drawn."""
    import matplotlib.image

    assert path.is_file(), f"missing {path.name}"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    rgb = matplotlib.image.imread(path)[..., :3]
    assert rgb.std() > 0.05, f"{path.name} looks blank"
    assert len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 20
    if colour is not None:
        target = np.array({"blue": (0, 0, 1), "tab:orange": (1.0, 0.498, 0.055)}[colour])
        near = np.abs(rgb - target).max(axis=-1) < 0.1
        assert near.sum() > 50, f"no {colour} curve in {path.name}"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dlwp.report", *map(str, args)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


# ------------------------------------------------------------------------------------ single runs


def test_classification_run_gets_book_figures_and_summary(tmp_path):
    run_dir = write_run(
        tmp_path / "run",
        classification_rows(),
        test={"test/loss": 0.07, "test/acc": 0.98},
        reference={"test/acc": 0.9777, "train/acc": 0.989},
    )
    summary = report.report(run_dir)

    out = run_dir / "report"
    assert summary == out / "summary.md"
    assert sorted(p.name for p in out.glob("*.png")) == ["acc.png", "loss.png"]
    assert_png(out / "loss.png", "blue")  # the book's colours: 'bo' training, 'b' validation
    assert_png(out / "acc.png", "blue")
    text = summary.read_text()
    assert "# mnist_dense (book 2.1)" in text
    assert "| Status | completed |" in text and "| Seed | 42 |" in text and "| Epochs | 5 |" in text
    assert "| test/acc | 0.9800 | – | 0.9777 |" in text  # ours next to the book's
    assert "| train/acc | 0.9500 | 0.9500 (epoch 5) | 0.9890 |" in text
    assert "| val/loss | 0.2700 | 0.2700 (epoch 5) | – |" in text
    assert "time/epoch_s" not in text
    assert "![loss](loss.png)" in text and "![acc](acc.png)" in text
    assert "dlwp train task=mnist_dense seed=42" in text


def test_a_scheduled_rate_gets_a_figure_of_its_own(tmp_path):
    rows = classification_rows()
    for row, lr in zip(rows, (1e-3, 1e-3, 1e-4, 1e-4, 1e-5), strict=True):
        row["lr/main"] = lr  # metrics.csv as a plateau schedule leaves it
    run_dir = write_run(tmp_path / "run", rows)
    text = report.report(run_dir).read_text()
    out = run_dir / "report"
    assert sorted(p.name for p in out.glob("*.png")) == ["acc.png", "loss.png", "lr.png"]
    assert_png(out / "lr.png", "blue")
    assert "![lr](lr.png)" in text
    assert "| lr/main | 1e-05 | – | – |" in text, "the last epoch's rate, legible, and no best epoch for it"


def test_regression_run_plots_mae_with_the_book_line(tmp_path):
    run_dir = write_run(
        tmp_path / "run", regression_rows(), task="boston_housing", section="3.6", reference={"test/mae": 2.5}
    )
    out = tmp_path / "elsewhere"
    report.report(run_dir, out)

    assert sorted(p.name for p in out.glob("*.png")) == ["loss.png", "mae.png"]
    assert_png(out / "loss.png", "blue")
    assert_png(out / "mae.png", "blue")
    text = (out / "summary.md").read_text()
    assert "# boston_housing (book 3.6)" in text
    assert "| val/mae | 3.3667 | 3.3667 (epoch 6) | – |" in text
    assert "| test/mae | – | – | 2.5000 |" in text  # a book number we did not measure still shows
    assert not (run_dir / "report").exists()


def test_book_reference_is_a_dashed_line_labelled_book():
    _fig, ax = report._axes()
    report._draw_reference(ax, {"test/acc": 0.9777, "train/acc": 0.989, "test/loss": 0.07}, "acc")

    lines = ax.get_lines()
    assert [line.get_linestyle() for line in lines] == ["--", "--"]
    assert [line.get_ydata()[0] for line in lines] == [0.989, 0.9777]  # train before test
    assert all(label.startswith("book") for label in ax.get_legend_handles_labels()[1])


def test_unfinished_run_is_reported_from_its_last_epoch(tmp_path):
    run_dir = write_run(tmp_path / "run", classification_rows(3), status="failed", error="RuntimeError: boom")
    text = report.report(run_dir).read_text()

    assert "| Status | failed (RuntimeError: boom) |" in text
    assert "last recorded epoch (3)" in text
    assert "| val/acc | 0.8400 | 0.8400 (epoch 3) | – |" in text


# ------------------------------------------------------------------------------------ sweeps


def test_seed_sweep_plots_mean_and_std_bands(tmp_path):
    sweep = tmp_path / "multirun" / "2026-01-01_00-00-00"
    for job, seed in enumerate((0, 1, 2)):
        rows = classification_rows(shift=0.02 * (job - 1))  # final val/acc 0.86, 0.88, 0.90
        write_run(sweep / str(job), rows, seed=seed, test={"test/acc": 0.90 + 0.01 * job}, config={"paths.root": job})
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": ["seed=0,1,2"]}}}))
    report.report(sweep)

    out = sweep / "report"
    assert sorted(p.name for p in out.glob("*.png")) == ["acc.png", "loss.png"]
    assert_png(out / "loss.png", "tab:orange")  # validation band
    assert_png(out / "acc.png", "tab:orange")
    text = (out / "summary.md").read_text()
    assert "Jobs differ by: `seed`" in text  # paths.* differ too, and are ignored
    assert "| `1` | seed=1 | completed | 5 | 0.2700 | 0.2700 (5) | 0.9100 |" in text
    assert "Mean ± std over seeds (n = 3, sample std)" in text
    assert "| val/acc | 0.8800 | 0.0200 | 3 | – |" in text  # mean(0.86, 0.88, 0.90), stdev 0.02
    assert "| test/acc | 0.9100 | 0.0100 | 3 | – |" in text
    assert "Not plotted" not in text


def test_hyperparameter_sweep_overlays_jobs_and_lists_the_failed_one(tmp_path):
    sweep = tmp_path / "sweep"
    write_run(sweep / "0", classification_rows(), config={"model.hidden": [16]}, test={"test/acc": 0.5})
    write_run(sweep / "1", classification_rows(shift=0.05), config={"model.hidden": [512]}, test={"test/acc": 0.9})
    write_run(sweep / "2", classification_rows(2), config={"model.hidden": [64]}, status="failed", error="Boom: x|y")
    write_run(sweep / "3", None, config={"model.hidden": [8]}, status="running")
    (sweep / "notes").mkdir()  # not a job: no run.json
    report.report(sweep)

    out = sweep / "report"
    assert sorted(p.name for p in out.glob("*.png")) == ["acc.png", "loss.png"]
    assert_png(out / "loss.png")
    assert_png(out / "acc.png")
    text = (out / "summary.md").read_text()
    assert "Jobs differ by: `model.hidden`" in text
    assert "Jobs: 4 (2 completed and plotted, 2 not plotted)" in text
    assert "| `0` | model.hidden=[16] | completed | 5 | 0.2700 | 0.2700 (5) | 0.5000 |" in text
    assert "| `1` | model.hidden=[512] | completed | 5 | 0.3200 | 0.3200 (5) | 0.9000 |" in text
    assert "| `2` | model.hidden=[64] | failed (Boom: x\\|y) | 2 | 0.6000 | 0.6000 (2) | – |" in text
    assert "| `3` | model.hidden=[8] | running | 0 | – | – | – |" in text
    assert "- `2/` (model.hidden=[64]): failed (Boom: x|y)" in text
    assert "- `3/` (model.hidden=[8]): running; no metrics.csv" in text
    assert "Mean ± std" not in text
    assert "notes" not in text


def test_overlay_legend_names_the_distinguishing_overrides(tmp_path):
    runs = [
        write_run(tmp_path / str(i), classification_rows(), config={"model.hidden": [h], "model.dropout": d})
        for i, (h, d) in enumerate(((16, 0.0), (16, 0.5), (512, 0.5)))
    ]
    loaded = [report.load_run(r) for r in runs]
    differing = report.differing_keys(loaded)

    assert differing == ["model.dropout", "model.hidden"]
    assert [report.job_label(r, differing) for r in loaded] == [
        "model.dropout=0.0 model.hidden=[16]",
        "model.dropout=0.5 model.hidden=[16]",
        "model.dropout=0.5 model.hidden=[512]",
    ]
    assert report.label_keys(["model.hidden", "task.name", "model.in_features"], ["task", "seed"]) == ["task.name"]


def test_sweep_without_any_completed_job_still_gets_a_summary(tmp_path):
    sweep = tmp_path / "sweep"
    write_run(sweep / "0", None, seed=0, status="failed", error="ValueError: bad")
    write_run(sweep / "1", None, seed=1, status="failed", error="ValueError: bad")
    text = report.report(sweep).read_text()

    assert not list((sweep / "report").glob("*.png"))
    assert "Jobs: 2 (0 completed and plotted, 2 not plotted)" in text
    assert "- `0/` (seed=0): failed (ValueError: bad); no metrics.csv" in text


# ------------------------------------------------------------------------------------ the command


def test_cli_writes_the_report_without_importing_torch(tmp_path):
    run_dir = write_run(tmp_path / "run", classification_rows(), test={"test/acc": 0.98})
    code = (
        "import sys\nfrom dlwp.report import main\nrc = main(sys.argv[1:])\n"
        "heavy = sorted(m for m in ('torch', 'lightning') if m in sys.modules)\n"
        "assert not heavy, heavy\nsys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(run_dir), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert_png(tmp_path / "out" / "loss.png")


def test_cli_end_to_end_on_a_run_and_a_sweep(tmp_path):
    run_dir = write_run(tmp_path / "run", classification_rows())
    proc = run_cli(run_dir)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout
    assert (run_dir / "report" / "summary.md").is_file()

    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        write_run(sweep / str(seed), classification_rows(shift=0.01 * seed), seed=seed)
    proc = run_cli(sweep, "--out", tmp_path / "sweep-report")
    assert proc.returncode == 0, proc.stderr
    assert_png(tmp_path / "sweep-report" / "loss.png")
    assert "Mean ± std over seeds (n = 2" in (tmp_path / "sweep-report" / "summary.md").read_text()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing", "no such directory"),
        (lambda tmp: tmp, "not a run directory (no run.json) nor a sweep directory"),
        (lambda tmp: write_run(tmp / "run", None, status="failed"), "no metrics.csv (status: failed)"),
        (lambda tmp: (tmp / "file.txt", (tmp / "file.txt").write_text("x"))[0], "not a directory"),
    ],
    ids=["missing", "empty-dir", "no-metrics", "a-file"],
)
def test_cli_bad_path_exits_2_with_one_clear_line(tmp_path, make, message):
    proc = run_cli(make(tmp_path))

    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlwp report: error: "), proc.stderr
    assert message in lines[0]
    assert proc.stdout == ""


def test_main_returns_2_for_usage_errors(capsys):
    assert report.main([]) == 2
    assert "usage: dlwp report" in capsys.readouterr().err
    assert report.main(["--help"]) == 0
