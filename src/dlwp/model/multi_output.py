"""A shared encoder with one head per named output: book 7.1.3's multi-output pattern."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dlwp.model.dense import dense_layers
from dlwp.model.init import keras_init_


class MultiOutputDense(nn.Module):
    """Keras functional API: `x -> Dense(h, activation) for h in hidden -> {name: Dense(units)(x)}`.

    Returns `{name: logits}`; `dlwp.task.MultiOutputTask` gives each output its loss and metrics.

    Args:
        in_features: input width (10,000 for IMDB's multi-hot vectors).
        hidden: widths of the shared layers.
        heads: output name -> units (1 for binary and scalar regression, C for C classes).
        activation, dropout, l2, init: as `DenseNet`'s.
    """

    def __init__(
        self,
        in_features: int,
        hidden: list[int],
        heads: dict[str, int],
        activation: Literal["relu", "tanh", "sigmoid"] = "relu",
        dropout: float = 0.0,
        l2: float = 0.0,
        init: Literal["keras", "torch"] = "keras",
    ) -> None:
        super().__init__()
        self.encoder, width = dense_layers(in_features, hidden, activation, dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(width, units) for name, units in heads.items()})
        self.l2 = l2
        if init == "keras":
            keras_init_(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.encoder(x.flatten(1))
        return {name: head(shared) for name, head in self.heads.items()}

    def regularization_loss(self) -> torch.Tensor | None:
        """Keras `kernel_regularizer=l2(l2)` on the shared kernels; None without one."""
        if self.l2 == 0:
            return None
        return self.l2 * sum(m.weight.square().sum() for m in self.encoder if isinstance(m, nn.Linear))


class MultiOutputSequence(nn.Module):
    """Book 7.1.3's listing shape: a sequence encoder (a `SequenceNet` layer list ending flat, e.g.
    Embedding -> Conv1D stack -> GlobalMaxPool1D -> Dense) with one Dense head per named output.

    Args:
        layers: the encoder's layers (see `dlwp.model.sequence`); its last output must be flat.
        heads: output name -> units.
        input_length, input_features, init: as `SequenceNet`'s.
    """

    def __init__(self, layers: list[dict], heads: dict[str, int], input_length: int, input_features: int = 0,
                 init: Literal["keras", "torch"] = "keras") -> None:  # fmt: skip
        from dlwp.errors import ConfigError
        from dlwp.model.sequence import SequenceNet

        super().__init__()
        self.encoder = SequenceNet(layers, input_length, input_features, init)
        if len(self.encoder.out_shape) != 1:
            raise ConfigError(f"model.layers end with shape {list(self.encoder.out_shape)}: the heads need a flat "
                              "encoding (end with globalmaxpool1d, flatten or a dense layer)")  # fmt: skip
        self.heads = nn.ModuleDict({name: nn.Linear(self.encoder.out_shape[0], units) for name, units in heads.items()})
        if init == "keras":
            keras_init_(self.heads)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.encoder(x)
        return {name: head(shared) for name, head in self.heads.items()}
