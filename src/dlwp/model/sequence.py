"""Networks over sequences of word indices (book chapter 6), declared as Keras `Sequential` lists.

A task's YAML lists the layers, each a `type` and its Keras arguments; widths flow from one layer
to the next, so only what Keras' call would say is written:

    layers:
      - {type: embedding, input_dim: 10000, output_dim: 32}
      - {type: lstm, units: 32}
      - {type: dense, units: 1}

Layers work on `[batch, time, features]` as Keras' do. Types: one_hot, embedding, flatten, dense, dropout,
conv1d, maxpool1d, globalmaxpool1d, simplernn, lstm, gru, bidirectional (`layer: {type: lstm, ...}`)
probability (book 6.4's `Dense(1)` with no sigmoid: its output *is* the probability, clipped
as Keras' loss clips it) and last_step (book 6.3's common-sense forecast: one feature of the
last time step, nothing learned). An unknown type or argument fails at start-up with the valid ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dlwp.errors import ConfigError
from dlwp.model.init import initialise_
from dlwp.model.layer_list import build_entry
from dlwp.model.recurrent import Recurrent

Shape = tuple[int, ...]
"""One sample's shape without the batch: (time, features) or (features,)."""


class OneHot(nn.Module):
    """Integer codes `[batch, time]` -> one-hot floats `[batch, time, num_classes]` (book 8.1's input,
    built per batch instead of as one dataset-sized array)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x, self.num_classes).float()


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class Conv1d(nn.Module):
    """Keras `Conv1D(filters, kernel_size, activation)`, 'valid' padding, on `[batch, time, channels]`."""

    def __init__(self, in_channels: int, filters: int, kernel_size: int, activation: str | None) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, filters, kernel_size)
        self.activation = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.conv2d(as_nhwc(x), self.conv.weight.unsqueeze(2), self.conv.bias)
        return self.activation(from_nhwc(y))


class MaxPool1d(nn.Module):
    """Keras `MaxPooling1D(pool_size)`: stride = pool size, 'valid'."""

    def __init__(self, pool_size: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool1d(pool_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_nhwc(nn.functional.max_pool2d(as_nhwc(x), (1, self.pool.kernel_size)))


def as_nhwc(x: torch.Tensor) -> torch.Tensor:
    """`[batch, time, channels]` as a `[batch, channels, 1, time]` image in channels-last memory,
    a view with no copy. Why: oneDNN's 2-D convolution and pooling run on it directly, vectorised
    over channels. Transposed to `[batch, channels, time]` for `nn.Conv1d`, the same layers copied
    the input and output of each layer and pooled in torch's slow NCHW kernel: book 6.4's IMDB
    convnet took 2.2x, the Jena one 1.7x as long forward and backward (docs/PERFORMANCE.md)."""
    return x.unsqueeze(1).permute(0, 3, 1, 2)


def from_nhwc(y: torch.Tensor) -> torch.Tensor:
    """The inverse of `as_nhwc` for a channels-last result: `[batch, time, channels]`, a view."""
    return y.permute(0, 2, 3, 1).squeeze(1)


class GlobalMaxPool1d(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=1)


class Dense(nn.Module):
    def __init__(self, in_features: int, units: int, activation: str | None) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, units)
        self.activation = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class ProbabilityAsLogit(nn.Module):
    """The previous layer's output taken as a probability p (no sigmoid, as book 6.4's notebook
    wrote its last layer), turned into the logit of clip(p, 1e-7, 1 - 1e-7): with the binary head
    the loss is Keras' clipped cross-entropy of p, with no gradient where p is clipped."""

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        p = p.clamp(1e-7, 1 - 1e-7)
        return torch.log(p) - torch.log1p(-p)


class LastStep(nn.Module):
    """`x[:, -1, feature:feature + 1]`: book 6.3's naive forecast (tomorrow = the last hour seen),
    as a network with no parameters, so it is evaluated by the same code as the models it is the
    baseline of (`jena_naive`, `trainer.max_epochs=0`)."""

    def __init__(self, feature: int) -> None:
        super().__init__()
        self.feature = feature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1, self.feature : self.feature + 1]


# -- builders: (shape in, Keras arguments) -> (module, shape out) ---------------------------------


def _one_hot(shape: Shape, num_classes: int) -> tuple[nn.Module, Shape]:
    if len(shape) != 1:
        raise ConfigError(f"one_hot reads integer codes [time], but gets shape {list(shape)}")
    return OneHot(num_classes), (*shape, num_classes)


def _embedding(shape: Shape, input_dim: int, output_dim: int, trainable: bool = True) -> tuple[nn.Module, Shape]:
    layer = nn.Embedding(input_dim, output_dim)
    layer.weight.requires_grad_(trainable)
    return layer, (*shape, output_dim)


def _flatten(shape: Shape) -> tuple[nn.Module, Shape]:
    return Flatten(), (math.prod(shape),)


def _dense(shape: Shape, units: int, activation: str | None = None) -> tuple[nn.Module, Shape]:
    return Dense(shape[-1], units, activation), (*shape[:-1], units)


