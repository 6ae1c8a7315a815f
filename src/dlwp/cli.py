"""The `dlwp` command. Kept import-light: `--help` and `tasks` never import torch or Lightning.

Every subcommand is one entry of `COMMANDS`: its help lines and the function that runs it.
A `hydra` command is composed by Hydra from `conf/<name>.yaml` (so `-m`, `--cfg`, `--help` and
sweeps work as Hydra's do) and its function receives the config; the others get their arguments.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Command:
    name: str
    synopsis: str
    """What follows the name in the usage line."""
    summary: str
    entry: str
    """`module:function`; a hydra command's takes the composed config (and may return a sweep
    objective), another's takes the argument list and returns the exit status."""
    hydra: bool = False
    examples: tuple[str, ...] = ()
    positional: str | None = None
    """A hydra command's key that a leading bare word sets: `dlwp visualize filters` = `what=filters`."""


COMMANDS: tuple[Command, ...] = (
    Command(
        "train",
        "[key=value ...]",
        "train a book task (default: the embedded digits task)",
        "dlwp.train:main",
        hydra=True,
        examples=(
            "dlwp train task=mnist_dense seed=1 trainer.max_epochs=3",
            "dlwp train -m task=digits_dense seed=0,1,2      (Hydra multirun)",
            "dlwp train ckpt_path=last                       (resume the newest run)",
            "dlwp train task=T init_from=RUN                 (start from a run's weights)",
            "dlwp train --cfg job                            (print the config)",
        ),
    ),
    Command(
        "eval",
        "ckpt_path=PATH",
        "evaluate a checkpoint (or a run directory) on its task's test split",
        "dlwp.evaluate:evaluate",
        hydra=True,
    ),
    Command(
        "generate",
        "ckpt_path=PATH [temperature=T length=N seed_text=... seed=S]",
        "sample text from a trained character model (book 8.1)",
        "dlwp.generate:generate",
        hydra=True,
        examples=("dlwp generate ckpt_path=runs/nietzsche_char_lstm/<run> temperature=0.5 length=400",),
    ),
    Command("tasks", "", "list the book tasks with their section, dataset and book result", "dlwp.catalog:main"),
    Command(
        "ensemble",
        "ckpt_paths=[..] | sweep=DIR top_k=K",
        "average saved checkpoints of one task (book 7.3), evaluate on test",
        "dlwp.ensemble:ensemble",
        hydra=True,
    ),
    Command(
        "visualize",
        "activations|filters|gradcam [key=value ...]",
        "look inside a convnet (book 5.4): activations, filter patterns, Grad-CAM",
        "dlwp.visualize.commands:visualize",
        hydra=True,
        examples=(
            "dlwp visualize gradcam image=skimage:coffee     (offline: EfficientNet-Lite0)",
            "dlwp visualize activations ckpt_path=RUN image=cat.1700.jpg",
        ),
        positional="what",
    ),
    Command("dream", "[key=value ...]", "DeepDream on a photo (book 8.2)", "dlwp.visualize.commands:dream", hydra=True),
    Command(
        "style",
        "[key=value ...]",
        "neural style transfer with L-BFGS (book 8.3)",
        "dlwp.visualize.commands:style",
        hydra=True,
    ),
    Command(
        "reproduce",
        "RUN [--tolerance T] [--any-commit]",
        "re-run a recorded run (or sweep) exactly, after checking code, data and task; compare metrics",
        "dlwp.reproduce:main",
        examples=("dlwp reproduce runs/mnist_dense/<stamp>   (identical metrics on a CPU)",),
    ),
    Command("report", "PATH", "book-style figures + summary.md for a run or a sweep directory", "dlwp.report:main"),
    Command(
        "data",
        "list|status|fetch",
        "the book's datasets: registry, what is on disk, verified download",
        "dlwp.data.cli:main",
        examples=("dlwp data fetch mnist --mirror ../shared/datasets",),
    ),
)
BY_NAME = {c.name: c for c in COMMANDS}


