"""Where things live: the project root, the config tree, and collision-proof run directories."""

from __future__ import annotations

import os
import time
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SWEEP_ENV = "DLWP_SWEEP_DIR"


def project_root() -> Path:
    """`$DLWP_ROOT`, else the checkout this package was installed from (editable), else the cwd."""
    if env := os.environ.get("DLWP_ROOT"):
        return Path(env).resolve()
    checkout = PACKAGE_DIR.parents[1]
    if (checkout / "conf" / "train.yaml").is_file():
        return checkout
    return Path.cwd()


def conf_dir() -> Path:
    """The Hydra config tree: the checkout's `conf/` (dlwp is a template, used from its checkout:
    `pip install -e .`), or `$DLWP_CONF_DIR`."""
    from dlwp.errors import ConfigError

    candidates = [Path(os.environ["DLWP_CONF_DIR"])] if os.environ.get("DLWP_CONF_DIR") else []
    for candidate in [*candidates, PACKAGE_DIR.parents[1] / "conf"]:
        if (candidate / "train.yaml").is_file():
            return candidate
    raise ConfigError(
        f"no conf/train.yaml beside {PACKAGE_DIR}: dlwp runs from its checkout. Install it with "
        "`pip install -e .` in the checkout, or point DLWP_CONF_DIR at the checkout's conf/ folder."
    )


CONFIG_PATH_ENV = "DLWP_CONFIG_PATH"


def extra_conf_dirs() -> list[Path]:
    """Config trees of your own project (`$DLWP_CONFIG_PATH`, separated by `os.pathsep`), searched
    before dlwp's `conf/`: their `task/`, `data/` and `model/` files add tasks, datasets and
    networks without editing dlwp (README: Start your own project)."""
    from dlwp.errors import ConfigError

    dirs = []
    for entry in filter(None, os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep)):
        path = Path(entry).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(
                f"{CONFIG_PATH_ENV}: {entry} is not a directory (it should hold task/, data/, model/ ...)"
            )
        dirs.append(path)
    return dirs


def extra_search_path() -> list[str]:
    """`extra_conf_dirs` as Hydra search-path entries."""
    return [f"file://{path}" for path in extra_conf_dirs()]


def claim_dir(parent: Path | str, stamp: str | None = None) -> Path:
    """Create and return a new directory `parent/<timestamp>[-N]`; never one that exists.

    `mkdir` without `exist_ok` is atomic, so two runs started in the same second (or two
    processes racing) always get two directories.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    stamp = stamp or time.strftime("%Y-%m-%d_%H-%M-%S")
    for n in range(10_000):
        candidate = parent / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not claim a run directory under {parent}")


def discard_if_unused(run_dir: Path) -> None:
    """Remove a run directory that a command rejected at start-up left holding only its empty log
    (`train.log`, `eval.log`, ...)."""
    entries = list(run_dir.iterdir()) if run_dir.is_dir() else []
    if all(p.suffix == ".log" and p.stat().st_size == 0 for p in entries):
        for p in entries:
            p.unlink(missing_ok=True)
        if run_dir.is_dir():
            run_dir.rmdir()


def check_runs_dir(overrides: list[str]) -> None:
    """Fail before Hydra starts when the runs folder cannot hold a run directory (read-only, not a
    folder, under /proc): Hydra would otherwise fail while resolving its own output directory,
    with a long traceback that never names `paths.runs_dir`."""
    import tempfile

    from dlwp.errors import ConfigError

    given = [o.split("=", 1)[1] for o in overrides if o.startswith(("paths.runs_dir=", "++paths.runs_dir="))]
    if given and ("," in given[-1] or "${" in given[-1]):
        return  # a sweep over runs folders, or an interpolation: checked when resolved
    runs_dir = Path(given[-1]).expanduser() if given else project_root() / "runs"
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=runs_dir):
            pass
    except OSError as err:
        key = f"paths.runs_dir={runs_dir}" if given else f"the default runs folder {runs_dir}"
        raise ConfigError(
            f"{key}: cannot create a run directory there ({err.strerror or err}); give a writable folder "
            "with paths.runs_dir=/path/to/runs"
        ) from None


_claimed: dict[tuple[str, ...], str] = {}


def run_dir_resolver(runs_dir: str, *parts: str) -> str:
    """OmegaConf resolver for `hydra.run.dir` / `hydra.sweep.dir`: claim once per process.

    Hydra resolves these keys more than once; the memo makes every resolution return the same
    claimed directory. A sweep directory is also handed to launcher worker processes through
    `$DLWP_SWEEP_DIR`, so joblib workers join the sweep instead of claiming new ones.
    """
    key = (runs_dir, *parts)
    if key not in _claimed:
        is_sweep = parts[:1] == ("multirun",)
        inherited = os.environ.get(SWEEP_ENV) if is_sweep else None
        if inherited and Path(inherited).is_dir():
            _claimed[key] = inherited
        else:
            _claimed[key] = str(claim_dir(Path(runs_dir).joinpath(*parts)))
            if is_sweep:
                os.environ[SWEEP_ENV] = _claimed[key]
    return _claimed[key]


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("dlwp_run_dir"):
        OmegaConf.register_new_resolver("dlwp_run_dir", run_dir_resolver)
        OmegaConf.register_new_resolver("dlwp_root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("dlwp_len"):  # sizes that follow from other settings (book 6.3's windows)
        OmegaConf.register_new_resolver("dlwp_len", lambda items: len(items))
        OmegaConf.register_new_resolver("dlwp_div", lambda a, b: int(a) // int(b))
