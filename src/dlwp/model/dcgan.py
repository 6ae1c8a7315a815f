"""Book 8.5's DCGAN for 32 x 32 colour images: generator (6,264,579 weights) and discriminator
(790,913), as the book's summaries. Keras' `LeakyReLU()` default slope is 0.3 (not torch's 0.01).

Generator: Dense(128*16*16) -> LeakyReLU -> reshape 16x16x128 -> Conv2D(256, 5, same) -> LeakyReLU
-> Conv2DTranspose(256, 4, strides 2, same) -> LeakyReLU -> 2 x [Conv2D(256, 5, same) -> LeakyReLU]
-> Conv2D(channels, 7, same, tanh). Discriminator: Conv2D(128, 3) -> LeakyReLU -> 3 x [Conv2D(128, 4,
strides 2) -> LeakyReLU] -> Flatten -> Dropout(0.4) -> Dense(1) (logits; the sigmoid is the loss's).
"""

from __future__ import annotations

from torch import nn

from dlwp.model.init import initialise_

KERAS_LEAKY_SLOPE = 0.3


def _leaky() -> nn.Module:
    return nn.LeakyReLU(KERAS_LEAKY_SLOPE)


class Generator(nn.Module):
    def __init__(self, latent_dim: int = 32, channels: int = 3) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.project = nn.Sequential(nn.Linear(latent_dim, 128 * 16 * 16), _leaky(), nn.Unflatten(1, (128, 16, 16)))
        self.body = nn.Sequential(
            nn.Conv2d(128, 256, 5, padding=2), _leaky(),
            nn.ConvTranspose2d(256, 256, 4, stride=2, padding=1), _leaky(),  # 16 -> 32, Keras' 'same'
            nn.Conv2d(256, 256, 5, padding=2), _leaky(),
            nn.Conv2d(256, 256, 5, padding=2), _leaky(),
            nn.Conv2d(256, channels, 7, padding=3), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z):
        return self.body(self.project(z))


class Discriminator(nn.Module):
    def __init__(self, channels: int = 3, dropout: float = 0.4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 128, 3), _leaky(),
            nn.Conv2d(128, 128, 4, stride=2), _leaky(),
            nn.Conv2d(128, 128, 4, stride=2), _leaky(),
            nn.Conv2d(128, 128, 4, stride=2), _leaky(),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(128 * 2 * 2, 1),
        )  # fmt: skip

    def forward(self, x):
        return self.body(x)


class DCGAN(nn.Module):
    """The two networks of book 8.5, trained against each other by a GAN task.

    Args:
        latent_dim: width of the generator's input noise (book: 32).
        channels: image channels (book: 3, CIFAR-10 frogs at 32 x 32).
        dropout: before the discriminator's last layer (book: 0.4).
        init: `keras` (glorot-uniform kernels, zero biases) or `torch`.
    """

    def __init__(self, latent_dim: int = 32, channels: int = 3, dropout: float = 0.4, init: str = "keras") -> None:
        super().__init__()
        self.generator, self.discriminator = Generator(latent_dim, channels), Discriminator(channels, dropout)
        initialise_(self, init)

    def forward(self, z):
        """The generator's images for latent points `z` [N, latent_dim], in [-1, 1]."""
        return self.generator(z)
