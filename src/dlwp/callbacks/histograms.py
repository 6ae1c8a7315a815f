"""Weight and activation histograms per epoch (book 7.2.2: Keras' `TensorBoard(histogram_freq=1)`),
written to whichever trackers the run has (TensorBoard, W&B); nothing when it has neither."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class Histograms(Callback):
    """After every `every_n_epochs`-th validation: a histogram of each parameter tensor
    (`weights/<name>`) and of each top-level layer's output on one fixed validation batch
    (`activations/<layer>`), as Keras logs them."""

    def __init__(self, every_n_epochs: int = 1, activations: bool = True) -> None:
        self.every_n_epochs, self.activations = every_n_epochs, activations
        self._batch: Any = None

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self._batch is None and not trainer.sanity_checking:
            self._batch = batch  # the first validation batch, kept for every epoch's activations

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if trainer.sanity_checking or epoch % self.every_n_epochs or not trainer.is_global_zero:
            return
        values = {f"weights/{name}": p.detach() for name, p in pl_module.network.named_parameters()}
        if self.activations and self._batch is not None:
            values |= {f"activations/{name}": out for name, out in layer_outputs(pl_module, self._batch).items()}
        log_histograms(trainer.loggers, values, epoch)


def layer_outputs(pl_module: L.LightningModule, batch: Any) -> dict[str, torch.Tensor]:
    """Each top-level layer's output tensor for `batch` (the children of the network, or of the
    layer list it wraps), in inference mode, from forward hooks; tuples keep their first tensor."""
    container = pl_module.network
    while len(children := list(container.children())) == 1:  # through wrappers to the layer list
        container = children[0]
    outputs: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_module, _inputs, output) -> None:
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(tensor, torch.Tensor):
                outputs[name] = tensor.detach()

        return hook

    handles = [child.register_forward_hook(keep(name)) for name, child in container.named_children()]
    training = pl_module.training
    try:
        pl_module.eval()
        with torch.no_grad():
            pl_module(batch[0])  # (inputs, targets), already on the device
    finally:
        pl_module.train(training)
        for handle in handles:
            handle.remove()
    return outputs


def log_histograms(loggers: list, values: dict[str, torch.Tensor], step: int) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            for name, tensor in values.items():
                logger.experiment.add_histogram(name, tensor.float().cpu(), global_step=step)
            logger.experiment.flush()
        elif isinstance(logger, WandbLogger):
            import wandb

            logger.experiment.log(
                {name: wandb.Histogram(tensor.float().cpu().numpy()) for name, tensor in values.items()}
                | {"epoch": step}
            )


class RunImages(Callback):
    """The pictures a run writes before training (`augmentation.png`: the book's figure 5.11 of
    augmented samples) to the trackers, as images, once."""

    def __init__(self, run_dir) -> None:
        self.run_dir = run_dir

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            log_images(trainer.loggers, sorted(self.run_dir.glob("*.png")))


def log_images(loggers: list, paths: list) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    if not paths:
        return
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            import numpy as np
            from PIL import Image

            for path in paths:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
                logger.experiment.add_image(f"images/{path.stem}", pixels, global_step=0, dataformats="HWC")
            logger.experiment.flush()
        elif isinstance(logger, WandbLogger):
            import wandb

            logger.experiment.log({f"images/{path.stem}": wandb.Image(str(path)) for path in paths})
