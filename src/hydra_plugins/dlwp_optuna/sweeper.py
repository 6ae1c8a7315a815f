"""A Hydra sweeper driving Optuna >= 4 (TPE), with the study in a file next to the sweep's runs.

Why not hydra-optuna-sweeper: its last release pins optuna 2.10, whose SQLite storage no longer
works with SQLAlchemy 2 (see docs/SWEEPS.md); without a storage a sweep can be neither resumed
nor shared by several workers. This sweeper asks Optuna for trials, hands them to whatever Hydra
launcher is configured (basic, joblib, submitit), and tells Optuna each job's result. A job that
fails or returns NaN is a failed trial; the sweep goes on.

    dlwp train -m hydra/sweeper=optuna hydra.sweeper.n_trials=20 \\
        'task.optimizer.lr=tag(log, interval(1e-4, 1e-2))' 'data.batch_size=choice(64,128,256)'
"""

# No `from __future__ import annotations`: Hydra imports plugins outside sys.modules, and the
# dataclass below needs real (not string) annotations then.

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from dlwp.record import write_atomic
from dlwp.redact import redact_text

log = logging.getLogger(__name__)


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.dlwp_optuna.sweeper.OptunaSweeper"
    n_trials: int = 10
    """Trials this invocation runs; a resumed sweep adds them to those already in the study."""
    n_jobs: int = 1
    """Trials handed to the launcher at once (run in parallel by a parallel launcher, e.g. joblib)."""
    direction: str | None = None
    """minimize | maximize; default: from `task.monitor_mode`."""
    study_name: str | None = None
    """Default: the sweep directory's name."""
    storage: str | None = None
    """An Optuna storage URL; default: sqlite:///<sweep dir>/optuna.db (resumable, shareable)."""
    seed: int | None = None
    """Seed of the TPE sampler; None draws one."""
    params: dict[str, str] = field(default_factory=dict)
    """Search space as override strings, e.g. {"task.optimizer.lr": "tag(log, interval(1e-4, 1e-2))"};
    sweep overrides on the command line are added to it."""


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="dlwp")


def distribution(override: Override):
    """The Optuna distribution of a Hydra sweep override (choice / range / interval, tag(log, ...))."""
    import optuna.distributions as d

    value = override.value()
    if isinstance(value, ChoiceSweep):
        return d.CategoricalDistribution([v for v in override.sweep_iterator(transformer=lambda x: x)])
    log_scale = "log" in getattr(value, "tags", set())
    if isinstance(value, RangeSweep):
        ints = all(isinstance(v, int) for v in (value.start, value.stop, value.step))
        if ints:
            return d.IntDistribution(value.start, value.stop - 1, step=value.step, log=log_scale)
        return d.FloatDistribution(value.start, value.stop, step=value.step, log=log_scale)
    if isinstance(value, IntervalSweep):
        if isinstance(value.start, int) and isinstance(value.end, int):
            return d.IntDistribution(value.start, value.end, log=log_scale)
        return d.FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line}: not a sweep (use choice(...), range(...) or interval(...))")


class OptunaSweeper(Sweeper):
    def __init__(self, n_trials, n_jobs, direction, study_name, storage, seed, params) -> None:
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.direction, self.study_name, self.storage, self.seed = direction, study_name, storage, seed
        self.params = dict(params or {})

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def _space(self, arguments: list[str]) -> tuple[dict[str, Any], list[str]]:
        parser = OverridesParser.create()
        space, fixed = {}, []
        lines = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        for override in parser.parse_overrides(lines):
            if override.is_sweep_override():
                space[override.get_key_element()] = distribution(override)
            else:
                fixed.append(override.input_line)
        if not space:
            raise ValueError("the Optuna sweeper needs a search space: e.g. 'task.optimizer.lr=interval(1e-4,1e-2)'")
        return space, fixed

    def sweep(self, arguments: list[str]) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space, fixed = self._space(arguments)
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        direction = self.direction or ("maximize" if str(self.config.task.monitor_mode) == "max" else "minimize")
        study = optuna.create_study(
            study_name=self.study_name or sweep_dir.name,
            storage=self.storage or f"sqlite:///{sweep_dir / 'optuna.db'}",
            sampler=optuna.samplers.TPESampler(seed=self.seed),
            direction=direction,
            load_if_exists=True,
        )
        log.info("Optuna study %s: %d trials so far", study.study_name, len(study.trials))
        done = 0
        while done < self.n_trials:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - done))]
            # one directory per trial number: unique even when several workers share the study
            batch = [
                [*fixed, *(f"{k}={v}" for k, v in t.params.items()), f"hydra.sweep.subdir={t.number}"] for t in trials
            ]
            returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            for trial, ret in zip(trials, returns, strict=True):
                self._tell(study, trial, ret)
            done += len(trials)
        self._write_results(study, sweep_dir)
        return study

    @staticmethod
    def _tell(study, trial, ret) -> None:
        import optuna

        value = ret._return_value if ret.status == JobStatus.COMPLETED else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            study.tell(trial, float(value))
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log.warning("trial %d failed (%s); the sweep goes on", trial.number, value)

    @staticmethod
    def _write_results(study, sweep_dir: Path) -> None:
        import optuna

        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        results: dict[str, Any] = {"study": study.study_name, "direction": study.direction.name.lower(),
                                   "trials": len(study.trials), "complete": len(complete)}  # fmt: skip
        if complete:
            results |= {"best_value": study.best_value, "best_params": study.best_params,
                        "best_trial": study.best_trial.number}  # fmt: skip
        write_atomic(sweep_dir / "optuna_results.yaml", redact_text(OmegaConf.to_yaml(OmegaConf.create(results))))
