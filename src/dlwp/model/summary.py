"""Keras' `model.summary()` for any network (book 7.2: `plot_model(show_shapes=True)`): each layer
with its output shape and parameter count, from one real batch, written to every run directory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def layer_table(network: nn.Module, run: Callable[[], Any]) -> str:
    """The table for the modules that hold parameters directly or have no children (the layers a
    Keras summary lists), in call order; `run()` does one forward pass of the network."""
    rows: list[tuple[str, str, str, int, int]] = []
    named = {module: name for name, module in network.named_modules() if name}
    layers = [m for m in named if not isinstance(m, nn.Identity)
              and (next(m.children(), None) is None or any(True for _ in m.parameters(recurse=False)))]  # fmt: skip

    def record(module: nn.Module):
        def hook(_module, _inputs, output) -> None:
            own = list(module.parameters(recurse=next(module.children(), None) is None))
            rows.append((named[module], type(module).__name__, _shape(output), sum(p.numel() for p in own),
                         sum(p.numel() for p in own if p.requires_grad)))  # fmt: skip

        return hook

    handles = [m.register_forward_hook(record(m)) for m in layers]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    seen, unique = set(), []
    for row in rows:  # a layer called twice (shared weights) is listed once, at its first call
        if row[0] not in seen:
            seen.add(row[0])
            unique.append(row)
    total = sum(p.numel() for p in network.parameters())
    trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
    header = ("Layer (type)", "Output shape", "Param #")
    cells = [(f"{name} ({kind})", shape, f"{count:,}" + ("" if train == count else " (frozen)"))
             for name, kind, shape, count, train in unique]  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(3)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    rule = "-" * (sum(widths) + 4)
    out = [rule, line.format(*header).rstrip(), rule, *(line.format(*c).rstrip() for c in cells), rule]
    out += [f"Total params: {total:,}", f"Trainable params: {trainable:,}"]
    out += [f"Non-trainable params: {total - trainable:,}"]
    return "\n".join(out) + "\n"


def _shape(output: Any) -> str:
    """`[batch, ...]` with the batch as None, as Keras prints it; several outputs as a list."""
    if isinstance(output, torch.Tensor):
        return str([None, *output.shape[1:]])
    if isinstance(output, (tuple, list)):
        return ", ".join(_shape(o) for o in output)
    if isinstance(output, dict):
        return ", ".join(f"{k}: {_shape(v)}" for k, v in output.items())
    return "?"
