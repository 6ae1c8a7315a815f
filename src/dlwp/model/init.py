"""Keras 2.0.8 initialisers, which the book's numbers were produced with.

torch's `nn.Linear` default (Kaiming-uniform with a = sqrt(5), uniform bias) is not Keras'
glorot-uniform kernel with zero bias; at the book's small learning rates the difference shows in
the early epochs of every curve.
"""

from __future__ import annotations

from torch import nn


def keras_init_(module: nn.Module) -> nn.Module:
    """Re-initialise every Dense/Conv/Embedding layer of `module` in place, as Keras would."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Embedding):
            nn.init.uniform_(layer.weight, -0.05, 0.05)
    return module


def initialise_(module: nn.Module, init: str) -> nn.Module:
    """`model.init`: keras (`keras_init_`) or torch (each layer's own defaults, left as built)."""
    if init == "keras":
        return keras_init_(module)
    if init != "torch":
        from dlwp.errors import ConfigError

        raise ConfigError(f"model.init={init!r}: choose keras or torch")
    return module
