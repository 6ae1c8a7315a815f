"""Shared helpers: run the real `dlwp` CLI in a subprocess, find its runs, locate the data mirror."""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from zygote import shadows_nothing

ROOT = Path(__file__).resolve().parents[1]


def _share_the_cores_between_workers() -> None:
    """Under `pytest -n N`, each worker (and every command it starts) gets its share of the cores
    as torch threads, unless $OMP_NUM_THREADS says otherwise. Two workers of 2 threads each on 2
    cores spin in each other's barriers: the char-LSTM smoke run trained in 23 s beside a twin
    with 2 threads each, and in 11 s with one each (2026-12-01)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2 or "OMP_NUM_THREADS" in os.environ:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // workers)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:  # already imported: the variable is read at import only
        sys.modules["torch"].set_num_threads(threads)


_share_the_cores_between_workers()

# Real datasets beside the project (../shared/datasets); tests that need them skip without them.
MIRROR = Path(os.environ.get("DLWP_DATA_MIRROR", ROOT.parent / "shared" / "datasets"))


def dlwp(*args: str, runs: Path | None = None, timeout: float = 600, env: dict | None = None,
         check: bool = True) -> subprocess.CompletedProcess:  # fmt: skip
    """Run `dlwp ARGS` as users do; train/eval/ensemble runs go to `runs`, without progress bars.
    Each command is its own process, forked from a pre-imported server (tests/zygote.py) unless
    its environment changes what is read at interpreter start (then a plain subprocess)."""
    cmd = [sys.executable, "-m", "dlwp.cli", *args]
    if args and args[0] in ("train", "eval", "ensemble"):
        cmd += ["trainer.enable_progress_bar=false"]
        if runs is not None:
            cmd += [f"paths.runs_dir={runs}"]
    full_env = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}  # env={"X": None} unsets X
    server = None if "DLWP_NO_ZYGOTE" in os.environ else _zygote()
    if server is None or server.differs_at_start(full_env):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT)
    else:
        proc = server.run(cmd, full_env, timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n--- stderr ---\n{proc.stderr[-4000:]}")
    return proc


_START_ENV = ("GLIBC_TUNABLES", "LD_", "PYTHON", "OMP_", "MKL_", "CUDA_", "TORCH_", "PYTORCH_")
"""Variables read when the interpreter, libc or torch start: a command whose value differs from the
server's cannot be forked from it. `DLWP_NO_ZYGOTE=1` runs every command as a plain subprocess."""


