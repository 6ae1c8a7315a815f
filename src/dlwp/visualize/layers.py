"""Layers by name, and their outputs captured by forward hooks.

A layer name is a `named_modules()` name of the network (`blocks.3`, `features.4`), or a book
(Keras) name that the backbone maps onto one (`block3_conv1`, `mixed4`). Forward passes stop
after the last layer they need, so a filter of an early layer does not pay for the whole network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from dlwp.errors import ConfigError


class _Stop(Exception):
    """Raised by the hook of the last needed layer: the rest of the forward pass is not needed."""


def find(network: nn.Module, names: Sequence[str], aliases: Mapping[str, str] | None = None) -> dict[str, nn.Module]:
    """name -> module, each name checked; an unknown one lists the valid names."""
    modules = dict(network.named_modules())
    aliases = aliases or {}
    found = {}
    for name in names:
        target = aliases.get(name, name)
        if target not in modules or target == "":
            raise ConfigError(
                f"layer {name!r} does not exist in {type(network).__name__}; valid layers: {valid(network, aliases)}"
            )
        found[name] = modules[target]
    return found


def valid(network: nn.Module, aliases: Mapping[str, str] | None = None, limit: int = 60) -> str:
    """The names a user may give, book names first, the deepest submodules left out past `limit`."""
    names = [n for n, _ in network.named_modules() if n]
    shallow = sorted(names, key=lambda n: (n.count("."), names.index(n)))
    shown = [*(aliases or {}), *sorted(shallow[:limit], key=names.index)]
    more = len(names) - min(limit, len(names))
    return ", ".join(shown) + (f" (and {more} deeper submodules: print(network) lists them)" if more > 0 else "")


@contextlib.contextmanager
def capture(layers: Mapping[str, nn.Module], stop: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """While open, each forward pass stores every named layer's output in the yielded dict; with
    `stop`, the pass ends once all of them are stored (call through `run`)."""
    outputs: dict[str, torch.Tensor] = {}
    wanted = set(layers)

    def hook(name: str):
        def store(_module, _inputs, output):
            outputs[name] = output
            if stop and wanted <= outputs.keys():
                raise _Stop

        return store

    handles = [module.register_forward_hook(hook(name)) for name, module in layers.items()]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def run(network: nn.Module, x: torch.Tensor, outputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """`network(x)` inside `capture`: the network's output, or None when the pass stopped early."""
    outputs.clear()
    try:
        return network(x)
    except _Stop:
        return None


def no_inplace(network: nn.Module) -> nn.Module:
    """In-place activations off: a hooked layer's output must not be overwritten by the next one."""
    for module in network.modules():
        if hasattr(module, "inplace") and isinstance(module.inplace, bool):
            module.inplace = False
    return network
