"""`results/` holds the records behind every published number, and the docs are generated from
them: RESULTS.md and the README's results table cannot drift from the evidence."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from dlwp.reproduce import data_difference, find_records, read_record

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


@pytest.fixture(scope="module")
def bench():
    """bench/reproduce.py, the generator (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("bench_reproduce", ROOT / "bench" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_docs_are_what_the_committed_records_generate(bench):
    results_md, table = bench.render(RESULTS, bench.SPECS)
    assert (ROOT / "docs" / "RESULTS.md").read_text() == results_md, "regenerate: python bench/reproduce.py"
    readme = (ROOT / "README.md").read_text()
    assert bench.with_readme_table(readme, table) == readme, "regenerate: python bench/reproduce.py"
    assert "| `mnist_dense` | final:test/acc | 0.9777 |" in table  # the table is really there


def test_a_changed_record_changes_the_docs(bench, tmp_path):
    """The check above can fail: one altered number in one record gives other docs."""
    shutil.copytree(RESULTS / "mnist_dense", tmp_path / "mnist_dense")
    spec = [s for s in bench.SPECS if s.name == "mnist_dense"]
    before, _ = bench.render(tmp_path, spec)
    run_json = sorted(tmp_path.rglob("run.json"))[0]
    rec = json.loads(run_json.read_text())
    rec["metrics"]["final"]["test/acc"] -= 0.01
    run_json.write_text(json.dumps(rec))
    after, _ = bench.render(tmp_path, spec)
    assert before != after and "0.9765 ± " in after


def test_results_keep_only_the_small_text_part_of_each_record(bench):
    allowed = {*bench.RECORD_FILES, *(f"{name}.gz" for name in bench.PACKED_FILES)}
    files = [p for p in RESULTS.rglob("*") if p.is_file()]
    assert len(files) > 100
    assert {p.name for p in files} <= allowed  # never checkpoints, figures or samples
    assert max(p.stat().st_size for p in files) < 256_000
    runs = sorted(RESULTS.glob("*/multirun/*/*/run.json"))
    assert runs and all(json.loads(p.read_text())["status"] == "completed" for p in runs)
    assert all((p.parent / "metrics.csv").is_file() or "kfold" in json.loads(p.read_text()) for p in runs)


def test_a_committed_record_names_data_that_the_mirror_has(mnist_data_dir):
    """What `dlwp reproduce results/...` checks first on a fresh clone: the packed data listing is
    read and the recorded bytes are found under another data folder than the recording one."""
    (run_json,) = find_records(RESULTS / "mnist_dense" / "multirun" / "2026-11-29_20-50-17" / "0")
    record = read_record(run_json)
    recorded_dir = str(Path(record["data"]["files"][0]["path"]).parents[1])
    assert data_difference(record, run_json.parent, recorded_dir, mnist_data_dir) is None
    cats = sorted(RESULTS.glob("cats_dogs_scratch/multirun/*/0/run.json"))[-1]
    from dlwp.reproduce import recorded_files

    assert len(recorded_files(read_record(cats), cats.parent)) == 4000  # from data.sha256.gz


def test_export_pools_new_seeds_with_the_committed_records(bench, tmp_path):
    """Seeds 1-2 run on a fresh machine (whose runs/ lacks seed 0's run) join the committed seed 0
    instead of replacing it; a later run of a seed replaces that seed's record."""
    committed = ROOT / "results" / "imdb_conv1d" / "multirun"
    old, new = committed / "2026-11-30_06-32-42", committed / "2026-11-30_23-07-51"  # seed 0; seeds 1, 2
    results, runs = tmp_path / "results", tmp_path / "runs"
    shutil.copytree(old, results / "imdb_conv1d" / "multirun" / old.name)
    shutil.copytree(new, runs / "imdb_conv1d" / "multirun" / new.name)
    spec = [s for s in bench.SPECS if s.name == "imdb_conv1d"]

    def seeds() -> dict[str, list[int]]:
        return {sweep.name: sorted(json.loads((job / "run.json").read_text())["seed"] for job in bench.jobs(sweep))
                for sweep in sorted((results / "imdb_conv1d" / "multirun").iterdir())}  # fmt: skip

    bench.export(runs, results, spec)
    assert seeds() == {old.name: [0], new.name: [1, 2]}
    bench.export(runs, results, spec)  # exporting again changes nothing
    assert seeds() == {old.name: [0], new.name: [1, 2]}
    rerun = runs / "imdb_conv1d" / "multirun" / "2026-12-01_00-00-00"
    shutil.copytree(old, rerun)  # a later run of seed 0
    bench.export(runs, results, spec)
    assert seeds() == {new.name: [1, 2], rerun.name: [0]}
