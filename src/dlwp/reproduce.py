"""`dlwp reproduce RUN`: re-run exactly what a run record describes, and compare the metrics.

Before anything runs, the conditions are checked against the record, and a difference stops the
command with what differs and how to fix it (never a silent re-run under other conditions):

- the code: the checkout's commit and uncommitted diff must be the record's (`git.diff` beside a
  dirty run's record); `--any-commit` re-runs on this checkout anyway and says so;
- the data: every file the run read must have the recorded sha256 (the paths are mapped from
  the record's `paths.data_dir` to this machine's);
- the task must still exist; package versions are compared and differences reported, not fatal.

The re-run is `dlwp train` with the record's own overrides and seed (a credential the record had
redacted is left out: no result depends on one), and its record links to the original
(`reproduces`). The command ends with recorded vs reproduced metrics and a verdict: identical,
within `--tolerance`, or different (exit 1).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from dlwp.errors import DlwpError
from dlwp.redact import REDACTED

PROG = "dlwp reproduce"


class ReproduceError(DlwpError):
    """The record cannot be reproduced here as it stands."""


def find_records(path: Path) -> list[Path]:
    """run.json files: of a run directory, a run.json itself, or each job of a sweep directory."""
    path = path.expanduser()
    if path.is_file() and path.name == "run.json":
        return [path]
    if (path / "run.json").is_file():
        return [path / "run.json"]
    jobs = sorted(path.glob("*/run.json"), key=lambda p: (len(p.parent.name), p.parent.name))
    if jobs:
        return jobs
    raise ReproduceError(f"{path}: no run.json there (give a run directory, its run.json or a sweep directory)")


def read_maybe_packed(path: Path) -> str | None:
    """A record's text file, or its gzipped copy (`results/` keeps diffs and data listings packed)."""
    if path.is_file():
        return path.read_text()
    packed = path.with_name(path.name + ".gz")
    return gzip.decompress(packed.read_bytes()).decode() if packed.is_file() else None


def read_record(run_json: Path) -> dict[str, Any]:
    try:
        record = json.loads(run_json.read_text())
    except (OSError, ValueError) as err:
        raise ReproduceError(f"{run_json}: not a readable run record ({err})") from None
    if record.get("kind") != "train":
        raise ReproduceError(f"{run_json}: a `{record.get('kind')}` record; only training runs are reproduced")
    return record


# -- the conditions ------------------------------------------------------------------------------


def code_difference(record: dict[str, Any], run_dir: Path, root: Path) -> str | None:
    """None when this checkout is the recorded code (commit, and the same uncommitted diff), else
    what differs and the git commands that would restore it."""
    from dlwp.record import git_diff, git_state
    from dlwp.redact import redact_text

    recorded, now = record.get("git") or {}, git_state(root)
    if recorded.get("commit") is None:
        return "the record names no git commit (it was made outside a git checkout)"
    if now["commit"] is None:
        return f"this is not a git checkout; the run was made at commit {recorded['commit']}"
    recorded_diff = (read_maybe_packed(run_dir / "git.diff") or "") if recorded.get("dirty") else ""
    current_diff = redact_text(git_diff(root)) if now["dirty"] else ""
    if now["commit"] == recorded["commit"] and current_diff == recorded_diff:
        return None
    parts = []
    if now["commit"] != recorded["commit"]:
        changed = _changed_files(root, recorded["commit"])
        parts.append(f"the run was made at commit {recorded['commit'][:12]}, this checkout is at {now['commit'][:12]}"
                     + (f" ({changed})" if changed else ""))  # fmt: skip
    if current_diff != recorded_diff:
        if recorded_diff and not current_diff:
            parts.append("the run had uncommitted changes (its git.diff) that this checkout lacks")
        elif current_diff and not recorded_diff:
            parts.append("this checkout has uncommitted changes the run did not have")
        else:
            parts.append("the uncommitted changes differ from the run's git.diff")
    apply = (f"git apply {run_dir / 'git.diff'}" if (run_dir / "git.diff").is_file()
             else f"gunzip -c {run_dir / 'git.diff.gz'} | git apply")  # fmt: skip
    fix = f"`git checkout {recorded['commit'][:12]}`" + (f" and `{apply}`" if recorded_diff else "")
    return "; ".join(parts) + f". Restore the code with {fix}, or re-run on this code with --any-commit"


