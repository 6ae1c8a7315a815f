"""The parts of a batch: a tensor, or a dict of named tensors (Keras' named inputs and outputs).

A batch is `(inputs, targets)`; each part is either one tensor (a single-input, single-output
model, as in chapters 2-6) or `{name: tensor}` (book 7.1's multi-input and multi-output models).
Every operation that cuts data into pieces (hold-outs, subsets, K-fold, DDP shards, batches) goes
through these few functions, so it works on both shapes the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import torch

Part = Union[torch.Tensor, dict[str, torch.Tensor]]  # noqa: UP007 (a runtime alias)


def apply(fn: Callable[[torch.Tensor], torch.Tensor], part: Part) -> Part:
    """`fn` on every tensor of `part`, keeping its shape (tensor or dict)."""
    if isinstance(part, dict):
        return {name: fn(t) for name, t in part.items()}
    return fn(part)


def tensors(part: Part) -> list[torch.Tensor]:
    return list(part.values()) if isinstance(part, dict) else [part]


def length(part: Part) -> int:
    """Number of samples; every tensor of a part must have the same."""
    if isinstance(part, torch.Tensor):  # the common case, once per training step
        return len(part)
    sizes = {len(t) for t in tensors(part)}
    if len(sizes) != 1:
        raise ValueError(f"the tensors of one batch part differ in length: {sorted(sizes)}")
    return sizes.pop()


def take(part: Part, index: torch.Tensor | slice) -> Part:
    """Samples `index` (a slice keeps views, an index tensor gathers)."""
    return apply(lambda t: t[index], part)


def cat(parts: list[Part]) -> Part:
    if isinstance(parts[0], dict):
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
    return torch.cat(parts)


def to(part: Part, device: torch.device | str, non_blocking: bool = False) -> Part:
    return apply(lambda t: t.to(device, non_blocking=non_blocking), part)


def names(part: Part) -> list[str] | None:
    """The names of a dict part; None for a single tensor."""
    return list(part) if isinstance(part, dict) else None


def pick(part: Part, key: str | None) -> torch.Tensor:
    """The tensor `key` of a dict part (the part itself when it is one tensor and `key` is None)."""
    if isinstance(part, dict):
        if key is None or key not in part:
            raise KeyError(key)
        return part[key]
    if key is not None:
        raise KeyError(key)
    return part
