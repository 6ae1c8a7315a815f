"""Build the `lightning.Trainer` from the typed `trainer` config node."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import OmegaConf

from dlwp.allocator import keep_freed_memory


def trainer_kwargs(trainer_cfg) -> dict[str, Any]:
    """The config as Trainer keyword arguments; `None` means "Lightning's default"."""
    kwargs = OmegaConf.to_container(trainer_cfg, resolve=True)
    kwargs.pop("accumulate_grad_batches", None)  # dlwp's own (tasks optimise manually): see BookTask.optimise
    kwargs.pop("channels_last", None)  # dlwp's own: see BookTask.use_channels_last
    kwargs.pop("compile", None)  # dlwp's own: see BookTask.compile_network
    kwargs.pop("flush_denormal", None)  # dlwp's own: see flush_denormals
    kwargs.pop("keep_freed_memory", None)  # dlwp's own: see dlwp.allocator
    kwargs.pop("cpu_threads", None)  # dlwp's own: see use_cpu_threads
    # Batches are split over processes by dlwp (dlwp.data.batches), never by a DistributedSampler.
    kwargs["use_distributed_sampler"] = False
    return {k: v for k, v in kwargs.items() if v is not None}


def skip_nvml_polling() -> None:
    """On a machine with no CUDA device, make `torch.cuda.is_available()` cheap again.

    Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 at import (to keep fork-based launchers safe on
    GPU machines). With a CUDA build of torch and no GPU, every `is_available()` call then loads
    NVML anew, and torch's optimisers call it on every step (~0.1 ms, 2-3% of a book-2.1 step).
    With no device there is nothing to protect, so the plain check is used.
    """
    import torch

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and torch.cuda.device_count() == 0:
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"


def build_trainer(cfg, run_dir: Path, callbacks: list, loggers: list) -> L.Trainer:
    """The Trainer of `cfg.trainer`; settings this machine cannot run (a GPU preset without a GPU,
    FSDP on CPU, an unknown precision) are a `ConfigError` naming the trainer settings."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from dlwp.errors import ConfigError

    skip_nvml_polling()
    use_cpu_threads(cfg.trainer.get("cpu_threads"))
    kwargs = trainer_kwargs(cfg.trainer)
    try:
        trainer = L.Trainer(default_root_dir=run_dir, callbacks=callbacks, logger=loggers or False,
                            plugins=[AtomicCheckpointIO()], **kwargs)  # fmt: skip
    except (MisconfigurationException, ValueError) as err:
        keys = ("accelerator", "strategy", "devices", "num_nodes", "precision")
        chosen = ", ".join(f"{k}={kwargs.get(k)}" for k in keys)
        raise ConfigError(
            f"this trainer cannot run here: {err}\n  trainer: {chosen}\n"
            "  presets: trainer=cpu | gpu | ddp | ddp_cpu | fsdp (docs/SCALING.md)"
        ) from err
    keep_fresh_memory_unfilled()
    flush_denormals(bool(cfg.trainer.get("flush_denormal", True)))  # a partial config gets the default
    if cfg.trainer.get("keep_freed_memory", True):
        keep_freed_memory()
    return trainer


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written as a whole or not at all (`dlwp.record.write_atomic`: temporary file,
    fsync, rename). Lightning writes into the final path, so a full disk or a kill during a save
    left a truncated `last.ckpt` that `ckpt_path=last` would then pick."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        import io

        import torch

        from dlwp.record import write_atomic

        target = Path(path)
        if "://" in str(path):  # a remote filesystem (fsspec): Lightning's own writer
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(target, buffer.getvalue())


def use_cpu_threads(threads: int | None) -> None:
    """`trainer.cpu_threads`: torch's intra-op threads for this process. $OMP_NUM_THREADS is set
    too, so that Lightning's DDP set-up (which divides the cores among processes only when it is
    unset) keeps the number asked for."""
    import torch

    if threads is None:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def flush_denormals(on: bool) -> None:
    """Treat denormal floats (|x| < 1.2e-38) as zero on the CPU, as TensorFlow's CPU kernels do.

    RMSprop's running mean of squared gradients decays by `rho` each step where a gradient is zero
    (a dead ReLU unit), through the denormal range, where x86 arithmetic is ~14x slower
    (`sqrt` of a 64x64 tensor: 25 us normal, 350 us denormal, measured here). Book 3.7's batch-1
    Boston run spent most of its optimiser time there. Flushing changes results only in numbers
    below 1.2e-38; it is a per-thread CPU flag, set for the thread that trains.
    """
    import torch

    torch.set_flush_denormal(on)


def keep_fresh_memory_unfilled() -> None:
    """Deterministic mode without torch's NaN-filling of every newly allocated tensor.

    `torch.use_deterministic_algorithms(True)` (Lightning's `deterministic=true|warn`) also fills
    each fresh allocation with NaN, a debugging aid against kernels that read memory they never
    wrote. The book's layers write every output, so results are bit-identical without it (the
    determinism and resume tests hold), and the fills cost ~30 extra kernels per training step
    (about a quarter of a book-2.1 step on the CPU; docs/PERFORMANCE.md).
    """
    import torch

    if torch.are_deterministic_algorithms_enabled():
        torch.utils.deterministic.fill_uninitialized_memory = False