def _changed_files(root: Path, commit: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), "diff", "--name-only", commit, "HEAD"], capture_output=True,
                             text=True, check=True, timeout=20).stdout.split()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "that commit is not in this clone"
    shown = ", ".join(out[:8]) + (f" and {len(out) - 8} more" if len(out) > 8 else "")
    return f"{len(out)} file(s) differ: {shown}" if out else "no file differs"


def recorded_files(record: dict[str, Any], run_dir: Path) -> list[tuple[str, str]]:
    """(path as recorded, sha256) of every data file the run read."""
    files = (record.get("data") or {}).get("files")
    if isinstance(files, list):
        return [(f["path"], f["sha256"]) for f in files]
    if isinstance(files, dict) and files.get("list_file"):
        listing = run_dir / files["list_file"]
        text = read_maybe_packed(listing)
        if text is None:
            raise ReproduceError(f"{listing} is missing: the record names its data files there")
        return [tuple(reversed(line.split("  ", 1))) for line in text.splitlines() if line]
    return []


def data_difference(record: dict[str, Any], run_dir: Path, recorded_data_dir: str | None, data_dir: Path) -> str | None:
    """None when every file the run read is here with its recorded bytes (paths under the record's
    `paths.data_dir` are looked up under `data_dir`), else which are not and how to get them."""
    from dlwp.data.registry import identify
    from dlwp.record import file_identities

    wanted = recorded_files(record, run_dir)
    mapped = [(_map_path(p, recorded_data_dir, data_dir), sha) for p, sha in wanted]
    have = {f["path"]: f["sha256"] for f in file_identities([p for p, _ in mapped])}
    missing = [str(p) for p, _ in mapped if str(p) not in have]
    changed = [str(p) for p, sha in mapped if str(p) in have and have[str(p)] != sha]
    if not missing and not changed:
        return None
    datasets = sorted({known["dataset"] for _, sha in wanted if (known := identify(sha))})
    fetch = f"`dlwp data fetch {' '.join(datasets)}`" if datasets else "`dlwp data fetch <dataset>`"
    problems = []
    if missing:
        problems.append(f"{len(missing)} file(s) the run read are missing (e.g. {missing[0]})")
    if changed:
        problems.append(f"{len(changed)} file(s) have other bytes than the run read (e.g. {changed[0]})")
    version = ((record.get("data") or {}).get("version") or {}).get("md5")
    dvc = f" or `dvc pull` at the run's commit (data version {version})" if version else ""
    return "; ".join(problems) + f" under {data_dir}. Get the recorded data with {fetch}{dvc}"


def _map_path(recorded: str, recorded_data_dir: str | None, data_dir: Path) -> Path:
    path = Path(recorded)
    if recorded_data_dir and path.is_relative_to(recorded_data_dir):
        return data_dir / path.relative_to(recorded_data_dir)
    return path


def package_differences(record: dict[str, Any]) -> list[str]:
    from dlwp.record import package_versions

    recorded, now = record.get("packages") or {}, package_versions()
    return [f"{name} {recorded.get(name)} -> {now.get(name)}" for name in sorted(set(recorded) | set(now))
            if name != "dlwp" and recorded.get(name) != now.get(name)]  # fmt: skip


def task_exists(record: dict[str, Any]) -> str | None:
    from dlwp.catalog import task_files

    names = {p.stem for p in task_files()}
    chosen = [o.split("=", 1)[1] for o in record.get("overrides", []) if o.startswith("task=")]
    name = chosen[-1] if chosen else None
    if name is not None and name not in names:
        return f"task {name!r} no longer exists in this checkout (`dlwp tasks` lists the tasks there are)"
    return None


# -- the re-run and the comparison --------------------------------------------------------------


def rerun_overrides(record: dict[str, Any], original: Path, data_dir: Path, runs_dir: Path) -> list[str]:
    kept = [o for o in record.get("overrides", [])
            if REDACTED not in o and not o.startswith(("seed=", "reproduces="))]  # fmt: skip
    return [*kept, f"seed={record['seed']}", f"paths.data_dir={data_dir}", f"paths.runs_dir={runs_dir}",
            f"reproduces={original}", "trainer.enable_progress_bar=false"]  # fmt: skip


