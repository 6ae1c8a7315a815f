"""The `dlwp` command. Kept import-light: `--help` and `tasks` never import torch or Lightning."""

from __future__ import annotations

import sys

USAGE = """\
usage: dlwp <command> [hydra overrides ...]

Deep Learning with Python (1st ed.) experiments as reproducible Lightning + Hydra runs.

commands:
  train [key=value ...]   train a book task (default: the embedded digits task)
                            dlwp train task=mnist_dense seed=1 trainer.max_epochs=3
                            dlwp train -m task=digits_dense seed=0,1,2      (Hydra multirun)
                            dlwp train ckpt_path=last                       (resume the newest run)
                            dlwp train --cfg job                            (print the config)
  eval ckpt_path=PATH     evaluate a checkpoint (or a run directory) on its task's test split
  tasks                   list the book tasks with their section, dataset and book result
  ensemble ckpt_paths=[..] | sweep=DIR top_k=K
                          average saved checkpoints of one task (book 7.3), evaluate on test
  report PATH             book-style figures + summary.md for a run or a sweep directory
  data list|status|fetch  the book's datasets: registry, what is on disk, verified download
                            dlwp data fetch mnist --mirror ../shared/datasets

Runs are written to runs/<task>/<timestamp>/ (run.json, config.yaml, metrics.csv, checkpoints/).
`dlwp train --help` shows Hydra's help, with every config group and option.
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "--version":
        from importlib.metadata import version

        print(f"dlwp {version('dlwp')}")
        return 0
    if command == "tasks":
        from dlwp.catalog import print_tasks

        print_tasks()
        return 0
    if command == "report":
        from dlwp.report import main as report_main

        return report_main(rest)
    if command == "data":
        from dlwp.data.cli import main as data_main

        return data_main(rest)
    if command in ("train", "eval", "ensemble"):
        return _run_hydra(command, rest)
    print(f"dlwp: unknown command {command!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2


def _run_hydra(command: str, overrides: list[str]) -> int:
    """Hand the overrides to Hydra, so `-m`, `--cfg`, `--help` and sweeps behave as Hydra's do."""
    import hydra

    from dlwp.config.schema import register
    from dlwp.errors import DlwpError
    from dlwp.paths import conf_dir, register_resolvers

    register()
    register_resolvers()
    original_argv = list(sys.argv)

    def task_function(cfg) -> float | None:
        # Restore the real command line: DDP launchers re-run sys.argv in each worker process.
        sys.argv = original_argv
        from hydra.core.hydra_config import HydraConfig

        in_sweep = HydraConfig.get().mode.name == "MULTIRUN"
        try:
            if command == "train" and cfg.kfold.k > 0:
                from dlwp.kfold import run_kfold

                return run_kfold(cfg)
            if command == "train":
                from dlwp.train import objective, train

                return objective(cfg, train(cfg))
            if command == "ensemble":
                from dlwp.ensemble import ensemble

                ensemble(cfg)
                return None
            from dlwp.evaluate import evaluate

            evaluate(cfg)
            return None
        except DlwpError as err:
            print(f"dlwp {command}: error: {err}", file=sys.stderr)
            if in_sweep:  # one bad job must not end the sweep; its run.json records the failure
                return float("nan")
            raise SystemExit(2) from None
        except Exception as err:
            if not in_sweep:
                raise
            print(f"dlwp {command}: job failed: {type(err).__name__}: {err}", file=sys.stderr)
            return float("nan")

    sys.argv = [f"dlwp {command}", *overrides]
    entry = hydra.main(config_path=str(conf_dir()), config_name=command, version_base="1.3")(task_function)
    try:
        entry()
    finally:
        sys.argv = original_argv
    return 0


if __name__ == "__main__":
    sys.exit(main())
