"""The book's non-sequential building blocks (7.1.4, 7.3.1-7.3.2) as reusable modules on
`[batch, channels, height, width]`: the Inception module, the residual block, the depthwise-
separable convolution, and batch normalisation with Keras' defaults.

'same' padding keeps `ceil(size / stride)`, as Keras' does, so branches and shortcuts line up.
"""

from __future__ import annotations

import torch
from torch import nn

from dlwp.errors import ConfigError

BATCH_NORM = {
    # Keras' BatchNormalization(momentum=0.99, epsilon=1e-3): torch's momentum is 1 - Keras' momentum
    "keras": {"momentum": 0.01, "eps": 1e-3},
    "torch": {"momentum": 0.1, "eps": 1e-5},
}


def batch_norm(channels: int, style: str = "keras") -> nn.BatchNorm2d:
    """`nn.BatchNorm2d` with Keras' defaults (`style=keras`) or torch's."""
    if style not in BATCH_NORM:
        raise ConfigError(f"batch_norm style {style!r}: choose {' or '.join(BATCH_NORM)}")
    return nn.BatchNorm2d(channels, **BATCH_NORM[style])


def _padding(kernel_size: int, padding: str) -> int:
    if padding not in ("same", "valid"):
        raise ConfigError(f"padding={padding!r}: choose same or valid")
    return kernel_size // 2 if padding == "same" else 0


class ConvBN(nn.Sequential):
    """Keras `Conv2D(filters, k, strides, padding, activation)` (or `SeparableConv2D`), with a
    BatchNormalization between the convolution and the activation when `bn` names a style (the
    convolution then has no bias)."""

    def __init__(self, in_channels: int, filters: int, kernel_size: int = 3, strides: int = 1,
                 padding: str = "same", activation: str | None = "relu", bn: str | None = None,
                 separable: bool = False) -> None:  # fmt: skip
        from dlwp.model.sequence import _activation

        pad = _padding(kernel_size, padding)
        if separable:
            conv: nn.Module = SeparableConv2d(in_channels, filters, kernel_size, strides, pad, bias=bn is None)
        else:
            conv = nn.Conv2d(in_channels, filters, kernel_size, strides, pad, bias=bn is None)
        act = _activation(activation)
        layers = [conv] + ([batch_norm(filters, bn)] if bn else []) + ([] if isinstance(act, nn.Identity) else [act])
        super().__init__(*layers)


class SeparableConv2d(nn.Module):
    """Keras `SeparableConv2D` (depth_multiplier 1): a depthwise convolution of each channel on its
    own, then a 1x1 pointwise convolution mixing channels; far fewer parameters than a full one."""

    def __init__(self, in_channels: int, filters: int, kernel_size: int, strides: int = 1, padding: int = 0,
                 bias: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, strides, padding, groups=in_channels,
                                   bias=False)  # fmt: skip
        self.pointwise = nn.Conv2d(in_channels, filters, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """Book 7.3.1: two 3x3 convolutions (relu, 'same') added to a shortcut of the input.
    `downsample`: the book's listing, a 2x2 max-pooling after the convolutions and a 1x1 stride-2
    projection shortcut; otherwise the shortcut is the identity when the widths match, a 1x1
    projection when they do not."""

    def __init__(self, in_channels: int, filters: int, downsample: bool = False, bn: str | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBN(in_channels, filters, bn=bn), ConvBN(filters, filters, bn=bn))
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True) if downsample else nn.Identity()
        if downsample or in_channels != filters:
            self.shortcut: nn.Module = nn.Conv2d(in_channels, filters, 1, stride=2 if downsample else 1)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x)) + self.shortcut(x)


class InceptionModule(nn.Module):
    """Book 7.1.4's four branches, concatenated along channels: 1x1 (strided); 1x1 -> 3x3 (strided);
    3x3 average pooling (strided) -> 3x3; 1x1 -> 3x3 -> 3x3 (strided). Each convolution is
    relu with `filters` outputs; 'same' padding so every branch has the same size."""

    def __init__(self, in_channels: int, filters: int, strides: int = 2, bn: str | None = None) -> None:
        super().__init__()
        f = filters
        self.a = ConvBN(in_channels, f, 1, strides, bn=bn)
        self.b = nn.Sequential(ConvBN(in_channels, f, 1, bn=bn), ConvBN(f, f, 3, strides, bn=bn))
        pool = nn.AvgPool2d(3, strides, padding=1, count_include_pad=False)  # Keras' 'same' average
        self.c = nn.Sequential(pool, ConvBN(in_channels, f, bn=bn))
        self.d = nn.Sequential(ConvBN(in_channels, f, 1, bn=bn), ConvBN(f, f, bn=bn), ConvBN(f, f, 3, strides, bn=bn))
        self.out_channels = 4 * f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.b(x), self.c(x), self.d(x)], dim=1)