def compare(recorded: dict[str, Any], reproduced: dict[str, Any], tolerance: float) -> tuple[list[list[str]], str]:
    """Rows (metric, recorded, reproduced, difference) and the verdict."""
    rows, worst = [], 0.0
    for kind in ("final", "best"):
        old, new = (recorded.get("metrics") or {}).get(kind, {}), (reproduced.get("metrics") or {}).get(kind, {})
        for key in sorted(old):
            if key.startswith("time/") or key == "epoch":
                continue
            a = old[key]["value"] if kind == "best" else old[key]
            b = (new.get(key) or {}).get("value") if kind == "best" else new.get(key)
            diff = abs(a - b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else math.inf
            worst = max(worst, diff)
            rows.append([f"{kind}:{key}", f"{a:.7g}", "–" if b is None else f"{b:.7g}", f"{diff:.2g}"])
    if not rows:
        return rows, "different (the record has no metrics to compare)"
    if worst == 0:
        return rows, "identical"
    if worst <= tolerance:
        return rows, f"within tolerance (largest difference {worst:.2g} <= {tolerance:g})"
    return rows, f"different (largest difference {worst:.2g} > tolerance {tolerance:g})"


def reproduce_one(run_json: Path, args: argparse.Namespace, root: Path) -> bool:
    from omegaconf import OmegaConf

    run_dir = run_json.parent.resolve()
    record = read_record(run_json)
    recorded_cfg = OmegaConf.load(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else None
    recorded_data_dir = OmegaConf.select(recorded_cfg, "paths.data_dir") if recorded_cfg is not None else None
    print(f"{PROG}: {run_dir} (task {record.get('task')}, seed {record.get('seed')})", file=sys.stderr)
    if problem := task_exists(record):
        raise ReproduceError(problem)
    if problem := code_difference(record, run_dir, root):
        if not args.any_commit:
            raise ReproduceError(f"the code differs from the run's: {problem}")
        print(f"  code: DIFFERENT, re-running anyway (--any-commit): {problem}", file=sys.stderr)
    else:
        print("  code: the recorded commit" + (" and uncommitted diff" if record["git"].get("dirty") else ""),
              file=sys.stderr)  # fmt: skip
    if problem := data_difference(record, run_dir, recorded_data_dir, args.data_dir):
        raise ReproduceError(f"the data differs from the run's: {problem}")
    print(f"  data: {len(recorded_files(record, run_dir))} file(s), the recorded bytes", file=sys.stderr)
    for line in package_differences(record):
        print(f"  package differs (not fatal): {line}", file=sys.stderr)
    cmd = [sys.executable, "-m", "dlwp.cli", "train", *rerun_overrides(record, run_dir, args.data_dir, args.runs_dir)]
    print("  $ dlwp train " + " ".join(cmd[4:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    new_dir = next((line.split("run:", 1)[1].strip() for line in proc.stderr.splitlines()
                    if line.strip().startswith("run:")), None)  # fmt: skip
    if proc.returncode != 0 or new_dir is None:
        raise ReproduceError(f"the re-run failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    reproduced = json.loads((Path(new_dir) / "run.json").read_text())
    rows, verdict = compare(record, reproduced, args.tolerance)
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"  {'metric':<{width}}  {'recorded':>12}  {'reproduced':>12}  {'difference':>10}")
    for name, a, b, d in rows:
        print(f"  {name:<{width}}  {a:>12}  {b:>12}  {d:>10}")
    print(f"  verdict: {verdict}\n  reproduced run: {new_dir}")
    return not verdict.startswith("different")


def main(argv: list[str]) -> int:
    from dlwp.paths import project_root

    root = project_root()
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path, help="a run directory, its run.json, or a sweep directory")
    parser.add_argument("--data-dir", type=Path, default=root / "data", help="where the data is here (default data/)")
    parser.add_argument("--runs-dir", type=Path, default=root / "runs" / "reproduced",
                        help="where the re-runs go (default runs/reproduced/)")  # fmt: skip
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="largest metric difference still counted as reproduced (0: identical, as on a CPU; "
                             "GPUs and other package versions need e.g. 1e-3)")  # fmt: skip
    parser.add_argument("--any-commit", action="store_true", help="re-run on this checkout's code even if it differs")
    args = parser.parse_args(argv)
    args.data_dir, args.runs_dir = args.data_dir.resolve(), args.runs_dir.resolve()
    try:
        results = [reproduce_one(run_json, args, root) for run_json in find_records(args.record)]
    except DlwpError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    return 0 if all(results) else 1
