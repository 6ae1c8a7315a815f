"""Book 8.4's variational autoencoder for 28 x 28 images with a 2-D latent space (550,629 weights,
as the book's summary).

Encoder: Conv2D(32) -> Conv2D(64, stride 2) -> Conv2D(64) -> Conv2D(64), all 3x3 'same' relu ->
Flatten(12,544) -> Dense(32, relu) -> z_mean, z_log_var = Dense(2) each. Decoder: Dense(14*14*64,
relu) -> Conv2DTranspose(32, 3, stride 2, 'same', relu) -> Conv2D(1, 3, 'same') (logits; the
sigmoid is in the loss and in `decode`). Keras' 'same' padding with stride 2 pads only the right
and bottom edges, which torch's symmetric `padding` cannot express: the strided convolution pads
explicitly, and the transposed one crops its last row and column.

`sampling`: `book` draws z = z_mean + exp(z_log_var) * eps, as the book's code does (its text
describes exp(0.5 z_log_var), the standard deviation); `standard` uses exp(0.5 z_log_var).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dlwp.errors import ConfigError
from dlwp.model.init import initialise_


class Encoder(nn.Module):
    def __init__(self, channels: int, size: int, latent_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2)  # 'same' with stride 2: padded right/bottom in forward
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.hidden = nn.Linear(64 * (size // 2) ** 2, 32)
        self.z_mean, self.z_log_var = nn.Linear(32, latent_dim), nn.Linear(32, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(F.pad(x, (0, 1, 0, 1))))
        x = F.relu(self.conv4(F.relu(self.conv3(x))))
        x = F.relu(self.hidden(x.flatten(1)))
        return self.z_mean(x), self.z_log_var(x)


class Decoder(nn.Module):
    def __init__(self, channels: int, size: int, latent_dim: int) -> None:
        super().__init__()
        self.half = size // 2
        self.hidden = nn.Linear(latent_dim, 64 * self.half**2)
        self.up = nn.ConvTranspose2d(64, 32, 3, stride=2)  # 'same': its output cropped to 2 x input
        self.out = nn.Conv2d(32, channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.hidden(z)).view(-1, 64, self.half, self.half)
        if self.up.weight.is_contiguous(memory_format=torch.channels_last):  # `trainer.channels_last`
            # oneDNN's transposed convolution is 2x slower when its input and weights differ in layout
            x = x.contiguous(memory_format=torch.channels_last)
        x = F.relu(self.up(x)[..., : 2 * self.half, : 2 * self.half])
        return self.out(x)


class VAE(nn.Module):
    """Images `[B, C, H, W]` in [0, 1] -> {"logits": reconstruction logits, "z_mean", "z_log_var"}.

    Args:
        input_shape: [channels, height, width] (book: [1, 28, 28]); height = width, even.
        latent_dim: width of the latent space (book: 2, so that it can be drawn).
        sampling: `book` (exp(z_log_var) * eps, the book's code) or `standard` (exp(0.5 z_log_var)).
        init: `keras` (glorot-uniform kernels, zero biases) or `torch`.
    """

    def __init__(self, input_shape: list[int], latent_dim: int = 2, sampling: Literal["book", "standard"] = "book",
                 init: str = "keras") -> None:  # fmt: skip
        super().__init__()
        channels, height, width = input_shape
        if height != width or height % 2:
            raise ConfigError(f"model.input_shape={list(input_shape)}: the VAE needs square images of even size")
        if sampling not in ("book", "standard"):
            raise ConfigError(f"model.sampling={sampling!r}: book (exp(z_log_var), as the book's code) or standard")
        self.latent_dim, self.sampling = latent_dim, sampling
        self.encoder, self.decoder = Encoder(channels, height, latent_dim), Decoder(channels, height, latent_dim)
        initialise_(self, init)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z_mean, z_log_var = self.encoder(x)
        scale = torch.exp(z_log_var if self.sampling == "book" else 0.5 * z_log_var)
        z = z_mean + scale * torch.randn_like(z_mean)
        return {"logits": self.decoder(z), "z_mean": z_mean, "z_log_var": z_log_var}

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent points `[N, latent_dim]` -> images in [0, 1] (book figure 8.14's grid)."""
        return torch.sigmoid(self.decoder(z))
