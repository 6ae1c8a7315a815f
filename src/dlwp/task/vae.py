"""Book 8.4's VAE as a task: the images are their own targets; the loss is the book's.

Keras' `vae_loss`: binary cross-entropy between the flattened batch and its reconstruction, one
mean over every pixel of the batch (Keras clips the probabilities to [1e-7, 1 - 1e-7]), plus
`-5e-4 * mean(1 + z_log_var - z_mean^2 - exp(z_log_var))` over the latent dimensions, averaged
over the batch. Logged as `stage/loss` with its parts `stage/bce` and `stage/kl`. At the end of
training the decoder draws book figure 8.14 (a 15 x 15 grid over the latent plane at the normal
distribution's 5-95% quantiles) into `latent_grid.png` in the run directory.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric

from dlwp import compat
from dlwp.errors import ConfigError
from dlwp.task.base import BookTask
from dlwp.task.heads import EPS, binary_loss
from dlwp.task.metrics import BatchMean
from dlwp.visualize.images import save_png, tile


class VAETask(BookTask):
    """Args:
    kl_weight: the weight of the KL term (book: 5e-4, applied to its mean over latent dims).
    keras_loss: clip the reconstruction's probabilities as Keras' cross-entropy does.
    grid: points per side of the latent grid drawn at the end (book: 15); 0 draws none.
    **kwargs: see `BookTask` (network, seed, optimizer).
    """

    def __init__(self, network: nn.Module, seed: int, kl_weight: float = 5e-4, keras_loss: bool = True,
                 grid: int = 15, **kwargs) -> None:  # fmt: skip
        super().__init__(network, seed, **kwargs)
        if not hasattr(network, "decode"):
            raise ConfigError("task._target_=dlwp.task.VAETask needs a network with a decoder (model=vae)")
        self.kl_weight, self.keras_loss, self.grid = kl_weight, keras_loss, grid
        self.register_metrics()

    def make_metrics(self) -> dict[str, Metric]:
        return {"bce": BatchMean(), "kl": BatchMean()}

    def _step(self, stage: str, batch, batch_idx: int) -> torch.Tensor:
        inputs, _labels = batch  # the labels are not used: the images are the targets
        return super()._step(stage, (inputs, inputs), batch_idx)

    def objective(self, outputs: dict[str, torch.Tensor], targets: torch.Tensor,
                  metrics: nn.ModuleDict) -> torch.Tensor:  # fmt: skip
        logits = outputs["logits"]
        bce = binary_loss(logits, targets.float(), self.keras_loss)  # float32 also under bf16 autocast
        z_mean, z_log_var = outputs["z_mean"].float(), outputs["z_log_var"].float()
        kl = (-self.kl_weight * (1 + z_log_var - z_mean.square() - z_log_var.exp()).mean(dim=-1)).mean()
        n = len(targets)
        compat.fast_update(metrics["bce"], bce.detach(), n)
        compat.fast_update(metrics["kl"], kl.detach(), n)
        return bce + kl

    baselines_of = "inputs"  # run_baselines hands this task the images, not the labels

    def baselines(self, train: torch.Tensor, test: torch.Tensor) -> dict[str, float]:
        """The loss of a "reconstruction" that ignores its input: the mean training image, scored
        on the evaluated split (clipped as Keras' cross-entropy; no KL term)."""
        mean = train.float().mean(0).clamp(EPS, 1 - EPS)
        total, n = 0.0, 0
        for chunk in test.float().split(4096):
            total += float(F.binary_cross_entropy(mean.expand_as(chunk), chunk, reduction="sum"))
            n += chunk.numel()
        return {"mean_image_bce": total / n}

    def on_train_end(self) -> None:
        super().on_train_end()
        if self.grid and self.trainer.is_global_zero and self.network.latent_dim == 2:
            save_latent_grid(self.network, self.grid, Path(self.trainer.default_root_dir) / "latent_grid.png")


def latent_points(n: int) -> torch.Tensor:
    """The book's grid, row by row: `q = norm.ppf(linspace(0.05, 0.95, n))`; the image in row i,
    column j decodes z = (q[j], q[i]) (the book's `z_sample = [[xi, yi]]`)."""
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n, dtype=torch.float64)).float()
    rows, columns = torch.meshgrid(q, q, indexing="ij")
    return torch.stack([columns, rows], dim=-1).reshape(-1, 2)


def save_latent_grid(network: nn.Module, n: int, path: Path) -> None:
    """Book figure 8.14: the decoded images of an n x n grid of latent points, as one picture."""
    device = next(network.parameters()).device
    training = network.training
    network.eval()
    try:
        images = network.decode(latent_points(n).to(device))
    finally:
        network.train(training)
    save_png(tile(images.detach().float().cpu(), n), path)
