"""Book 5.4 (ii): the pattern each filter responds to most, by gradient ascent in input space.

The book's recipe: start from grey noise (`random * 20 + 128` on a 0-255 scale), loss = the mean
activation of the filter, gradient divided by its RMS (+1e-5), 40 steps of 1.0. Every filter of a
layer is one image of a batch, so a layer's 64 patterns cost one batched ascent.
"""

from __future__ import annotations

import torch

from dlwp.visualize import images, layers
from dlwp.visualize.networks import Inspected


def patterns(inspected: Inspected, name: str, filters: list[int], size: int = 64, steps: int = 40,
             step: float = 1.0, generator: torch.Generator | None = None,
             device: torch.device | None = None, bar=None) -> tuple[torch.Tensor, list[float]]:  # fmt: skip
    """`[len(filters), 3, size, size]` patterns (0-255 scale, raw) and the mean loss at each step
    (before the step; the last entry after the last step)."""
    (module,) = inspected.find([name]).values()
    device = device or torch.device("cpu")
    noise = torch.rand(len(filters), 3, size, size, generator=generator) * 20 + 128
    x = noise.to(device).requires_grad_(True)
    index = torch.tensor(filters, device=device)
    history = []
    with layers.capture({name: module}) as outputs:
        for i in range(steps + 1):
            layers.run(inspected.network, inspected.preprocess(x / 255), outputs)
            act = outputs[name]
            if act.dim() != 4:
                from dlwp.errors import ConfigError

                raise ConfigError(f"layer {name!r} outputs shape {list(act.shape)}, not feature maps [B, C, h, w]")
            if int(index.max()) >= act.shape[1]:
                from dlwp.errors import ConfigError

                raise ConfigError(f"layer {name!r} has {act.shape[1]} filters; asked for filter {int(index.max())}")
            # each image's own filter: loss_b = mean(act[b, filter_b])
            loss = act[torch.arange(len(filters), device=device), index].flatten(1).mean(1)
            history.append(float(loss.detach().mean()))
            if i == steps:
                break
            (grad,) = torch.autograd.grad(loss.sum(), x)
            rms = grad.flatten(1).pow(2).mean(1).sqrt().view(-1, 1, 1, 1)
            with torch.no_grad():
                x += grad / (rms + 1e-5) * step
            if bar is not None:
                bar.update(1)
    return x.detach().cpu(), history


def deprocess(x: torch.Tensor) -> torch.Tensor:
    """Book 5.4's `deprocess_image`, per pattern: centred, std 0.1, around 0.5, clipped to [0, 1]."""
    flat = x.flatten(1)
    mean, std = flat.mean(1).view(-1, 1, 1, 1), flat.std(1).view(-1, 1, 1, 1)
    return ((x - mean) / (std + 1e-5) * 0.1 + 0.5).clamp(0, 1)


def layer_grid(x: torch.Tensor, columns: int = 8, margin: int = 5) -> torch.Tensor:
    """The book's 8x8 grid of one layer's patterns, 5 px apart, on black."""
    return images.tile(deprocess(x), columns=columns, margin=margin, fill=0.0)
