"""Where a run's start-up goes: seconds per phase from the process's start to its first training
step, recorded in run.json as `startup_phases`; `startup_s` is their sum.

Why: the start-up of a short run is mostly imports, which a profiler distorts; a few clock reads
at the phase boundaries of every real run show which phase grew, with no profiler and no cost.
"""

from __future__ import annotations

import os
import time

_first_run_of_process = True
_command_entered: tuple[float | None, float] | None = None  # (process age, perf_counter) at `dlwp <command>`


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return round(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 2)


def command_entered() -> None:
    """Called by the `dlwp` command line on entry: what came before is the interpreter's start
    and the command line's own imports; what comes after, Hydra's composition."""
    global _command_entered
    _command_entered = (process_age_s(), time.perf_counter())


class StartupClock:
    """`mark(phase)` ends a phase: the seconds since the previous mark. The first run of a process
    starts with `launch` (the interpreter and dlwp's command line, read off the process's age) and
    `compose` (Hydra's composition of the config); a later run in the same process (a sweep's jobs
    under Hydra's basic launcher) starts at its own first mark, not at the process's start."""

    def __init__(self) -> None:
        global _first_run_of_process
        age = process_age_s() if _first_run_of_process else None  # /proc clock ticks: 10 ms
        _first_run_of_process = False
        self._last = time.perf_counter()
        self.phases: dict[str, float] = {}
        if age is not None and _command_entered is not None and _command_entered[0] is not None:
            launched, at = _command_entered
            self.phases = {"launch": launched, "compose": round(self._last - at, 3)}
        elif age is not None:  # train() called from Python: no command line
            self.phases = {"launch": age}

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now - self._last, 3)
        self._last = now

    @property
    def total_s(self) -> float:
        return round(sum(self.phases.values()), 2)
