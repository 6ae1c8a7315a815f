"""The run record: what made a run (code, config, data, packages, machine) and what it got.

Every run directory holds `run.json`, rewritten atomically as the run progresses (status
`running` → `completed` / `failed` / `interrupted`), next to `config.yaml` (the resolved config)
and, for a dirty checkout, `git.diff`. Nothing from the environment is copied, and command-line
credentials (values of credential-named keys, URL passwords) are redacted (`dlwp.redact`), so a
record can be shared as it is.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from stat import S_ISLNK, S_ISREG
from typing import Any

from dlwp.allocator import allocator_state
from dlwp.cache import cache_root
from dlwp.redact import redact_argv, redact_text, redact_tree

PACKAGES = (
    "dlwp", "torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "omegaconf",
    "numpy", "scikit-learn", "wandb", "dvc", "optuna",
)  # fmt: skip


def git_state(root: Path) -> dict[str, Any]:
    """Commit and dirty flag of the checkout at `root` (None outside a git checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=20
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "branch": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    branch = git("rev-parse", "--abbrev-ref", "HEAD").strip()
    return {"commit": commit, "dirty": bool(status.strip()), "branch": branch}


def git_diff(root: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(root), "diff", "HEAD"], capture_output=True, text=True, check=True, timeout=20
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info(accelerator: str | None = None) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "accelerator": accelerator,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "allocator": allocator_state(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_cache_file() -> Path:
    """Where file hashes are remembered: in `dlwp.cache.cache_root()`."""
    return cache_root() / "sha256.json"


def _stat_key(stat: os.stat_result) -> list[int]:
    # what a rewrite of the file changes (a replaced file also has a new inode); as DVC's state db
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]


def file_identities(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """sha256 and size of each data file a run read, so the exact bytes can be named later.

    A file's hash is remembered by its path, size, mtime, inode and ctime (`hash_cache_file`): a
    run over the 5,000 images of cats vs dogs hashes them once, not on every run. Entries of files
    that no longer exist are dropped whenever the cache is rewritten: runs over temporary data
    dirs (the test suite's) had grown it to 16,000 entries, 3.6 MB read by every run.
    """
    cache_file = hash_cache_file()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    out, changed = [], False
    real_dirs: dict[str, str] = {}  # resolving each directory once: 4,000 `realpath`s cost 0.1 s a call
    for p in map(Path, paths):
        try:
            stat = os.lstat(p)
            if S_ISLNK(stat.st_mode):
                key, stat = os.path.realpath(p), os.stat(p)
            else:
                parent = str(p.parent)
                if parent not in real_dirs:
                    real_dirs[parent] = os.path.realpath(parent)
                key = os.path.join(real_dirs[parent], p.name)
        except OSError:
            continue
        if not S_ISREG(stat.st_mode):
            continue
        entry = cache.get(key)
        if isinstance(entry, list) and len(entry) == 5 and entry[:4] == _stat_key(stat):
            digest = entry[4]
        else:
            digest = sha256_file(p)
            cache[key] = [*_stat_key(stat), digest]
            changed = True
        out.append({"path": str(p), "bytes": stat.st_size, "sha256": digest})
    if changed:
        cache = {key: entry for key, entry in cache.items() if os.path.isfile(key)}
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(cache_file, cache)
        except OSError:
            pass  # an unwritable cache only costs the next run the hashing
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def peak_gpu_mb() -> float | None:
    """Peak GPU memory torch allocated in this process (None when no GPU was used)."""
    torch = sys.modules.get("torch")  # never import torch just to learn that no GPU was used
    if torch is None or not torch.cuda.is_initialized():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def write_atomic(path: Path, content: str | bytes) -> None:
    """Replace `path` with `content` all at once: written to a temporary file beside it, flushed to
    disk, then renamed over it. A reader (or a resume) sees the old file or the new one, never half
    of one; a full disk leaves the old file and no temporary behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # several processes may write one file
    try:
        with open(tmp, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None and err.filename is None:
            raise OSError(err.errno, err.strerror, str(path)) from err  # name the file the run was writing
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_metrics_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One row per epoch; columns in first-seen order; atomic (a reader never sees half a file)."""
    import csv
    import io

    columns = list(dict.fromkeys(k for row in rows for k in row))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())


def read_metrics_csv(path: Path) -> list[dict[str, float]]:
    import csv

    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if k and v not in ("", None)} for row in csv.DictReader(f)]


LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "error")


def best_of(history: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """For each `stage/metric` in the per-epoch history: its best value and the epoch it came at."""
    best: dict[str, dict[str, float]] = {}
    keys = {k for row in history for k in row if "/" in k and not k.startswith(("time/", "lr/"))}
    for key in sorted(keys):
        rows = [r for r in history if key in r and math.isfinite(r[key])]  # a NaN is never a best
        if not rows:
            continue
        lower = key.rsplit("/", 1)[1].endswith(LOWER_IS_BETTER)
        row = (min if lower else max)(rows, key=lambda r, k=key: r[k])
        best[key] = {"value": row[key], "epoch": row["epoch"]}
    return best


def status_of(record: dict[str, Any]) -> str:
    """A record's status as it really is: `running` becomes `stale` when the process that wrote it
    (same host, recorded pid) is gone: killed with SIGKILL, or the machine went down."""
    status = str(record.get("status", "unknown"))
    if status != "running" or record.get("host") != platform.node() or not isinstance(record.get("pid"), int):
        return status
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return "stale"
    except PermissionError:  # alive, another user's
        pass
    return status


class RunRecord:
    """Writes `run.json` for one run: at start, after each change of status, at the end."""

    def __init__(self, run_dir: Path, kind: str, root: Path, enabled: bool = True) -> None:
        """`enabled=False` on the non-zero ranks of a distributed run: only rank 0 writes."""
        self.run_dir, self.path, self.enabled = run_dir, run_dir / "run.json", enabled
        self.started = time.time()
        git = git_state(root)
        self.data: dict[str, Any] = {
            "kind": kind,
            "status": "running",
            "run_dir": str(run_dir),
            "command": redact_argv([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "cwd": os.getcwd(),
            "host": platform.node(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "git": git,
            "packages": package_versions(),
        }
        if git["dirty"] and enabled:
            write_atomic(run_dir / "git.diff", redact_text(git_diff(root)))
            self.data["git"]["diff_file"] = "git.diff"
        self.save()

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.save()

    def finish(self, status: str, error: BaseException | None = None) -> None:
        self.data["status"] = status
        self.data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.data["wall_time_s"] = round(time.time() - self.started, 3)
        self.data["peak_rss_mb"] = peak_rss_mb()
        if (gpu_mb := peak_gpu_mb()) is not None:
            self.data["peak_gpu_mb"] = gpu_mb
        if error is not None:
            self.data["error"] = f"{type(error).__name__}: {error}"
        self.save()

    def save(self) -> None:
        if self.enabled:
            write_json_atomic(self.path, redact_tree(self.data))
