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
    def __init__(self, latent_dim: int = 32, channels: int = 3, seed_filters: int = 128, filters: int = 256) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.project = nn.Sequential(nn.Linear(latent_dim, seed_filters * 16 * 16), _leaky(),
                                     nn.Unflatten(1, (seed_filters, 16, 16)))  # fmt: skip
        self.body = nn.Sequential(
            nn.Conv2d(seed_filters, filters, 5, padding=2), _leaky(),
            nn.ConvTranspose2d(filters, filters, 4, stride=2, padding=1), _leaky(),  # 16 -> 32, Keras' 'same'
            nn.Conv2d(filters, filters, 5, padding=2), _leaky(),
            nn.Conv2d(filters, filters, 5, padding=2), _leaky(),
            nn.Conv2d(filters, channels, 7, padding=3), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z):
        return self.body(self.project(z))


class Discriminator(nn.Module):
    def __init__(self, channels: int = 3, filters: int = 128, dropout: float = 0.4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, filters, 3), _leaky(),
            nn.Conv2d(filters, filters, 4, stride=2), _leaky(),
            nn.Conv2d(filters, filters, 4, stride=2), _leaky(),
            nn.Conv2d(filters, filters, 4, stride=2), _leaky(),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(filters * 2 * 2, 1),
        )  # fmt: skip

    def forward(self, x):
        return self.body(x)


class DCGAN(nn.Module):
    """The two networks of book 8.5, trained against each other by a GAN task.

    Args:
        latent_dim: width of the generator's input noise (book: 32).
        channels: image channels (book: 3, CIFAR-10 frogs at 32 x 32).
        generator_filters: the generator's convolutions (book: 256). A book-size iteration is
            ~1 TFLOP (the two 5x5 convolutions of 256 channels at 32 x 32 dominate): a GPU's job;
            smaller widths make CPU smoke tests.
        seed_filters: channels of the 16 x 16 map the dense layer projects the noise to (book: 128).
        discriminator_filters: the discriminator's convolutions (book: 128).
        dropout: before the discriminator's last layer (book: 0.4).
        init: `keras` (glorot-uniform kernels, zero biases) or `torch`.
    """

    def __init__(self, latent_dim: int = 32, channels: int = 3, generator_filters: int = 256, seed_filters: int = 128,
                 discriminator_filters: int = 128, dropout: float = 0.4, init: str = "keras") -> None:  # fmt: skip
        super().__init__()
        self.generator = Generator(latent_dim, channels, seed_filters, generator_filters)
        self.discriminator = Discriminator(channels, discriminator_filters, dropout)
        initialise_(self, init)

    def forward(self, z):
        """The generator's images for latent points `z` [N, latent_dim], in [-1, 1]."""
        return self.generator(z)
