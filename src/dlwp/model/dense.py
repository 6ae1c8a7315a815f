"""Stacks of fully connected layers: the networks of book chapters 2-4."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dlwp.model.init import keras_init_

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class DenseNet(nn.Module):
    """Keras `Sequential([Dense(h, activation) for h in hidden] + [Dense(out)])`, returning logits.

    The softmax/sigmoid of the book's last layer is applied by the loss (see `dlwp.task`), which
    is the numerically stable way to compute the same thing.

    Args:
        in_features: input width (784 for flattened MNIST).
        hidden: widths of the hidden layers, e.g. [512] for book 2.1.
        out_features: number of outputs (classes, or 1 for binary and scalar regression).
        activation: of the hidden layers.
        dropout: rate of a Dropout after each hidden layer (book 4.4 uses 0.5); 0 disables it.
        l2: Keras `kernel_regularizer=l2(l2)` on each hidden kernel; counted in the loss.
        init: `keras` (glorot-uniform kernels, zero biases) or `torch` (its defaults).
    """

    def __init__(
        self,
        in_features: int,
        hidden: list[int],
        out_features: int,
        activation: Literal["relu", "tanh", "sigmoid"] = "relu",
        dropout: float = 0.0,
        l2: float = 0.0,
        init: Literal["keras", "torch"] = "keras",
    ) -> None:
        super().__init__()
        hidden_layers, width = dense_layers(in_features, hidden, activation, dropout)
        layers = [*hidden_layers, nn.Linear(width, out_features)]
        self.net = nn.Sequential(*layers)
        self.l2 = l2
        self.hidden_layers = [m for m in layers[:-1] if isinstance(m, nn.Linear)]
        if init == "keras":
            keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))

    def regularization_loss(self) -> torch.Tensor | None:
        """The L2 penalty Keras adds to the reported loss (book 4.4); None without one."""
        if self.l2 == 0:
            return None
        return self.l2 * sum(layer.weight.square().sum() for layer in self.hidden_layers)


def dense_layers(in_features: int, hidden: list[int], activation: str, dropout: float) -> tuple[nn.Sequential, int]:
    """`Dense(h, activation)` [+ `Dropout`] per entry of `hidden`, and the width they end with."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    return nn.Sequential(*layers), width
