"""Where a run's start-up goes: seconds per phase from the process's start to its first training
step, recorded in run.json as `startup_phases`; `startup_s` is their sum.

Why: the start-up of a short run is mostly imports, which a profiler distorts; a few clock reads
at the phase boundaries of every real run show which phase grew, with no profiler and no cost.
"""

from __future__ import annotations

import time

from dlwp.record import process_age_s

_first_run_of_process = True


class StartupClock:
    """`mark(phase)` ends a phase: the seconds since the previous mark. The first run of a process
    starts with `launch_and_compose` (the interpreter, dlwp's command line, Hydra's composition,
    read off the process's age); a later run in the same process (a sweep's jobs under Hydra's
    basic launcher) starts at its own first mark, not at the process's start."""

    def __init__(self) -> None:
        global _first_run_of_process
        age = process_age_s() if _first_run_of_process else None  # /proc clock ticks: 10 ms
        _first_run_of_process = False
        self._last = time.perf_counter()
        self.phases: dict[str, float] = {"launch_and_compose": age} if age is not None else {}

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(self.phases.get(phase, 0.0) + now - self._last, 3)
        self._last = now

    @property
    def total_s(self) -> float:
        return round(sum(self.phases.values()), 2)
