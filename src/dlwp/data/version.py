"""Which version of `data/` a run used: the DVC pin (`data.dvc`) and whether the workspace matches it.

`data/` is the DVC-tracked dataset root and `data.dvc` at the project root pins its content
hash. Every run records that hash and whether the files it read matched it; a run started with
`require_pinned_data=true` refuses to train on anything else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# DVC's analytics spawn a daemon per command and phone home; never here.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def _read_dvc_file(path: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path))  # a .dvc file is plain YAML


def data_version(root: Path, data_dir: Path) -> dict[str, Any]:
    """`{"tracked", "dvc_file", "md5", "nfiles", "size", "in_sync", "changes"}` for `data_dir`.

    `in_sync` is True/False when `data_dir` is the output `data.dvc` pins, None when it is not
    tracked (no `data.dvc`, or the run reads data from elsewhere).
    """
    dvc_file = root / "data.dvc"
    info: dict[str, Any] = {"tracked": False, "dvc_file": None, "md5": None, "in_sync": None}
    if not dvc_file.is_file():
        info["reason"] = f"no {dvc_file.name} in {root}"
        return info
    outs = (_read_dvc_file(dvc_file).get("outs") or [{}])[0]
    info.update(dvc_file=str(dvc_file), md5=outs.get("md5"), nfiles=outs.get("nfiles"), size=outs.get("size"))
    if (root / outs.get("path", "data")).resolve() != Path(data_dir).resolve():
        info["reason"] = f"the run reads {data_dir}, which {dvc_file.name} does not track"
        return info
    info["tracked"] = True
    fingerprint = _fingerprint(Path(data_dir), dvc_file)
    cache = Path(data_dir) / ".cache" / "dvc_status.json"
    cached = _read_cache(cache)
    if cached.get("fingerprint") == fingerprint:
        return info | cached["info"] | {"checked": "cached"}
    try:
        from dvc.repo import Repo

        with Repo(str(root)) as repo:
            changes = repo.status(targets=[str(dvc_file)])
    except Exception as err:  # a broken DVC set-up must not hide the run; it is recorded instead
        info["reason"] = f"dvc status failed: {type(err).__name__}: {err}"
        return info
    info["in_sync"] = not changes
    if changes:
        info["changes"] = changes
    else:  # only a match is remembered: a mismatch may be mended outside data/ (`dvc add`, the DVC cache)
        _write_cache(cache, {"fingerprint": fingerprint, "info": info})
    return info | {"checked": "dvc status"}


def _fingerprint(data_dir: Path, dvc_file: Path) -> str:
    """Path, size and mtime of every file under `data_dir` (but .cache/), and the .dvc file itself.

    `dvc status` hashes nothing it has seen with the same inode, size and mtime either (its state
    database); this skips even loading DVC (~1.3 s) when nothing changed since the last check.
    """
    import hashlib

    digest = hashlib.sha256(dvc_file.read_bytes())
    for dirpath, dirnames, filenames in os.walk(data_dir):
        dirnames[:] = sorted(d for d in dirnames if d != ".cache")
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            stat = os.stat(path)
            digest.update(f"{os.path.relpath(path, data_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _read_cache(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    from dlwp.record import write_json_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, data)
    except OSError:
        pass  # a read-only data dir only costs the next run a `dvc status`


def not_in_cache(info: dict[str, Any]) -> bool:
    """DVC's verdict when the pinned hash is missing from its cache (a fresh clone, or data fetched
    with `dlwp data fetch`): it then cannot say whether data/ holds the pinned bytes."""
    return info["in_sync"] is False and "not in cache" in str(info.get("changes"))


def describe(info: dict[str, Any]) -> str:
    if info["in_sync"] is True:
        return f"data/ matches data.dvc (md5 {info['md5']})"
    if not_in_cache(info):
        return (
            f"the version data.dvc pins (md5 {info['md5']}) is not in the DVC cache, so DVC cannot tell "
            "whether data/ holds it (a fresh clone, or data fetched with `dlwp data fetch`). `dvc pull` "
            "fills the cache from the remote; for data you fetched, `dvc commit -f data.dvc` hashes it into "
            "the cache, and `git diff data.dvc` then shows whether it is the pinned version (no diff)"
        )
    if info["in_sync"] is False:
        return f"data/ does NOT match data.dvc (pinned md5 {info['md5']}): {info.get('changes')}"
    return f"data version unknown: {info.get('reason', 'not tracked')}"
