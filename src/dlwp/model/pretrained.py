"""A pretrained convolutional base with a small classifier on top (book 5.3b, 5.3c)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dlwp.errors import ConfigError
from dlwp.model.init import keras_init_


class PretrainedConvNet(nn.Module):
    """Keras `Sequential([conv_base, Flatten(), Dense(h, relu) ..., Dense(out)])`, logits out.

    The base (`self.base`, parameters named `base.*`) comes from the backbone registry
    (`dlwp.model.backbones`) with its weights and its preprocessing; a task freezes it with
    `task.freeze: ["base.*"]` (5.3b) and unfreezes its top block for fine-tuning (5.3c).

    Args:
        backbone: a registered backbone (`efficientnet_lite0`, `vgg16`) or `dlwp_run`.
        out_features: classes, or 1 for binary.
        weights: the backbone's weights file (or, for `dlwp_run`, the run); None: where the
            registry looks (the package that ships it, torch's cache, a download).
        input_shape: [3, height, width] of the images, to size the first Dense layer.
        hidden: widths of the Dense layers after the base.
        dropout: rate of a Dropout after each of them.
        pool: `flatten` (the book's Flatten) or `avg` (global average pooling).
        base_batchnorm: `frozen`: the base's batch-norm layers keep their pretrained statistics
            (evaluation mode) even while training (what a small dataset wants; Keras 2.0.8 had no
            such switch); `train`: they update, as a trained layer's would.
        init: `keras` (glorot-uniform, zero bias) for the new layers, or `torch`.
    """

    def __init__(
        self,
        backbone: str,
        out_features: int,
        weights: str | None = None,
        input_shape: list[int] | None = None,
        hidden: list[int] | None = None,
        dropout: float = 0.0,
        pool: Literal["flatten", "avg"] = "flatten",
        base_batchnorm: Literal["frozen", "train"] = "frozen",
        init: Literal["keras", "torch"] = "keras",
    ) -> None:
        super().__init__()
        from dlwp.model.backbones import load_backbone

        shape = list(input_shape) if input_shape is not None else [3, 150, 150]
        if len(shape) != 3:
            raise ConfigError(f"model.input_shape must be [channels, height, width], got {input_shape}")
        if pool not in ("flatten", "avg"):
            raise ConfigError(f"model.pool must be flatten or avg, got {pool!r}")
        self.base = load_backbone(backbone, weights)
        self.base_batchnorm = base_batchnorm
        with torch.no_grad():
            self.base.eval()
            fmap = self.base(torch.zeros(1, *shape))
        width = fmap.shape[1] if pool == "avg" else fmap[0].numel()
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()] if pool == "avg" else [nn.Flatten()]
        for h in hidden if hidden is not None else [256]:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.head = nn.Sequential(*layers)
        if init == "keras":
            keras_init_(self.head)
        self.train()

    def train(self, mode: bool = True) -> PretrainedConvNet:
        super().train(mode)
        if self.base_batchnorm == "frozen":
            for module in self.base.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.base(x))
