"""Book 8.5's GAN training as a task: two optimisers, one iteration per batch of real images.

Per batch of `B` real images (the book's loop): the generator draws `B` images from fresh noise;
the discriminator trains on them and the real ones with labels fake = 1, real = 0, plus
`label_noise` x U[0, 1) ("an important trick"); then the generator trains through the discriminator
(whose weights its optimiser does not hold) towards the label "real" for `B` new draws. Logged as
`train/d_loss` and `train/a_loss` (the book's names; `train/loss` is their sum). Losses are Keras'
binary cross-entropy with its probability clipping. An iteration is one batch: with data served
in order (`data.shuffle: false`) 250 batches of 20 frogs an epoch are the book's sequential walk,
so 40 epochs are its 10,000 iterations. After every `samples_every_n_epochs` epochs the generator's
images for a fixed set of latent points go to `samples/epoch_NNN.png` in the run directory, shown
as the book saves them: the generator learns the real images' [0, 1] range (the discriminator sees
real frogs `/ 255.`), so its tanh output is clipped to [0, 1], not rescaled.

With `quality_classifier=<a dlwp classifier run>` (e.g. `cifar10_convnet`), the same epochs also
measure how far `quality_images` generated images are from as many real ones in that classifier's
feature space (`dlwp.task.image_distance`): `quality/fid` and `quality/kid`, beside the floor that
two disjoint sets of real images give (`quality/fid_real`, `quality/kid_real`), in metrics.csv and
the trackers, and drawn in `quality.png`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchmetrics import Metric

from dlwp import compat
from dlwp.config.schema import OptimizerConfig
from dlwp.data.batches import BatchGroup
from dlwp.errors import ConfigError
from dlwp.task.base import BookTask, _plain
from dlwp.task.heads import binary_loss
from dlwp.task.metrics import BatchMean
from dlwp.visualize.images import save_png, tile


class GANTask(BookTask):
    """Args:
    discriminator_optimizer: the discriminator's (book: RMSprop(lr=8e-4, clipvalue=1.0, decay=1e-8)).
    generator_optimizer: the generator's, through the frozen discriminator (book: lr 4e-4).
    label_noise: added to the discriminator's labels, times U[0, 1) (book: 0.05).
    samples_every_n_epochs: how often a grid of generated images is written (and the quality
        measured); 0: never.
    quality_classifier: a dlwp classifier run (directory or .ckpt) whose feature space measures the
        generated images against real ones; None: not measured.
    quality_images: how many generated and real images each measurement compares (twice as many
        real images are needed: the floor compares two disjoint real sets).
    **kwargs: see `BookTask` (network: a `dlwp.model.dcgan.DCGAN`, seed).
    """

    def __init__(self, network: nn.Module, seed: int, discriminator_optimizer: OptimizerConfig | None = None,
                 generator_optimizer: OptimizerConfig | None = None, label_noise: float = 0.05,
                 samples_every_n_epochs: int = 1, quality_classifier: str | None = None,
                 quality_images: int = 1000, **kwargs) -> None:  # fmt: skip
        super().__init__(network, seed, **kwargs)
        if not (hasattr(network, "generator") and hasattr(network, "discriminator")):
            raise ConfigError("task._target_=dlwp.task.GANTask needs a generator and a discriminator (model=dcgan)")
        if label_noise < 0 or samples_every_n_epochs < 0:
            raise ConfigError(f"task.label_noise={label_noise}, task.samples_every_n_epochs={samples_every_n_epochs}:"
                              " both must be >= 0")  # fmt: skip
        self.d_config = _plain(discriminator_optimizer or OptimizerConfig())
        self.g_config = _plain(generator_optimizer or OptimizerConfig())
        self.label_noise, self.samples_every = label_noise, samples_every_n_epochs
        self.fixed_z = torch.randn(16, network.generator.latent_dim, generator=torch.Generator().manual_seed(seed))
        if quality_images < 2:
            raise ConfigError(f"task.quality_images={quality_images}: give at least 2 (a covariance needs them)")
        self.quality_classifier, self.quality_images = quality_classifier, quality_images
        self.quality_z = torch.randn(quality_images, network.generator.latent_dim,
                                     generator=torch.Generator().manual_seed(seed + 1))  # fmt: skip
        self.quality_rows: list[dict[str, float]] = []
        self.register_metrics()

    def make_metrics(self) -> dict[str, Metric]:
        return {"d_loss": BatchMean(), "a_loss": BatchMean()}

    def optimizer_specs(self) -> dict[str, tuple[list[tuple[str, nn.Parameter]], dict[str, Any]]]:
        return {"discriminator": (list(self.network.discriminator.named_parameters()), self.d_config),
                "generator": (list(self.network.generator.named_parameters()), self.g_config)}  # fmt: skip

    def compiled_parts(self) -> list[nn.Module]:
        return [self.network.generator, self.network.discriminator]  # called one by one, not as `network`

    def training_step(self, batch, batch_idx):
        for i, (real, _labels) in enumerate(batch if isinstance(batch, BatchGroup) else [batch]):
            self.iteration(real, batch_idx + i)

    def iteration(self, real: torch.Tensor, batch_idx: int) -> None:
        self.begin_step()
        g, d = self.network.generator, self.network.discriminator
        real = self.formatted(real)
        n = len(real)
        z = torch.randn(n, g.latent_dim, device=real.device)
        fake = g(z).detach()
        labels = torch.cat([torch.ones(n, 1), torch.zeros(n, 1)]).to(real)  # fake = 1, real = 0, as the book
        labels = labels + self.label_noise * torch.rand_like(labels)
        d_loss = binary_loss(d(torch.cat([fake, real])), labels, keras_clip=True)
        self.optimise(self.slots["discriminator"], d_loss)
        z = torch.randn(n, g.latent_dim, device=real.device)
        real_labels = torch.zeros(n, 1, device=real.device)  # "all real": fool the discriminator
        a_loss = binary_loss(d(g(z)), real_labels, keras_clip=True)
        self.optimise(self.slots["generator"], a_loss)
        metrics = self.train_metrics
        for name, value in (("d_loss", d_loss), ("a_loss", a_loss), ("loss", d_loss + a_loss)):
            compat.fast_update(metrics[name], value.detach(), n)
        if batch_idx == 0:
            for name, metric in metrics.items():
                self.log(f"train/{name}", metric, on_step=False, on_epoch=True, prog_bar=True)

    def example_outputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Both networks once (the model summary's pass): the discriminator on generated and real
        images, in evaluation mode, without gradients and without touching the global RNG."""
        g = self.network.generator
        z = torch.randn(len(inputs), g.latent_dim, generator=torch.Generator().manual_seed(0)).to(inputs.device)
        training = self.network.training
        self.network.eval()
        try:
            with torch.no_grad():
                return self.network.discriminator(torch.cat([g(z), inputs]))
        finally:
            self.network.train(training)

    def validation_step(self, batch, batch_idx):
        return None  # a GAN has no held-out loss; its quality figure is computed apart

    def test_step(self, batch, batch_idx):
        return None

    def baselines(self, train: Any, test: Any) -> dict[str, float]:
        return {}

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self._features = self._real_features = self._floor = None
        if self.quality_classifier is None:
            return
        from dlwp.task.image_distance import FeatureSpace, frechet_distance, kernel_distance

        n = self.quality_images
        real = self.trainer.datamodule.inputs("train")
        if len(real) < 2 * n:
            raise ConfigError(f"task.quality_images={n} needs {2 * n} real training images (two disjoint sets for "
                              f"the real-vs-real floor); there are {len(real)}")  # fmt: skip
        real = real[: 2 * n]
        real = real.float() / 255.0 if real.dtype == torch.uint8 else real.float()
        self._features = FeatureSpace(self.quality_classifier)
        first, second = self._features(real[:n]), self._features(real[n:])
        self._real_features = first
        self._floor = {"fid_real": frechet_distance(first, second), "kid_real": kernel_distance(first, second)}

    def generated_images(self, z: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
        """The generator's images for latent points `z` in evaluation mode, as [0, 1] images (clipped)."""
        generator = self.network.generator
        training = generator.training
        generator.eval()
        try:
            with torch.no_grad():
                return torch.cat([generator(z[i : i + batch_size].to(self.device)).clamp(0, 1).cpu()
                                  for i in range(0, len(z), batch_size)])  # fmt: skip
        finally:
            generator.train(training)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """After an epoch's last iteration (before the epoch-end hooks, so that the history and
        the trackers get this epoch's quality row): the sample grid and the quality measurement."""
        epoch = self.current_epoch + 1
        if not (self.trainer.is_last_batch and self.samples_every and epoch % self.samples_every == 0):
            return
        if self.trainer.is_global_zero:
            out = Path(self.trainer.default_root_dir) / "samples"
            out.mkdir(parents=True, exist_ok=True)
            save_png(tile(self.generated_images(self.fixed_z), 8), out / f"epoch_{epoch:03d}.png")
        if self._features is not None:
            self.measure_quality(epoch)

    def measure_quality(self, epoch: int) -> None:
        from dlwp.task.image_distance import frechet_distance, kernel_distance

        fake = self._features(self.generated_images(self.quality_z))
        row = {"fid": frechet_distance(self._real_features, fake), "kid": kernel_distance(self._real_features, fake),
               **self._floor}  # fmt: skip
        for name, value in row.items():
            self.log(f"quality/{name}", value, on_step=False, on_epoch=True, rank_zero_only=True)
        self.quality_rows.append({"epoch": epoch, "iteration": self.global_iteration(), **row})
        if self.trainer.is_global_zero:
            plot_quality(self.quality_rows, Path(self.trainer.default_root_dir) / "quality.png", self._features.run)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint.setdefault("dlwp", {})["gan_quality"] = self.quality_rows  # a resumed run's figure keeps them

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.quality_rows = list(checkpoint.get("dlwp", {}).get("gan_quality", []))

    def global_iteration(self) -> int:
        """Iterations so far (each makes two optimiser steps: `global_step` counts both)."""
        return self.trainer.global_step // 2


def plot_quality(rows: list[dict[str, float]], path: Path, classifier: str) -> None:
    """Fréchet and kernel distances over training, with the real-vs-real floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlwp.report import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x = [r["iteration"] for r in rows]
    for ax, key, title in ((axes[0], "fid", "Fréchet distance"), (axes[1], "kid", "kernel distance (KID)")):
        ax.plot(x, [r[key] for r in rows], "o-", label="generated vs real")
        ax.axhline(rows[-1][f"{key}_real"], ls="--", color="gray", label="real vs real (floor)")
        ax.set(title=title, xlabel="iteration")
        ax.legend()
    where = "/".join(Path(classifier).parts[-3:])  # e.g. cifar10_convnet/<stamp>/0 of a sweep
    fig.suptitle(f"generated vs real images, in the feature space of the classifier run {where}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