class _Zygote:
    """The client of tests/zygote.py: one server per test process, one command at a time."""

    def __init__(self) -> None:
        self.env = dict(os.environ)
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "zygote.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT, env=self.env)  # fmt: skip
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        assert json.loads(self._answer(120)).get("ready"), "tests/zygote.py did not start"
        atexit.register(self.close)

    def differs_at_start(self, env: dict[str, str]) -> bool:
        changed = (set(env) ^ set(self.env)) | {k for k in env if env[k] != self.env.get(k)}
        if "PYTHONPATH" in changed and self.env.get("PYTHONPATH") is None and shadows_nothing(env["PYTHONPATH"]):
            changed.discard("PYTHONPATH")  # the forked child puts it on sys.path (tests/zygote.py)
        return any(k.startswith(_START_ENV) for k in changed)

    def _answer(self, timeout: float) -> str:
        if not self.selector.select(timeout):
            raise TimeoutError
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"tests/zygote.py ended (exit {self.proc.wait()})")
        return line

    def run(self, cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory(prefix="dlwp-cmd-") as tmp:
            out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
            request = {"args": cmd[3:], "env": env, "cwd": str(ROOT), "stdout": str(out), "stderr": str(err)}
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            pid = json.loads(self._answer(60))["pid"]
            try:
                status = json.loads(self._answer(timeout))["status"]
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._answer(60)
                raise subprocess.TimeoutExpired(cmd, timeout, out.read_text(), err.read_text()) from None
            return subprocess.CompletedProcess(cmd, status, out.read_text(), err.read_text())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


_server: _Zygote | None = None


def _zygote() -> _Zygote:
    global _server
    if _server is None or _server.proc.poll() is not None:
        _server = _Zygote()
    return _server


DVC_ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip


def sh(*cmd: str, cwd: Path) -> str:
    """Run git or dvc (this interpreter's) in `cwd` for a test; its stdout, or a failure with both streams."""
    if cmd[0] == "dvc":
        cmd = (sys.executable, "-m", "dvc", *cmd[1:])
    proc = subprocess.run(cmd, cwd=cwd, env=DVC_ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def run_dirs(runs: Path, task: str = "digits_dense") -> list[Path]:
    """Run directories of `task`, oldest first."""
    return sorted(p for p in (runs / task).iterdir() if p.is_dir()) if (runs / task).is_dir() else []


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def metric_rows(run_dir: Path) -> list[dict[str, float]]:
    """metrics.csv without the wall-clock column, which legitimately differs between runs."""
    from dlwp.record import read_metrics_csv

    return [{k: v for k, v in row.items() if k != "time/epoch_s"} for row in read_metrics_csv(run_dir / "metrics.csv")]


def mirror_file(name: str) -> Path:
    """The mirror's file `name` (relative to the mirror, e.g. `mnist/mnist.npz`), for a real-data test.

    Skips the calling test, saying why, when there is no mirror or this mirror does not carry `name`;
    fails it when the mirror's MANIFEST.md lists `name` but the file is absent or empty: a broken
    mirror must not pass as a missing one (and nothing here falls back to synthetic data)."""
    source = MIRROR / name
    if not MIRROR.is_dir():
        pytest.skip(f"real-data test: no data mirror at {MIRROR} (set DLWP_DATA_MIRROR to one)")
    if source.is_file() and source.stat().st_size > 0:
        return source
    manifest = MIRROR / "MANIFEST.md"
    if manifest.is_file() and f"| {name} |" in manifest.read_text():
        state = "empty" if source.exists() else "absent"
        pytest.fail(f"the data mirror is broken: its MANIFEST.md lists {name}, but {source} is {state}")
    pytest.skip(f"real-data test: the data mirror at {MIRROR} has no {name}")


def mirror_data_dir(tmp_path_factory, *files: str | tuple[str, str]) -> Path:
    """A fresh data dir of symlinks into the mirror (never copies). Each of `files` is a path relative
    to the mirror, linked under the same name, or a `(name in the data dir, path in the mirror)` pair,
    e.g. `("reuters/reuters.npz", "reuters/reuters_rebuilt.npz")`. Skips or fails as `mirror_file`."""
    links = [(spec, spec) if isinstance(spec, str) else spec for spec in files]
    sources = [mirror_file(source) for _, source in links]  # skip/fail before creating anything
    data_dir = tmp_path_factory.mktemp("data")
    for (name, _), source in zip(links, sources, strict=True):
        (data_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / name).symlink_to(source)
    return data_dir


# The real files of the book's text datasets, as the data modules' configs name them.
IMDB_FILES = ("imdb/imdb_word_index.json", ("imdb/aclImdb_v1.tar.gz", "imdb/aclImdb_v1_labeled.tar.gz"))
REUTERS_FILES = (("reuters/reuters.npz", "reuters/reuters_rebuilt.npz"),)


@pytest.fixture(scope="session")
def mnist_data_dir(tmp_path_factory) -> Path:
    """A data dir holding mnist/mnist.npz from the mirror (skips when the mirror is absent)."""
    return mirror_data_dir(tmp_path_factory, "mnist/mnist.npz")


@pytest.fixture(scope="session")
def imdb_data_dir(tmp_path_factory) -> Path:
    """A data dir holding the real IMDB word index and reviews (skips when the mirror is absent;
    the tokenised-review cache is built beside the links, in this tmp dir)."""
    return mirror_data_dir(tmp_path_factory, *IMDB_FILES)


@pytest.fixture(scope="session")
def reuters_data_dir(tmp_path_factory) -> Path:
    """A data dir holding the mirror's Reuters npz under the name the config reads (skips when absent)."""
    return mirror_data_dir(tmp_path_factory, *REUTERS_FILES)


@pytest.fixture(scope="session")
def boston_data_dir(tmp_path_factory) -> Path:
    """A data dir holding boston_housing/boston_housing.npz from the mirror (skips when absent)."""
    return mirror_data_dir(tmp_path_factory, "boston_housing/boston_housing.npz")