def _dropout(shape: Shape, rate: float) -> tuple[nn.Module, Shape]:
    return nn.Dropout(rate), shape


def _conv1d(shape: Shape, filters: int, kernel_size: int, activation: str | None = None) -> tuple[nn.Module, Shape]:
    _needs_time(shape, "conv1d")
    return Conv1d(shape[1], filters, kernel_size, activation), (shape[0] - kernel_size + 1, filters)


def _maxpool1d(shape: Shape, pool_size: int) -> tuple[nn.Module, Shape]:
    _needs_time(shape, "maxpool1d")
    return MaxPool1d(pool_size), (shape[0] // pool_size, shape[1])


def _globalmaxpool1d(shape: Shape) -> tuple[nn.Module, Shape]:
    _needs_time(shape, "globalmaxpool1d")
    return GlobalMaxPool1d(), (shape[1],)


def _last_step(shape: Shape, feature: int) -> tuple[nn.Module, Shape]:
    _needs_time(shape, "last_step")
    if not 0 <= feature < shape[1]:
        raise ConfigError(f"last_step: feature={feature} is not one of the {shape[1]} input features")
    return LastStep(feature), (1,)


def _recurrent(kind: str) -> Callable[..., tuple[nn.Module, Shape]]:
    def build(shape: Shape, units: int, impl: str = "keras", dropout: float = 0.0, recurrent_dropout: float = 0.0,
              return_sequences: bool = False, go_backwards: bool = False, activation: str = "tanh",
              bidirectional: bool = False, compile: bool = False,
              native: bool = True) -> tuple[nn.Module, Shape]:  # fmt: skip
        _needs_time(shape, kind)
        layer = Recurrent(kind, shape[1], units, impl, dropout, recurrent_dropout, return_sequences, go_backwards,
                          bidirectional, activation, compile, native)  # fmt: skip
        out = layer.out_features
        return layer, ((shape[0], out) if return_sequences else (out,))

    return build


def _bidirectional(shape: Shape, layer: dict[str, Any]) -> tuple[nn.Module, Shape]:
    spec = dict(layer)
    if spec.get("type") not in ("simplernn", "lstm", "gru"):
        raise ConfigError(f"bidirectional: its layer must be a simplernn, lstm or gru, got {spec.get('type')!r}")
    return _build(spec | {"bidirectional": True}, shape, "bidirectional.layer")


def _probability(shape: Shape) -> tuple[nn.Module, Shape]:
    return ProbabilityAsLogit(), shape


LAYERS: dict[str, Callable[..., tuple[nn.Module, Shape]]] = {
    "one_hot": _one_hot,
    "embedding": _embedding,
    "flatten": _flatten,
    "dense": _dense,
    "dropout": _dropout,
    "conv1d": _conv1d,
    "maxpool1d": _maxpool1d,
    "globalmaxpool1d": _globalmaxpool1d,
    "simplernn": _recurrent("simplernn"),
    "lstm": _recurrent("lstm"),
    "gru": _recurrent("gru"),
    "bidirectional": _bidirectional,
    "probability": _probability,
    "last_step": _last_step,
}


class SequenceNet(nn.Module):
    """Keras `Sequential` over `[batch, input_length]` word indices (or `[batch, time, features]`
    values with `input_features`), returning logits or values.

    Args:
        layers: the layers in order, each `{type: ..., <its Keras arguments>}`; see the module doc.
        input_length: time steps of each sample (`pad_sequences`' maxlen; Keras' `input_length`).
        input_features: 0 for word indices (the first layer is an embedding); else the width of
            each time step of real-valued sequences (book 6.3's weather series).
        init: `keras` (glorot-uniform Dense/Conv kernels, zero biases, uniform(-0.05, 0.05)
            embeddings; recurrent layers always start from Keras' initialisation) or `torch`.
    """

    def __init__(self, layers: list[dict[str, Any]], input_length: int, input_features: int = 0,
                 init: str = "keras") -> None:  # fmt: skip
        super().__init__()
        if not layers:
            raise ConfigError("model.layers is empty: list the network's layers")
        shape: Shape = (input_length,) if input_features == 0 else (input_length, input_features)
        modules = []
        for i, spec in enumerate(layers):
            module, shape = _build(dict(spec), shape, f"model.layers[{i}]")
            modules.append(module)
        self.layers = nn.Sequential(*modules)
        self.out_shape = shape
        initialise_(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _build(spec: dict[str, Any], shape: Shape, where: str) -> tuple[nn.Module, Shape]:
    return build_entry(spec, LAYERS, where, shape)


def _needs_time(shape: Shape, kind: str) -> None:
    if len(shape) != 2:
        raise ConfigError(f"{kind} needs a sequence [time, features] as input, but gets shape {list(shape)} "
                          "(put it before flatten / a recurrent layer without return_sequences)")  # fmt: skip


def _activation(name: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    if name in (None, "linear"):
        return nn.Identity()
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    raise ConfigError(f"activation {name!r}: choose relu, tanh, sigmoid or null (linear)")