def usage() -> str:
    lines = [
        "usage: dlwp <command> [hydra overrides ...]",
        "",
        "Deep Learning with Python (1st ed.) experiments as reproducible Lightning + Hydra runs.",
        "",
        "commands:",
    ]
    for c in COMMANDS:
        head = f"  {c.name} {c.synopsis}".rstrip()
        lines.append(f"{head:<26}{c.summary}" if len(head) < 26 else f"{head}\n{'':<26}{c.summary}")
        lines += [f"{'':<28}{e}" for e in c.examples]
    lines += [
        "",
        "Runs are written to runs/<task>/<timestamp>/ (run.json, config.yaml, metrics.csv, checkpoints/).",
        "`dlwp train --help` shows Hydra's help, with every config group and option.",
        "Your own tasks, data and networks: DLWP_CONFIG_PATH=/path/to/conf (README: Start your own project).",
    ]
    return "\n".join(lines) + "\n"


def entry_point(spec: str):
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0
    name, rest = argv[0], argv[1:]
    if name == "--version":
        from importlib.metadata import version

        print(f"dlwp {version('dlwp')}")
        return 0
    command = BY_NAME.get(name)
    if command is None:
        print(f"dlwp: unknown command {name!r}\n\n{usage()}", file=sys.stderr, end="")
        return 2
    if command.hydra:
        if command.positional and rest and "=" not in rest[0] and not rest[0].startswith("-"):
            rest = [f"{command.positional}={rest[0]}", *rest[1:]]
        return _run_hydra(command, rest)
    return entry_point(command.entry)(rest)


def missing_value_message(command: Command, err) -> str:
    key = getattr(err, "full_key", None) or str(err).splitlines()[0]
    return f"{key} is required: dlwp {command.name} {command.synopsis}".rstrip()


def _run_hydra(command: Command, overrides: list[str]) -> int:
    """Hand the overrides to Hydra, so `-m`, `--cfg`, `--help` and sweeps behave as Hydra's do."""
    from dlwp.startup import command_entered

    command_entered()  # a run's start-up phases: `launch` ends here, `compose` begins (dlwp.startup)
    import hydra
    from omegaconf.errors import MissingMandatoryValue

    from dlwp.config.schema import register
    from dlwp.errors import DlwpError
    from dlwp.paths import (
        check_runs_dir,
        conf_dir,
        discard_if_unused,
        extra_conf_dirs,
        extra_search_path,
        register_resolvers,
    )

    register()
    register_resolvers()
    original_argv = list(sys.argv)
    run = entry_point(command.entry)

    def task_function(cfg) -> float | None:
        # Restore the real command line: DDP launchers re-run sys.argv in each worker process.
        sys.argv = original_argv
        from hydra.core.hydra_config import HydraConfig

        in_sweep = HydraConfig.get().mode.name == "MULTIRUN"
        distributed_job = in_sweep and command.name == "train" and _spawns_processes(cfg.trainer)
        if distributed_job:
            saved_env = _as_single_run(original_argv, command.name)
        try:
            return run(cfg)
        except (DlwpError, MissingMandatoryValue) as err:
            message = str(err) if isinstance(err, DlwpError) else missing_value_message(command, err)
            print(f"dlwp {command.name}: error: {message}", file=sys.stderr)
            discard_if_unused(Path(HydraConfig.get().runtime.output_dir))  # a rejected command leaves no folder
            if in_sweep:  # one bad job must not end the sweep; its run.json records the failure
                return float("nan")
            raise SystemExit(2) from None
        except Exception as err:
            if not in_sweep:
                raise
            print(f"dlwp {command.name}: job failed: {type(err).__name__}: {err}", file=sys.stderr)
            return float("nan")
        finally:
            if distributed_job:
                _end_distributed_job(saved_env)

    try:
        config_path = str(conf_dir())
        search = extra_search_path()
        if not any(o in ("--help", "-h", "--cfg", "-c", "--info", "-i") for o in overrides):
            check_runs_dir(overrides)
    except DlwpError as err:
        print(f"dlwp {command.name}: error: {err}", file=sys.stderr)
        return 2
    from dlwp.compat import skip_hydra_mode_probe

    skip_hydra_mode_probe([Path(config_path), *extra_conf_dirs()], overrides)
    if search and not any(o.startswith("hydra.searchpath=") for o in overrides):
        overrides = [f"hydra.searchpath=[{','.join(search)}]", *overrides]
    sys.argv = [f"dlwp {command.name}", *overrides]
    entry = hydra.main(config_path=config_path, config_name=command.name, version_base="1.3")(task_function)
    try:
        entry()
    finally:
        sys.argv = original_argv
    return 0


