"""Book 7.1.5-7.1.6's shared weights: one encoder, called on two inputs, so both branches are the
same layer object with the same parameters (Keras: one layer instance applied twice)."""

from __future__ import annotations

import torch
from torch import nn

from dlwp.errors import ConfigError
from dlwp.model.dense import dense_layers
from dlwp.model.init import keras_init_


class SiameseNet(nn.Module):
    """`{left, right} -> encoder(left), encoder(right) -> merge -> Dense(h, relu)... -> Dense(1)`.

    Args:
        encoder: any network mapping one input to a vector (e.g. the 5.1 convnet, whose last
            Dense gives the embedding width `embedding`).
        embedding: the encoder's output width.
        hidden: widths of the Dense layers after the concatenation.
        inputs: the names of the two inputs.
        merge: `concatenate` (book 7.1.5) or `difference`, |a - b| per feature: symmetric in the
            two inputs, and a "same?" decision is then a threshold on a distance.
    """

    def __init__(self, encoder: nn.Module, embedding: int, hidden: list[int] | None = None,
                 inputs: tuple[str, str] = ("left", "right"), merge: str = "concatenate") -> None:  # fmt: skip
        super().__init__()
        if merge not in ("concatenate", "difference"):
            raise ConfigError(f"model.merge={merge!r}: choose concatenate (the book's) or difference (|a - b|)")
        self.encoder, self.inputs, self.merge = encoder, tuple(inputs), merge
        layers, width = dense_layers(embedding * (2 if merge == "concatenate" else 1), list(hidden or []), "relu", 0.0)
        self.head = nn.Sequential(layers, nn.Linear(width, 1))
        keras_init_(self.head)

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        if not isinstance(x, dict) or any(name not in x for name in self.inputs):
            given = ", ".join(x) if isinstance(x, dict) else "one unnamed input"
            raise ConfigError(f"model.inputs={list(self.inputs)}: the data provides {given}; name two of its inputs")
        left, right = (self.encoder(x[name]) for name in self.inputs)
        merged = torch.cat([left, right], dim=1) if self.merge == "concatenate" else (left - right).abs()
        return self.head(merged)
