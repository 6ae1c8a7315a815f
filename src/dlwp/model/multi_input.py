"""Book 7.1.2's multi-input pattern: one encoder per named input, concatenated, then shared layers."""

from __future__ import annotations

import torch
from torch import nn

from dlwp.errors import ConfigError
from dlwp.model.dense import dense_layers
from dlwp.model.init import keras_init_


class MultiInputDense(nn.Module):
    """`{name: x} -> Dense(h, relu)... per input -> concatenate -> Dense(h, relu)... -> Dense(out)`.

    With one input listed it is that input's single-input model, so a two-input model and each
    input alone are the same code on the same data.

    Args:
        inputs: the names of the inputs read (the data's, e.g. [title, body]).
        in_features: the width of each input (10,000 for multi-hot words).
        encoder: widths of each input's own Dense layers.
        hidden: widths of the Dense layers after the concatenation.
        out_features: classes, or 1.
    """

    def __init__(self, inputs: list[str], in_features: int, encoder: list[int], hidden: list[int],
                 out_features: int) -> None:  # fmt: skip
        super().__init__()
        if not inputs:
            raise ConfigError("model.inputs is empty: name the inputs (the data's) the model reads")
        encoders, widths = {}, 0
        for name in inputs:
            encoders[name], out = dense_layers(in_features, list(encoder), "relu", 0.0)
            widths += out
        self.encoders = nn.ModuleDict(encoders)
        self.shared, width = dense_layers(widths, list(hidden), "relu", 0.0)
        self.out = nn.Linear(width, out_features)
        keras_init_(self)

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(x, dict) or any(name not in x for name in self.encoders):
            given = ", ".join(x) if isinstance(x, dict) else "one unnamed input"
            raise ConfigError(f"model.inputs={list(self.encoders)}: the data provides {given}")
        merged = torch.cat([encoder(x[name]) for name, encoder in self.encoders.items()], dim=1)
        return self.out(self.shared(merged))