# -- Hydra multirun + DDP -------------------------------------------------------------------------
# Lightning starts ranks 1..N-1 of a one-machine DDP run by re-running `sys.argv` with
# `hydra.run.dir=<HydraConfig.run.dir>` appended (lightning/fabric/strategies/launchers/
# subprocess_script.py). In a multirun job `sys.argv` is the whole sweep, so each worker would run
# the sweep again (with Optuna: other parameters) in other directories. Before such a job trains,
# `sys.argv` becomes the single run this job is, and `hydra.run.dir` this job's directory.

_DIST_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_HYDRA_FLAGS_WITH_VALUE = ("-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name")


def _spawns_processes(trainer_cfg) -> bool:
    """Whether this trainer config may run several processes (several devices or nodes)."""
    from omegaconf import OmegaConf

    if int(trainer_cfg.get("num_nodes") or 1) > 1:
        return True
    devices = trainer_cfg.get("devices", 1)
    if OmegaConf.is_config(devices):
        devices = OmegaConf.to_container(devices)
    if isinstance(devices, str):
        devices = devices.strip()
        if devices in ("auto", "-1"):
            return True
        parts = [d for d in devices.split(",") if d.strip()]
        return len(parts) > 1 if "," in devices else int(devices) > 1
    if isinstance(devices, int):
        return devices > 1 or devices == -1
    return len(devices) > 1


def _as_single_run(original_argv: list[str], command: str) -> dict[str, str | None]:
    """Make Lightning's worker command the single run of this sweep job, in this job's directory.

    The job's own overrides (`hydra.overrides.task`: for a sweep job the values the sweeper chose,
    never `-m` or sweep syntax) replace the command line; Hydra's own flags that select the config
    (`--config-dir` ...) are kept. Returns the distributed environment variables to restore after
    the job (Lightning sets them in this process for the job's workers).
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    flags, args = [], iter(original_argv[2:])
    for arg in args:
        if arg in _HYDRA_FLAGS_WITH_VALUE:
            flags += [arg, next(args, "")]
        elif arg.startswith(tuple(f"{f}=" for f in _HYDRA_FLAGS_WITH_VALUE)):
            flags.append(arg)
    hydra_cfg = HydraConfig.get()
    sys.argv = [original_argv[0], command, *flags, *hydra_cfg.overrides.task]
    # Lightning appends hydra.run.dir=<this>; in a multirun job it would otherwise resolve to (and
    # claim) a new run directory.
    with read_write(hydra_cfg), open_dict(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    return {name: os.environ.get(name) for name in _DIST_ENV}


def _end_distributed_job(saved_env: dict[str, str | None]) -> None:
    """Leave this process ready for the next sweep job's own process group (new port, new ranks)."""
    import threading

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for name, value in saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    # Lightning's watchdog of this job's workers kills this process when a worker has exited with
    # an error, which would end the whole sweep (a failed job must only fail its trial). The
    # workers are gone by now (`dlwp.train.join_workers`); stop watching them.
    for thread in threading.enumerate():
        if thread.name == "child-process-observer" and hasattr(thread, "_child_processes"):
            thread._child_processes = []


if __name__ == "__main__":
    sys.exit(main())
