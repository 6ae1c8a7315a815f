"""Callbacks a run is built with: checkpoints, early stopping, the per-epoch history, and what the
trackers show besides scalars (histograms, the run's pictures)."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from dlwp.callbacks.early_stopping import EarlyStoppingRestoringBest
from dlwp.callbacks.histograms import Histograms, RunImages
from dlwp.callbacks.history import EpochHistory
from dlwp.callbacks.progress import ThrottledProgressBar
from dlwp.callbacks.text_samples import TextSamples
from dlwp.signals import ReRaiseStopSignal


def build_callbacks(cfg, run_dir: Path, history: EpochHistory) -> list[Callback]:
    """`checkpoints/best.ckpt` (by `task.monitor`) and `checkpoints/last.ckpt`, per `cfg.callbacks`."""
    callbacks: list[Callback] = [history, RunImages(run_dir), ReRaiseStopSignal()]
    if cfg.trainer.enable_progress_bar:
        callbacks.append(ThrottledProgressBar())
    ckpt = cfg.callbacks.checkpoint
    mode = str(cfg.task.monitor_mode)  # min | max (validated by dlwp.config.schema.TaskMeta)
    # Saved at the end of the training epoch, after validation and after the history row is added,
    # so a checkpoint holds the whole epoch. Two callbacks: Lightning's own `save_last` only
    # refreshes last.ckpt on epochs where best.ckpt improved.
    common = {"dirpath": run_dir / "checkpoints", "save_on_train_epoch_end": True, "enable_version_counter": False}
    if ckpt.save_best:
        callbacks.append(ModelCheckpoint(filename="best", monitor=cfg.task.monitor, mode=mode, save_top_k=1, **common))
    if ckpt.save_last:
        callbacks.append(ModelCheckpoint(filename="last", monitor=None, save_top_k=1, **common))
    stop = cfg.callbacks.early_stopping
    if stop.enabled:
        monitor = stop.monitor or cfg.task.monitor
        if stop.mode is not None:
            stop_mode = str(stop.mode.value if hasattr(stop.mode, "value") else stop.mode)
        else:
            stop_mode = mode if monitor == cfg.task.monitor else default_mode(monitor)
        options = {"patience": stop.patience, "min_delta": stop.min_delta, "restore_best": stop.restore_best}
        callbacks.append(EarlyStoppingRestoringBest(monitor=monitor, mode=stop_mode, **options))
    histograms = cfg.callbacks.histograms
    if histograms.enabled:
        if histograms.every_n_epochs < 1:
            from dlwp.errors import ConfigError

            raise ConfigError(f"callbacks.histograms.every_n_epochs={histograms.every_n_epochs}: give 1 or more")
        callbacks.append(Histograms(histograms.every_n_epochs, histograms.activations))
    samples = cfg.callbacks.samples
    if samples.enabled:
        if samples.every_n_epochs < 1 or samples.length < 0 or any(t < 0 for t in samples.temperatures):
            from dlwp.errors import ConfigError

            raise ConfigError(f"callbacks.samples: every_n_epochs={samples.every_n_epochs} (>= 1), length="
                              f"{samples.length} (>= 0), temperatures={list(samples.temperatures)} (>= 0)")  # fmt: skip
        callbacks.append(TextSamples(run_dir, list(samples.temperatures), samples.length, samples.every_n_epochs,
                                     seed=int(cfg.seed)))  # fmt: skip
    return callbacks


def default_mode(monitor: str) -> str:
    """min for losses and errors, max for the rest (accuracy), as Keras' `mode='auto'`."""
    from dlwp.record import LOWER_IS_BETTER

    return "min" if monitor.rsplit("/", 1)[-1].endswith(LOWER_IS_BETTER) else "max"


__all__ = ["EarlyStoppingRestoringBest", "EpochHistory", "Histograms", "RunImages", "TextSamples",
           "ThrottledProgressBar", "build_callbacks"]  # fmt: skip
