"""`dlwp data list | fetch NAME|all | status`: the dataset registry from the command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dlwp.data.fetch import MIRROR_ENV, check, check_mirror, fetch, mirror_root
from dlwp.data.registry import DATASETS, Dataset
from dlwp.errors import DlwpError


def _default_data_dir() -> Path:
    from dlwp.paths import project_root

    return project_root() / "data"


def dataset_state(dataset: Dataset, data_dir: Path) -> tuple[str, list[str]]:
    """(`present` | `stand-in` | `partial` | `missing` | `corrupt`, one line per file) for `dlwp data
    status`; `stand-in` means usable only through a different-format substitute (e.g. a sample)."""
    if dataset.tree_checksums:
        sums = data_dir / dataset.tree_checksums
        if not sums.is_file():
            return "missing", [f"{dataset.tree_checksums}: missing"]
        listed = [line.split("  ", 1)[1] for line in sums.read_text().splitlines() if "  " in line]
        have = sum((sums.parent / rel).is_file() for rel in listed)
        state = "present" if have == len(listed) else "partial" if have else "missing"
        return state, [f"{dataset.name}/: {have} of {len(listed)} files (hashes checked by fetch)"]
    lines, states = [], {}
    for spec in dataset.files:
        result = check(spec, data_dir)
        states[spec.path] = result
        label = f" ({result.label})" if result.label else ""
        if spec.alternative_to and result.usable:
            label = f" (stand-in for {spec.alternative_to}: {spec.note})"
        if result.state != "missing" or spec.required or spec.alternative_to:
            lines.append(f"{spec.path}: {result.state}{label}")
    required = [f for f in dataset.files if f.required and not f.alternative_to]
    stand_ins = {f.alternative_to: f for f in dataset.files if f.alternative_to}
    if any(states[f.path].state == "corrupt" for f in dataset.files):
        return "corrupt", lines
    ok = [states[f.path].usable or (f.path in stand_ins and states[stand_ins[f.path].path].usable) for f in required]
    state = "present" if all(ok) else "partial" if any(ok) else "missing"
    if state == "present" and not all(states[f.path].usable for f in required):
        state = "stand-in"  # usable, but not the real thing: say so before anyone trusts a result from it
    return state, lines


def cmd_list(_: argparse.Namespace) -> int:
    for d in DATASETS.values():
        print(f"{d.name:<15} book {d.chapters:<14} {d.title}")
        print(f"{'':<15} licence: {d.licence}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    data_dir = args.data_dir
    print(f"data root: {data_dir}")
    for d in DATASETS.values():
        state, lines = dataset_state(d, data_dir)
        print(f"{d.name:<15} {state}")
        for line in lines:
            print(f"{'':<17}{line}")
    from dlwp.data.version import data_version, describe
    from dlwp.paths import project_root

    print(describe(data_version(project_root(), data_dir)))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    names = list(DATASETS) if args.name == ["all"] else args.name
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        print(f"dlwp data: unknown dataset(s) {', '.join(unknown)}; known: {', '.join(DATASETS)}", file=sys.stderr)
        return 2
    try:
        check_mirror(args.mirror, "--mirror")
        mirror = args.mirror or mirror_root()
    except DlwpError as err:
        print(f"dlwp data: error: {err}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        try:
            results = fetch(name, args.data_dir, mirror, progress=not args.quiet)
        except DlwpError as err:
            print(f"{name}: FAILED\n  {str(err).replace(chr(10), chr(10) + '  ')}", file=sys.stderr)
            failed.append(name)
            continue
        variants = sorted({r.label for r in results if r.state == "variant"})
        note = f" (variant: {'; '.join(variants)})" if variants else ""
        verified = sum(r.state in ("verified", "variant") for r in results)
        unverified = [os.path.relpath(r.path, args.data_dir) for r in results if r.state == "unverified"]
        counts = f"{verified} file(s) verified"
        if unverified:
            counts += f", {len(unverified)} unverified (no published checksum: {', '.join(unverified)})"
        print(f"{name}: ok, {counts} in {args.data_dir / name}{note}")
    if failed:
        print(
            f"\nnot fetched: {', '.join(failed)}. Without network, point {MIRROR_ENV} (or --mirror) at a folder "
            "with the same layout as data/ (e.g. ../shared/datasets), or run `dvc pull`.",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dlwp data", description="The book's datasets: list, fetch, check.")
    parser.add_argument("--data-dir", type=Path, default=None, help="data root (default: <project>/data)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every dataset, its book chapters and licence").set_defaults(func=cmd_list)
    sub.add_parser("status", help="present / missing / corrupt, variant, DVC pin").set_defaults(func=cmd_status)
    f = sub.add_parser("fetch", help="download or copy from a mirror, verify, store atomically")
    f.add_argument("name", nargs="+", help="dataset name(s), or `all`")
    f.add_argument("--mirror", help=f"offline mirror folder or URL (default: ${MIRROR_ENV})")
    f.add_argument("--quiet", action="store_true", help="no progress bars")
    f.set_defaults(func=cmd_fetch)
    args = parser.parse_args(argv)
    args.data_dir = (args.data_dir or _default_data_dir()).resolve()
    return args.func(args)
