"""A pre-imported `dlwp` that the tests fork their commands from.

Every `dlwp(...)` call of the tests is still a process of its own, as a user's is: its own exit
status, stdout and stderr (file descriptors 1 and 2), environment, working directory, signals and
interpreter shutdown. What it no longer pays is the ~5 s of imports (torch, Lightning, Hydra,
W&B) that each of ~150 commands paid before, on 2 cores. The server only imports; it never runs a
torch op or a command, so each child starts from the state a fresh `python -m dlwp.cli` reaches
after its imports.

Protocol (one JSON object a line): the test sends {args, env, cwd, stdout, stderr} (the last two
are file paths), the server answers {"pid": ...} when the child starts and {"status": ...} (the
exit code, negative for a signal) when it ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import NoReturn

PRELOAD = ("torch", "torchvision", "lightning.pytorch", "hydra", "omegaconf", "wandb", "sklearn",
           "dlwp.cli", "dlwp.train", "dlwp.task", "dlwp.data", "dlwp.model")  # fmt: skip
WARM = ("sklearn.datasets", "sklearn.model_selection", "dlwp.callbacks", "dlwp.logger.wandb", "dlwp.trainer",
        "dlwp.signals", "dlwp.sweeps", "dlwp.model.summary", "dlwp.data.registry", "dlwp.data.base",
        "hydra._internal.core_plugins.basic_launcher", "hydra._internal.core_plugins.basic_sweeper",
        "hydra._internal.core_plugins.file_config_source", "hydra_plugins.hydra_joblib_launcher.joblib_launcher",
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher", "hydra_plugins.dlwp_optuna.sweeper")  # fmt: skip
"""What a default `dlwp train` still imported after PRELOAD (~0.5 s a command, 2026-12-01), none of
it reading the environment at import; skipped where a version no longer has it."""


def _become_command(request: dict) -> NoReturn:
    """In the forked child: take the request's streams, environment and arguments, then run it
    as `python -m dlwp.cli ARGS` would, and exit with its status."""
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the child's stdin for its whole life
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _add_pythonpath(request["env"].get("PYTHONPATH", ""))
    import dlwp.cli

    sys.argv = [dlwp.cli.__file__, *request["args"]]
    try:
        code = dlwp.cli.main(request["args"])
    except SystemExit as stop:
        code = stop.code
    except BaseException:  # as the interpreter does: the traceback on stderr, exit status 1
        sys.excepthook(*sys.exc_info())
        code = 1
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    _exit(code or 0)


def _add_pythonpath(value: str) -> None:
    """A PYTHONPATH of the request's own, where the interpreter would put it (after the working
    directory of `-m`). The client sends one only when none of its folders holds a module the
    server has already imported (`shadows_nothing`), so the child imports what a fresh one would."""
    entries = [e for e in value.split(os.pathsep) if e and e not in sys.path]
    sys.path[1:1] = entries


def shadows_nothing(value: str) -> bool:
    """True when no folder of this PYTHONPATH value holds a top-level module already imported
    here (or in the server, which imports the same PRELOAD and WARM)."""
    imported = {name.partition(".")[0] for name in (*sys.modules, *PRELOAD, *WARM)}
    for entry in filter(None, value.split(os.pathsep)):
        with contextlib.suppress(OSError):
            for child in os.listdir(entry):
                if child.removesuffix(".py") in imported:
                    return False
    return True


def _exit(code: int) -> NoReturn:
    """The interpreter's shutdown up to, not including, tearing down every module (seconds with
    torch, Lightning and W&B loaded, and nothing a command's result depends on): wait for
    non-daemon threads, run atexit functions, flush the streams."""
    import atexit
    import threading

    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed stream: nothing left to flush
            stream.flush()
    os._exit(code)


def serve() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    for name in WARM:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    print(json.dumps({"ready": True}), file=answers)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            answers.close()
            _become_command(request)  # never comes back
        print(json.dumps({"pid": pid}), file=answers)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), file=answers)


if __name__ == "__main__":
    serve()
