"""The list of book tasks, read straight from `conf/task/*.yaml` (no torch, no Hydra compose)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlwp.paths import conf_dir, extra_conf_dirs


@dataclass
class TaskInfo:
    name: str
    section: str
    title: str
    dataset: str
    reference: dict[str, float]


def _task_node(path: Path):
    """The file's `task:` node merged over those of the task files it builds on (its plain defaults)."""
    from omegaconf import OmegaConf

    config = OmegaConf.load(path)
    parents = [d for d in config.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    merged = OmegaConf.create()
    for parent in parents:
        local = path.parent / f"{parent}.yaml"  # a task of your own may build on one of dlwp's
        merged = OmegaConf.merge(merged, _task_node(local if local.is_file() else conf_dir() / "task" / local.name))
    return OmegaConf.merge(merged, config.get("task", {}))


def task_files(root: Path | None = None) -> list[Path]:
    """`conf/task/*.yaml`, and those of `$DLWP_CONFIG_PATH` (which win for the same name)."""
    if root is not None:
        return sorted(root.glob("*.yaml"))
    found = {}
    for conf in [conf_dir(), *reversed(extra_conf_dirs())]:
        found |= {p.stem: p for p in (conf / "task").glob("*.yaml")}
    return sorted(found.values(), key=lambda p: p.stem)


def list_tasks(root: Path | None = None) -> list[TaskInfo]:
    tasks = []
    for path in task_files(root):
        task = _task_node(path)
        tasks.append(
            TaskInfo(
                name=path.stem,
                section=str(task.get("section", "")),
                title=str(task.get("title", "")),
                dataset=str(task.get("dataset", "")),
                reference={k: v for k, v in (task.get("reference") or {}).items() if v is not None},
            )
        )
    return sorted(
        tasks, key=lambda t: ([(0, int(p), "") if p.isdigit() else (1, 0, p) for p in t.section.split(".")], t.name)
    )


def main(argv: list[str]) -> int:
    """`dlwp tasks`."""
    import sys

    from dlwp.errors import DlwpError

    try:
        print_tasks()
    except DlwpError as err:
        print(f"dlwp tasks: error: {err}", file=sys.stderr)
        return 2
    return 0


def print_tasks() -> None:
    rows = [("task", "book", "dataset", "book result", "title")]
    for t in list_tasks():
        ref = ", ".join(f"{k} {v:g}" for k, v in t.reference.items()) or "-"
        rows.append((t.name, t.section, t.dataset, ref, t.title))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
