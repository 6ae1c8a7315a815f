"""`dlwp train`: one run of one task, from a composed config to a complete run record."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlwp import checkpoints
from dlwp.errors import ConfigError, DataMissingError, StorageError
from dlwp.paths import claim_dir, discard_if_unused
from dlwp.record import RunRecord, best_of, device_info, file_identities, write_atomic
from dlwp.redact import redact_argv, redact_tree
from dlwp.startup import StartupClock


def output_dir(cfg: DictConfig, kind: str | None = None) -> Path:
    """The run directory Hydra claimed (see `conf/hydra/default.yaml`), or a new one under
    `runs/<kind or task>/` when called outside Hydra (from Python)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return claim_dir(Path(cfg.paths.runs_dir) / (kind or cfg.task.name))


def job_overrides() -> list[str]:
    """This job's own command-line overrides (for a sweep job: the ones the sweeper chose)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.task
            if not o.startswith(("paths.", "trainer.enable_progress", "reproduces="))]  # fmt: skip


def is_rank_zero() -> bool:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def same_config_on_all_ranks(config_yaml: str, run_dir: Path, overrides: list[str]):
    """A callback that stops a distributed run, before any training step, whose processes were
    given different configs (say, a launcher started the ranks of a sweep job with different
    parameters) or different run directories (`torchrun` without `hydra.run.dir`), and logs each
    rank's overrides (rank N > 0 logs to `<run>/train_ddp_process_N.log`)."""
    import logging

    from lightning.pytorch.callbacks import Callback

    mine = (config_yaml, str(run_dir))

    class SameConfigOnAllRanks(Callback):
        checked = False

        def setup(self, trainer, pl_module, stage: str) -> None:
            if self.checked or trainer.world_size < 2:
                return
            self.checked = True
            reference = tuple(trainer.strategy.broadcast(mine, src=0))
            same = trainer.strategy.reduce_boolean_decision(reference == mine, all=True)
            logging.getLogger("dlwp.train").info(
                "rank %d of %d: overrides %s; config %s rank 0's; run directory %s", trainer.global_rank,
                trainer.world_size, " ".join(redact_argv(overrides)),
                "identical to" if reference[0] == mine[0] else "DIFFERENT from", mine[1],
            )  # fmt: skip
            if not same:
                raise ConfigError(
                    "the processes of this distributed run were given different configs or run "
                    "directories: every rank must get the same overrides, and a launcher that starts "
                    "the processes itself (torchrun, srun) needs hydra.run.dir=<one directory> "
                    "(see docs/SCALING.md)"
                )

    return SameConfigOnAllRanks()


def join_workers(trainer, timeout: float = 120) -> None:
    """On rank 0 of a DDP run whose other ranks Lightning started on this machine: wait until those
    processes have exited (killing one that hangs), so that a command, or a sweep job, ends only
    after all of its processes and the next job never overlaps with them."""
    import subprocess

    launcher = getattr(getattr(trainer, "strategy", None), "launcher", None)
    for proc in list(getattr(launcher, "procs", None) or []):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def evaluate_untrained(trainer, module, datamodule, history) -> None:
    """`trainer.max_epochs=0`: the network as built, on the validation split, as one history row
    ("epoch 0"), so that its record and report read like a trained run's."""
    from dlwp.callbacks.history import write_metrics_csv

    if "val" not in datamodule.splits:
        return
    history.rows = [{"epoch": 0} | validation_metrics(trainer, module, datamodule)]
    if trainer.is_global_zero:
        write_metrics_csv(history.path, history.rows)


def early_stopping_summary(trainer, module, datamodule) -> dict[str, Any] | None:
    """What early stopping did, for the run record; when it put the best epoch's weights back, the
    validation metrics of the restored network (they equal that epoch's row of metrics.csv)."""
    from dlwp.callbacks import EarlyStoppingRestoringBest

    stopping = next((c for c in trainer.callbacks if isinstance(c, EarlyStoppingRestoringBest)), None)
    if stopping is None:
        return None
    summary = stopping.summary()
    if stopping.restored and "val" in datamodule.splits:
        summary["restored_val"] = validation_metrics(trainer, module, datamodule)
    return summary


