"""Image networks declared as a list of layers and blocks (book 7.1.4, 7.3), like `SequenceNet`
for sequences: a task's YAML lists them and the widths flow from one to the next.

    layers:
      - {type: conv, filters: 32, kernel_size: 3, padding: same, activation: relu, batch_norm: true}
      - {type: residual, filters: 32}
      - {type: residual, filters: 64, downsample: true}
      - {type: inception, filters: 32}
      - {type: separable_conv, filters: 64, activation: relu}
      - {type: maxpool}
      - {type: global_avgpool}
      - {type: dense, units: 10}

Types: conv, separable_conv, residual, inception, batch_norm, maxpool, avgpool, global_avgpool,
flatten, dropout, dense. `batch_norm: true` on a layer puts a BatchNormalization of the
network's `batch_norm` style (keras: momentum 0.99, eps 1e-3; or torch) before its activation.
An unknown type or argument fails at start-up with the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dlwp.errors import ConfigError
from dlwp.model.blocks import ConvBN, InceptionModule, ResidualBlock, batch_norm
from dlwp.model.init import initialise_
from dlwp.model.layer_list import build_entry
from dlwp.model.sequence import Dense, Flatten


class GlobalAvgPool2d(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _conv(c: int, bn: str, filters: int, kernel_size: int = 3, strides: int = 1, padding: str = "valid",
          activation: str | None = None, batch_norm: bool = False, separable: bool = False) -> nn.Module:  # fmt: skip
    return ConvBN(c, filters, kernel_size, strides, padding, activation, bn if batch_norm else None, separable)


def _separable_conv(c: int, bn: str, filters: int, kernel_size: int = 3, strides: int = 1, padding: str = "valid",
                    activation: str | None = None, batch_norm: bool = False) -> nn.Module:  # fmt: skip
    return _conv(c, bn, filters, kernel_size, strides, padding, activation, batch_norm, separable=True)


def _residual(c: int, bn: str, filters: int, downsample: bool = False, batch_norm: bool = False) -> nn.Module:
    return ResidualBlock(c, filters, downsample, bn if batch_norm else None)


def _inception(c: int, bn: str, filters: int, strides: int = 2, batch_norm: bool = False) -> nn.Module:
    return InceptionModule(c, filters, strides, bn if batch_norm else None)


def _batch_norm(c: int, bn: str) -> nn.Module:
    return batch_norm(c, bn)


def _maxpool(c: int, bn: str, pool_size: int = 2) -> nn.Module:
    return nn.MaxPool2d(pool_size)


def _avgpool(c: int, bn: str, pool_size: int = 2) -> nn.Module:
    return nn.AvgPool2d(pool_size)


def _global_avgpool(c: int, bn: str) -> nn.Module:
    return GlobalAvgPool2d()


def _flatten(c: int, bn: str) -> nn.Module:
    return Flatten()


def _dropout(c: int, bn: str, rate: float) -> nn.Module:
    return nn.Dropout(rate)


def _dense(c: int, bn: str, units: int, activation: str | None = None) -> nn.Module:
    return Dense(c, units, activation)


LAYERS: dict[str, Callable[..., nn.Module]] = {
    "conv": _conv,
    "separable_conv": _separable_conv,
    "residual": _residual,
    "inception": _inception,
    "batch_norm": _batch_norm,
    "maxpool": _maxpool,
    "avgpool": _avgpool,
    "global_avgpool": _global_avgpool,
    "flatten": _flatten,
    "dropout": _dropout,
    "dense": _dense,
}
FLAT_ONLY = ("dense",)  # layers that need [batch, features]
EITHER = ("dropout",)


class BlockNet(nn.Module):
    """A Keras-style image network from a list of layers and blocks (see the module doc).

    Args:
        layers: the layers in order, each `{type: ..., <its arguments>}`.
        input_shape: [channels, height, width] of one image.
        batch_norm: the style of every batch normalisation: keras (momentum 0.99, eps 1e-3) or torch.
        init: keras (glorot-uniform kernels, zero biases) or torch.
    """

    def __init__(self, layers: list[dict[str, Any]], input_shape: list[int], batch_norm: str = "keras",
                 init: str = "keras") -> None:  # fmt: skip
        super().__init__()
        if not layers:
            raise ConfigError("model.layers is empty: list the network's layers")
        if len(input_shape) != 3:
            raise ConfigError(f"model.input_shape must be [channels, height, width], got {list(input_shape)}")
        probe = torch.zeros(2, *input_shape)  # widths and sizes flow by running each layer once
        modules = []
        for i, spec in enumerate(layers):
            module = _build(dict(spec), probe, batch_norm, f"model.layers[{i}]")
            module.eval()
            with torch.no_grad():
                probe = module(probe)
            modules.append(module.train())
        self.layers = nn.Sequential(*modules)
        self.out_shape = tuple(probe.shape[1:])
        initialise_(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _build(spec: dict[str, Any], probe: torch.Tensor, bn: str, where: str) -> nn.Module:
    kind, flat = spec.get("type"), probe.dim() == 2
    if kind in LAYERS and ((kind in FLAT_ONLY and not flat) or (kind not in FLAT_ONLY + EITHER and flat)):
        need = "[features] (after flatten or global_avgpool)" if kind in FLAT_ONLY else "an image [channels, h, w]"
        raise ConfigError(f"{where}: {kind} needs {need} as input, but gets shape {list(probe.shape[1:])}")
    if probe.dim() == 4 and min(probe.shape[2:]) < 1:
        raise ConfigError(f"{where}: the image has shrunk to {list(probe.shape[1:])}")
    return build_entry(spec, LAYERS, where, probe.shape[1], bn)
