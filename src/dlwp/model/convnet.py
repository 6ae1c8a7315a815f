"""Small 2-D convnets: the networks of book chapter 5 (5.1 on MNIST, 5.2 on cats vs dogs)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dlwp.errors import ConfigError
from dlwp.model.init import keras_init_


class ConvNet(nn.Module):
    """Keras `Sequential`: [Conv2D(c, k, relu) -> optional MaxPooling2D(p)] per entry of `channels`,
    Flatten, optional Dropout, Dense(h, relu) per entry of `hidden`, Dense(out_features) (logits).

    Book 5.1: `channels=[32, 64, 64], pool=[true, true, false], hidden=[64]` on 1x28x28 (93,322
    parameters). Book 5.2: `channels=[32, 64, 128, 128]`, pooling after each, `dropout=0.5`,
    `hidden=[512]` on 3x150x150. Keras' defaults: 'valid' padding, pool stride = pool size.

    Args:
        input_shape: [channels, height, width] of one input, to size the first Dense layer.
        channels: filters of each convolution.
        out_features: classes, or 1 for binary and scalar regression.
        kernel_size: of every convolution.
        pool: after which convolutions a max-pooling follows (one flag per convolution);
            None: after every one.
        pool_size: window and stride of the max-poolings.
        hidden: widths of the Dense layers after Flatten.
        dropout: rate of a Dropout between Flatten and the Dense layers (book 5.2b: 0.5).
        init: `keras` (glorot-uniform kernels, zero biases) or `torch` (its defaults).
    """

    def __init__(
        self,
        input_shape: list[int],
        channels: list[int],
        out_features: int,
        kernel_size: int = 3,
        pool: list[bool] | None = None,
        pool_size: int = 2,
        hidden: list[int] | None = None,
        dropout: float = 0.0,
        init: Literal["keras", "torch"] = "keras",
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"model.input_shape must be [channels, height, width], got {input_shape}")
        pool = [True] * len(channels) if pool is None else list(pool)
        if len(pool) != len(channels):
            raise ConfigError(f"model.pool has {len(pool)} flags for {len(channels)} convolutions (model.channels)")
        layers: list[nn.Module] = []
        width = input_shape[0]
        for c, pooled in zip(channels, pool, strict=True):
            layers += [nn.Conv2d(width, c, kernel_size), nn.ReLU()]
            if pooled:
                layers.append(nn.MaxPool2d(pool_size))
            width = c
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *input_shape)).numel()
        head: list[nn.Module] = [nn.Flatten()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        for h in hidden or []:
            head += [nn.Linear(flat, h), nn.ReLU()]
            flat = h
        head.append(nn.Linear(flat, out_features))
        self.classifier = nn.Sequential(*head)
        if init == "keras":
            keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