def validation_metrics(trainer, module, datamodule) -> dict[str, float]:
    """One validation pass of the network as it is now: its `val/*` metrics, rounded as recorded."""
    validated = trainer.validate(module, datamodule=datamodule, verbose=False)
    return {k: round(float(v), 7) for k, v in sorted(validated[0].items()) if k.startswith("val/")}


def quiet_lightning() -> None:
    """Route Lightning's log through the run's handlers (console: warnings; train.log: all)."""
    import logging
    import warnings

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Known-harmless notices of this Lightning/torch pairing and of tasks without validation data.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r"Total length of `list` across ranks is zero")


def train(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Fit, test, and record; returns the run record. Raises `DlwpError` on bad input, and
    `SystemExit(143)` (130 for Ctrl-C) after a SIGTERM, with the run recorded as interrupted."""
    clock = StartupClock()  # before the first import of torch and Lightning (dlwp.signals imports them)
    from dlwp.signals import stop_signals

    with stop_signals():
        return _train(cfg, run_dir, clock)


def _train(cfg: DictConfig, run_dir: Path | None, clock: StartupClock) -> dict[str, Any]:
    import lightning as L

    quiet_lightning()

    from dlwp.callbacks import EpochHistory, build_callbacks
    from dlwp.config import build, to_plain, validate
    from dlwp.logger import build_loggers
    from dlwp.model.summary import layer_table
    from dlwp.trainer import build_trainer

    clock.mark("import_lightning")  # torch, Lightning and what they import eagerly
    run_dir = run_dir or output_dir(cfg)
    try:
        cfg = validate(cfg)
    except ConfigError:
        discard_if_unused(run_dir)
        raise
    rank_zero = is_rank_zero()
    record = RunRecord(run_dir, "train", Path(cfg.paths.root), enabled=rank_zero)
    resolved = redact_tree(to_plain(cfg, resolve=True))  # what config.yaml and the trackers get
    config_yaml = OmegaConf.to_yaml(OmegaConf.create(resolved))
    if rank_zero:
        write_atomic(run_dir / "config.yaml", config_yaml)
    record.update(
        task=cfg.task.name, section=cfg.task.section, seed=cfg.seed, config_file="config.yaml",
        overrides=redact_argv(job_overrides()),
    )  # fmt: skip
    if cfg.reproduces:
        record.update(reproduces=cfg.reproduces)
    wandb_logger, trainer = None, None
    try:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        clock.mark("config_and_record")  # validation, config.yaml, git state, package versions
        datamodule, module = build(cfg)
        clock.mark("build")  # the data module and the network
        fetch_on_first_use(cfg, datamodule)
        record.update(data=data_record(cfg, datamodule, run_dir))
        _check_registered(cfg, datamodule, record)  # before reading any data
        _check_pinned(cfg, record.data["data"]["version"])  # before reading any data
        datamodule.setup("fit")  # a missing or corrupt dataset fails here, before any Lightning set-up
        record.data["data"]["sizes"] = datamodule.sizes()
        if (pretrained := datamodule.init_network(module.network)) is not None:
            record.update(pretrained_embedding=pretrained)
        clock.mark("data")  # hashes, the DVC pin, reading (or preparing) the dataset
        example = datamodule.example_batch()
        module.check_batch(example)  # named outputs and targets fit the task
        if rank_zero:  # Keras' model.summary(), from this real batch
            table = layer_table(module.network, lambda: module.example_outputs(module.formatted(example[0])))
            write_atomic(run_dir / "model_summary.txt", table)
        if rank_zero and (figure := datamodule.save_examples(run_dir / "augmentation.png")) is not None:
            record.update(augmentation_figure=figure.name)
        record.update(baselines=run_baselines(module, datamodule))
        _check_monitor(cfg, datamodule, module)
        _check_trainable(cfg, module)
        ckpt_path = None
        if cfg.ckpt_path is not None:
            if cfg.init_from is not None:
                raise ConfigError("ckpt_path resumes a run (weights, optimiser, epoch); init_from starts a new "
                                  "one from weights: give one of them")  # fmt: skip
            ckpt_path = checkpoints.resolve(cfg.ckpt_path, Path(cfg.paths.runs_dir), cfg.task.name, prefer="last")
            stored = checkpoints.load(ckpt_path)
            checkpoints.check_task(stored, ckpt_path, cfg.task.name)
            checkpoints.check_same_network(stored, ckpt_path, to_plain(cfg.model, resolve=True))
        record.update(resumed_from=str(ckpt_path) if ckpt_path else None)
        if cfg.init_from is not None:
            record.update(init_from=checkpoints.init_from(module, cfg.init_from, Path(cfg.paths.runs_dir)))
        if module.frozen:
            record.update(frozen_parameters=len(module.frozen))
        module.run_config = redact_tree(to_plain(cfg, resolve=False))  # stored in every checkpoint
        clock.mark("summary_and_baselines")  # the layer table, example figures, the trivial baselines

        def started() -> None:
            clock.mark("fit_to_first_step")  # Lightning's set-up of the fit and of the data loaders
            record.update(startup_s=clock.total_s, startup_phases=clock.phases)

        history = EpochHistory(
            run_dir / "metrics.csv", on_epoch=lambda row: record.update(epochs_done=row["epoch"]), on_start=started
        )
        # W&B runs on rank 0 only: on other ranks Lightning hands out a stand-in, not a W&B run.
        logger_cfg = cfg if rank_zero else OmegaConf.merge(cfg, {"logger": {"wandb": {"enabled": False}}})
        loggers, wandb_logger, wandb_info = build_loggers(logger_cfg, run_dir, resolved)
        if wandb_info:
            record.update(wandb=wandb_info)
        callbacks = build_callbacks(cfg, run_dir, history)
        callbacks.append(same_config_on_all_ranks(config_yaml, run_dir, job_overrides()))
        trainer = build_trainer(cfg, run_dir, callbacks, loggers)
        distribution = {
            "devices": trainer.num_devices,
            "precision": str(trainer.precision),
            "strategy": type(trainer.strategy).__name__,
            "num_nodes": trainer.num_nodes,
            "world_size": trainer.world_size,
        }
        record.update(device=device_info(trainer.strategy.root_device.type) | distribution)
        clock.mark("loggers_and_trainer")
        if cfg.trainer.max_epochs == 0:
            record.update(trained=False)  # reports and summaries say so: these are not a trained result
            evaluate_untrained(trainer, module, datamodule, history)
        else:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
            if (stopping := early_stopping_summary(trainer, module, datamodule)) is not None:
                record.update(early_stopping=stopping)
        final = dict(history.rows[-1]) if history.rows else {}
        if cfg.test and "test" not in datamodule.splits:
            print(f"dlwp: {cfg.task.name}: this dataset has no test split; nothing tested", file=sys.stderr)
        elif cfg.test:
            tested = trainer.test(module, datamodule=datamodule, verbose=False)
            final |= {k: round(float(v), 7) for k, v in tested[0].items()}
        record.update(
            metrics={"final": final, "best": best_of(history.rows)},
            checkpoints=_checkpoint_files(run_dir),
        )
        from dlwp.model import native_rnn

        if native := native_rnn.state():  # which recurrent layers ran in C, and which could not
            record.update(native_loops=native)
        record.finish("completed")
    except BaseException as err:
        signal_name = interrupting_signal(err, trainer)
        stopped = signal_name or isinstance(err, (KeyboardInterrupt, SystemExit))
        # on a full disk this write may fail too: the record then reads `stale` (dlwp.record.status_of)
        with contextlib.suppress(OSError):
            record.finish("interrupted" if stopped else "failed",
                          err if not signal_name else RuntimeError(f"interrupted by {signal_name}"))  # fmt: skip
        if isinstance(err, OSError) and err.errno in STORAGE_ERRNOS:
            raise storage_error(err, run_dir) from err
        if signal_name:
            if rank_zero:
                print(interrupted_message(cfg, record.data, signal_name, run_dir), file=sys.stderr)
            from dlwp.signals import SIGNAL_NUMBERS

            raise SystemExit(128 + SIGNAL_NUMBERS[signal_name]) from None  # what a scheduler expects
        raise
    finally:
        if wandb_logger is not None:  # also after a failure: close the W&B run, keep what it has
            from dlwp.logger.wandb import finish_wandb

            record.update(wandb=record.data["wandb"] | finish_wandb(wandb_logger, record.data, run_dir, cfg))
        join_workers(trainer)
    if rank_zero:
        print(summary(cfg, record.data), file=sys.stderr)
    return record.data


STORAGE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)


def storage_error(err: OSError, run_dir: Path) -> StorageError:
    """A failed write as one line: which file, why, and that the last complete checkpoint is kept."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        kept = f"its last complete checkpoint {last} is kept (resume with ckpt_path={run_dir})"
    else:
        kept = "no checkpoint had been saved"
    what = err.filename or "a file of the run"
    return StorageError(f"could not write {what}: {err.strerror or err}; the run stopped and {kept}. "
                        "Free space or choose another paths.runs_dir")  # fmt: skip


def interrupting_signal(err: BaseException, trainer) -> str | None:
    """SIGTERM (a scheduler's preemption, `kill`) or SIGINT (Ctrl-C) when that is what ended the
    run: Lightning turns the first into `SIGTERMException` and the second into `sys.exit(1)`."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from dlwp.signals import received

    if received() is not None:  # dlwp's own handler saw it (dlwp.signals)
        return received()
    if isinstance(err, SIGTERMException) or getattr(trainer, "received_sigterm", False):
        return "SIGTERM"
    if isinstance(err, KeyboardInterrupt):
        return "SIGINT"
    if isinstance(err, SystemExit) and trainer is not None and trainer.interrupted:
        return "SIGINT"
    return None


def interrupted_message(cfg: DictConfig, data: dict[str, Any], signal_name: str, run_dir: Path) -> str:
    """One line: what stopped the run, and the command that resumes it (when an epoch was saved)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    done = data.get("epochs_done")
    head = f"dlwp train: interrupted by {signal_name}" + (f" after epoch {done}" if done else " before any epoch ended")
    if last.is_file():
        overrides = [o for o in data.get("overrides", []) if not o.startswith(("ckpt_path=", "init_from="))]
        command = " ".join(["dlwp train", *(overrides or [f"task={cfg.task.name}"]), f"ckpt_path={run_dir}"])
        return f"{head}; resume with: {command}"
    return f"{head}; no checkpoint was saved, so nothing to resume: start the run again"


def main(cfg: DictConfig) -> float:
    """`dlwp train`: one run, or a K-fold run (`kfold.k > 0`); returns the sweep objective."""
    if cfg.kfold.k > 0:
        from dlwp.kfold import run_kfold

        return run_kfold(cfg)
    return objective(cfg, train(cfg))


def objective(cfg: DictConfig, data: dict[str, Any]) -> float:
    """The number a sweep optimises: the best value of `task.monitor` over the run's epochs."""
    metrics = data.get("metrics", {})
    best = metrics.get("best", {}).get(cfg.task.monitor)
    value = best["value"] if best else metrics.get("final", {}).get(cfg.task.monitor)
    return float("nan") if value is None else float(value)


MANY_FILES = 50
"""Beyond this many data files, run.json names them by one digest and lists them in a file beside it."""


def data_record(cfg: DictConfig, datamodule, run_dir: Path | None = None) -> dict[str, Any]:
    """What data a run read: module, source, each file's sha256, split sizes, the DVC version.

    With more than `MANY_FILES` files (a folder of images) run.json gets their count, bytes and
    the sha256 of their list, and `<run>/data.sha256` lists each one (`sha256sum -c` format).
    """
    from dlwp.data.registry import identify
    from dlwp.data.version import data_version

    files = datamodule.data_files()
    data_dir = Path(cfg.paths.data_dir).resolve()
    under_data_dir = any(data_dir in Path(f).resolve().parents for f in files)
    version = (
        data_version(Path(cfg.paths.root), data_dir)
        if under_data_dir
        else {"tracked": False, "in_sync": None, "reason": "the files read are not under paths.data_dir"}
    )
    identities = file_identities(files)
    record = {"module": cfg.data._target_, "source": datamodule.source, "version": version}
    if len(identities) <= MANY_FILES:
        record["files"] = [f | (identify(f["sha256"]) or {"variant": "not in the registry"}) for f in identities]
        return record
    listing = "".join(f"{f['sha256']}  {f['path']}\n" for f in identities)
    if run_dir is not None and is_rank_zero():
        write_atomic(run_dir / "data.sha256", listing)
    known = sum(identify(f["sha256"]) is not None for f in identities)
    record["files"] = {
        "count": len(identities),
        "bytes": sum(f["bytes"] for f in identities),
        "list_sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "list_file": "data.sha256" if run_dir is not None else None,
        "in_registry": known,
    }
    return record


def run_baselines(module, datamodule) -> dict[str, float]:
    """The task's trivial baselines on the test split (or validation, without one), and the data's."""
    evaluated = "test" if "test" in datamodule.splits else "val" if "val" in datamodule.splits else None
    part = datamodule.inputs if getattr(module, "baselines_of", "targets") == "inputs" else datamodule.targets
    found = module.baselines(part("train"), part(evaluated)) if evaluated else {}
    return found | datamodule.baselines()


def fetch_on_first_use(cfg: DictConfig, datamodule) -> None:
    """Fetch a task's missing data before training, as Keras' `load_data()` does: from
    `$DLWP_DATA_MIRROR` when set, else the dataset's published URLs, verified, with a progress
    bar. Nothing happens with `data.download=false`, for data outside `paths.data_dir`, or for a
    dataset the registry does not know; the data module then says what is missing and how to get it."""
    name = getattr(datamodule, "dataset", None)
    if datamodule.source != "real" or not getattr(datamodule, "download", False) or name is None:
        return
    data_dir = Path(cfg.paths.data_dir).resolve()
    missing = [Path(f) for f in datamodule.files() if not Path(f).is_file()]
    if not missing or not all(data_dir in f.resolve().parents for f in missing):
        return
    from dlwp.data.base import ways_to_get
    from dlwp.data.fetch import fetch, mirror_root

    mirror = mirror_root()  # a DLWP_DATA_MIRROR that does not exist stops here, in one line
    where = f"the mirror {mirror}" if mirror else "its published URL"
    print(f"dlwp: {name} is not in {data_dir}; fetching it from {where} (data.download=false to stop instead)",
          file=sys.stderr)  # fmt: skip
    try:
        fetch(name, data_dir, mirror, progress=True)
    except DataMissingError as err:
        raise DataMissingError(f"{name} is missing and could not be fetched: {err}\n{ways_to_get(name)}") from None


def _check_registered(cfg: DictConfig, datamodule, record: RunRecord) -> None:
    """Stop before training on a registered dataset file whose bytes are none of its registered
    versions (`dlwp data status`: corrupt), unless `allow_unverified_data=true`, which run.json
    records (`data.allowed_unverified`). Files the registry does not name are not checked."""
    from dlwp.data.fetch import ChecksumError, unmatched_files

    identities = file_identities(datamodule.data_files())  # hashed once: data_record's are cached
    data_dir = Path(cfg.paths.data_dir)
    bad = unmatched_files([(f["path"], f["sha256"]) for f in identities], data_dir)
    if not bad:
        return
    by_path = {b["path"]: b for b in bad}
    for entry in record.data["data"]["files"] if isinstance(record.data["data"]["files"], list) else []:
        if (found := by_path.get(entry["path"])) is not None:  # not "not in the registry": a registered file
            entry.update(dataset=found["dataset"], file=found["file"], variant="matches no registered version")
    if cfg.get("allow_unverified_data", False):
        record.update(data=record.data["data"] | {"allowed_unverified": [b["path"] for b in bad]})
        if is_rank_zero():
            print(f"dlwp: allow_unverified_data=true: training on {len(bad)} file(s) that match no registered "
                  f"version ({bad[0]['path']}{', ...' if len(bad) > 1 else ''}); run.json records them",
                  file=sys.stderr)  # fmt: skip
        return
    from dlwp.paths import project_root

    first = bad[0]
    more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
    where = "" if data_dir.resolve() == (project_root() / "data").resolve() else f" --data-dir {data_dir}"
    raise ChecksumError(
        f"{first['path']}{more}: its sha256 {first['sha256']} matches no registered version of "
        f"{first['file']} (`dlwp data status`: corrupt). Restore it with `dlwp data{where} fetch {first['dataset']}`, "
        "or train on it anyway with allow_unverified_data=true"
    )


def _check_pinned(cfg: DictConfig, version: dict[str, Any]) -> None:
    from dlwp.data.version import describe, not_in_cache

    if cfg.require_pinned_data and version.get("in_sync") is not True:
        fix = "" if not_in_cache(version) else " Restore the pinned data with `dvc checkout` (or `dvc pull`)."
        raise DataMissingError(
            f"require_pinned_data=true but {describe(version)}.{fix} Or run with require_pinned_data=false."
        )


def _check_monitor(cfg: DictConfig, datamodule, module) -> None:
    monitor = cfg.task.monitor
    if monitor not in module.metric_names():
        logged = [n for n in module.metric_names() if not n.startswith("test/")]
        raise ConfigError(f"task.monitor={monitor} is not a metric this task logs; it logs {', '.join(logged)}")
    stage = monitor.split("/", 1)[0]
    if stage == "val" and "val" not in datamodule.sizes():
        raise ConfigError(
            f"task.monitor={monitor} needs a validation split, but this data has none: "
            "set data.val_size (samples held out from training) or task.monitor=train/loss"
        )
    if stage == "test":
        raise ConfigError(f"task.monitor={monitor}: the best checkpoint cannot be chosen on the test split")


def _check_trainable(cfg: DictConfig, module) -> None:
    if cfg.trainer.max_epochs < 0:
        raise ConfigError(f"trainer.max_epochs={cfg.trainer.max_epochs}: give a number of epochs, or 0 to evaluate "
                          "the network without training it")  # fmt: skip
    if cfg.trainer.max_epochs > 0 and not any(p.requires_grad for p in module.parameters()):
        raise ConfigError(f"task {cfg.task.name}: the network has no trainable parameters; set trainer.max_epochs=0 "
                          "to evaluate it as it is, or unfreeze a layer")  # fmt: skip
    if cfg.trainer.max_epochs == 0 and cfg.ckpt_path is not None:
        raise ConfigError("trainer.max_epochs=0 evaluates a network without training: it resumes nothing "
                          "(ckpt_path); to evaluate a trained run use `dlwp evaluate`")  # fmt: skip


def _checkpoint_files(run_dir: Path) -> dict[str, str]:
    return {p.stem: str(p) for p in sorted((run_dir / "checkpoints").glob("*.ckpt"))}


def summary(cfg: DictConfig, data: dict[str, Any]) -> str:
    """A few lines for the terminal: the final metrics next to the book's, and where the run is."""
    final = data.get("metrics", {}).get("final", {})
    lines = [f"dlwp: {cfg.task.name} (book {cfg.task.section}) finished in {data.get('wall_time_s', 0):.1f} s"]
    if data.get("trained") is False:
        lines[0] += ": the network as built, UNTRAINED (trainer.max_epochs=0)"
    shown = [k for k in final if k.startswith("test/")] or [k for k in final if k.startswith(("val/", "train/"))]
    width = max([12, *map(len, shown)])
    for key in shown:
        ref = cfg.task.reference.get(key)  # None: no book number for it
        ref_text = f"   (book: {ref:.4f})" if ref is not None else ""
        lines.append(f"  {key:<{width}} {final[key]:.4f}{ref_text}")
    if data.get("baselines"):
        lines.append("  baselines:    " + ", ".join(f"{k} {v:.4f}" for k, v in data["baselines"].items()))
    lines.append(f"  run: {data['run_dir']}")
    return "\n".join(lines)
