"""Weights & Biases for one run: offline-first, never able to block or break the run.

Everything W&B writes stays inside the run directory (`<run>/wandb/`). Online mode needs an API
key; without one the run is logged offline instead. If the W&B service cannot be started within
`init_timeout` seconds (say, a key is set but the server is unreachable), the run goes on
without W&B and the run record says why.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def _group_and_tags(cfg, run_dir: Path) -> tuple[str, list[str]]:
    from hydra.core.hydra_config import HydraConfig

    from dlwp.redact import redact_text

    tags = [cfg.task.name, f"book-{cfg.task.section}", *map(redact_text, cfg.logger.wandb.tags)]
    group = cfg.logger.wandb.group
    if HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN":
        tags.append("sweep")
        group = group or f"sweep-{Path(HydraConfig.get().sweep.dir).name}"
    return group or cfg.task.name, tags


MODES = ("online", "offline", "disabled")


def wandb_mode(wb) -> str:
    """`logger.wandb.mode` when set, else W&B's own `WANDB_MODE` variable, else offline."""
    from dlwp.errors import ConfigError

    mode = wb.mode or os.environ.get("WANDB_MODE") or "offline"
    mode = {"dryrun": "offline", "run": "online"}.get(mode, mode)  # W&B's older names
    if mode not in MODES:
        source = "logger.wandb.mode" if wb.mode else "WANDB_MODE"
        raise ConfigError(f"{source}={mode}: W&B's mode is one of {', '.join(MODES)}")
    return mode


def build_wandb_logger(cfg, run_dir: Path, run_config: dict[str, Any]):
    """A started Lightning `WandbLogger`, or (None, reason) when W&B is off or cannot start."""
    wb = cfg.logger.wandb
    mode = wandb_mode(wb)
    if mode == "online" and not _has_api_key():
        log.warning("logger.wandb.mode=online but no W&B API key: logging offline (`wandb sync` later)")
        mode = "offline"
    for key, value in (("WANDB_SILENT", "true"), ("WANDB_CONSOLE", "off"), ("WANDB_DIR", str(run_dir))):
        os.environ.setdefault(key, value)
    os.environ["WANDB_DIR"] = str(run_dir)  # this run's, also in multirun jobs
    try:
        import wandb
        from lightning.pytorch.loggers import WandbLogger

        from dlwp.redact import redacted_sys_argv

        group, tags = _group_and_tags(cfg, run_dir)
        logger = WandbLogger(
            project=wb.project,
            entity=wb.entity,
            name=wb.name or run_dir.name,
            group=group,
            tags=tags,
            save_dir=str(run_dir),
            mode=mode,
            config=run_config,
            settings=wandb.Settings(init_timeout=wb.init_timeout, console="off", silent=True),
        )
        with redacted_sys_argv():  # W&B records the command line in the run's metadata
            logger.experiment  # start now: a failure shows up here, not in the middle of training  # noqa: B018
    except Exception as err:  # W&B must never cost the run; the record keeps the reason
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        log.warning("W&B could not start (%s); the run continues without it", reason)
        return None, {"status": "failed", "error": reason, "mode": mode}
    run = logger.experiment
    return logger, {"status": "running", "mode": mode, "id": run.id, "dir": str(Path(run.dir).parent)}


def finish_wandb(logger, record: dict[str, Any], run_dir: Path, cfg) -> dict[str, Any]:
    """Summary metrics, the best checkpoint as an artifact, images; then close the W&B run."""
    import wandb

    info: dict[str, Any] = {}
    try:
        run = logger.experiment
        metrics = record.get("metrics", {})
        run.summary.update({k: v for k, v in metrics.get("final", {}).items() if "/" in k})
        run.summary.update({f"{k}_best": v["value"] for k, v in metrics.get("best", {}).items()})
        run.config.update({"record": _record_summary(record)}, allow_val_change=True)
        best = run_dir / "checkpoints" / "best.ckpt"
        if cfg.logger.wandb.log_checkpoint and best.is_file():
            artifact = wandb.Artifact(f"{cfg.task.name}-{run.id}", type="model", metadata=_record_summary(record))
            if best.stat().st_size > cfg.logger.wandb.reference_artifact_mb * 2**20:
                artifact.add_reference(best.resolve().as_uri(), name="best.ckpt")
                info["artifact"] = "reference"
            else:
                artifact.add_file(str(best), name="best.ckpt")
                info["artifact"] = "file"
            run.log_artifact(artifact, aliases=["best"])
        images = sorted((run_dir / "images").glob("*.png")) if (run_dir / "images").is_dir() else []
        if images:
            run.log({f"images/{p.stem}": wandb.Image(str(p)) for p in images})
        info["status"] = "finished"
    except Exception as err:
        info = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    finally:
        wandb.finish(exit_code=0 if record.get("status") in (None, "running", "completed") else 1)
    return info


def _record_summary(record: dict[str, Any]) -> dict[str, Any]:
    data = record.get("data", {})
    return {
        "git_commit": record.get("git", {}).get("commit"),
        "git_dirty": record.get("git", {}).get("dirty"),
        "data_version": (data.get("version") or {}).get("md5"),
        "data_in_sync": (data.get("version") or {}).get("in_sync"),
        "data_files": {Path(f["path"]).name: f["sha256"] for f in data.get("files", [])},
        "seed": record.get("seed"),
        "run_dir": record.get("run_dir"),
    }


def log_pictures(wb, run_dir: Path, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """A visualisation run (dlwp visualize / dream / style) to W&B: its pictures, its numbers and
    its record, offline by default. Never raises: the record keeps what went wrong."""
    mode = wandb_mode(wb)
    if mode == "online" and not _has_api_key():
        mode = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ["WANDB_DIR"] = str(run_dir)
    try:
        import wandb

        run = wandb.init(project=wb.project, entity=wb.entity, name=wb.name or run_dir.name, group=wb.group or kind,
                         tags=[kind, *wb.tags], dir=str(run_dir), mode=mode, config=record.get("config", {}),
                         settings=wandb.Settings(init_timeout=wb.init_timeout, console="off", silent=True))  # fmt: skip
        pictures = sorted((run_dir / "images").glob("*.png"))
        run.log({f"images/{p.stem}": wandb.Image(str(p)) for p in pictures})
        run.summary.update({k: v for k, v in _flat(record.get("metrics", {})).items()})
        run.summary.update({"record": _record_summary(record)})
        info = {"status": "finished", "mode": mode, "id": run.id, "dir": str(Path(run.dir).parent)}
        wandb.finish()
    except Exception as err:
        info = {"status": "failed", "error": f"{type(err).__name__}: {err}", "mode": mode}
    return info


def _flat(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = value
    return out
