"""Book 8.3: neural style transfer (Gatys et al.). An image that keeps the content of one photo
(deep-layer activations) and takes the style of another (Gram matrices of several layers),
optimised pixel by pixel with L-BFGS, starting from the content photo.

The pixels are optimised on a 0-255 scale, as the book's (Caffe-preprocessed) ones were, so its
loss weights mean the same: content 0.025, style 1 spread over the style layers, total variation
1e-4 with exponent 1.25; style losses divided by `4 · 3² · (H·W)²`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlwp.visualize import layers
from dlwp.visualize.networks import Inspected


@dataclass
class Weights:
    content: float = 0.025
    style: float = 1.0
    total_variation: float = 1e-4


def gram(features: torch.Tensor) -> torch.Tensor:
    """`[1, C, h, w]` -> `[C, C]`: channel co-activations summed over positions."""
    flat = features[0].flatten(1)
    return flat @ flat.T


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """The book's: sum over pixels of (dy² + dx²)^1.25, last row and column left out."""
    a = (x[:, :, :-1, :-1] - x[:, :, 1:, :-1]).pow(2)
    b = (x[:, :, :-1, :-1] - x[:, :, :-1, 1:]).pow(2)
    return (a + b).pow(1.25).sum()


class StyleLoss:
    """The total loss of a candidate image (0-255, `[1, 3, H, W]`) and its three parts."""

    def __init__(self, inspected: Inspected, content: torch.Tensor, style: torch.Tensor, content_layer: str,
                 style_layers: list[str], weights: Weights) -> None:  # fmt: skip
        self.inspected, self.weights = inspected, weights
        self.content_layer, self.style_layers = content_layer, list(style_layers)
        self.found = inspected.find([content_layer, *self.style_layers])
        self.pixels = content.shape[-2] * content.shape[-1]
        with torch.no_grad():
            self.content_target = self.features(content)[content_layer].detach()
            style_features = self.features(style)
            self.style_targets = {n: gram(style_features[n]).detach() for n in self.style_layers}

    def features(self, x255: torch.Tensor) -> dict[str, torch.Tensor]:
        with layers.capture(self.found) as outputs:
            layers.run(self.inspected.network, self.inspected.preprocess(x255 / 255), outputs)
            return dict(outputs)

    def __call__(self, x255: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        feats = self.features(x255)
        content = (feats[self.content_layer] - self.content_target).pow(2).sum()
        style = sum(
            (gram(feats[n]) - self.style_targets[n]).pow(2).sum() / (4.0 * 3**2 * self.pixels**2)
            for n in self.style_layers
        ) / len(self.style_layers)
        tv = total_variation(x255)
        w = self.weights
        total = w.content * content + w.style * style + w.total_variation * tv
        parts = {"content": float(w.content * content.detach()), "style": float(w.style * style.detach()),
                 "total_variation": float(w.total_variation * tv.detach())}  # fmt: skip
        return total, parts


def transfer(loss_fn: StyleLoss, content: torch.Tensor, iterations: int = 20, max_eval: int = 20, on_iteration=None):
    """L-BFGS from the content image: `iterations` rounds of at most `max_eval` evaluations each
    (scipy's `fmin_l_bfgs_b(maxfun=20)` in the book). Returns the image (0-255) and the loss after
    each round; `on_iteration(i, loss, parts, seconds)` is called after each."""
    import time

    x = content.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)  # LBFGS views it flat
    optimizer = torch.optim.LBFGS([x], lr=1.0, max_iter=max_eval, max_eval=max_eval, history_size=10,
                                  line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)  # fmt: skip

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        total, _ = loss_fn(x)
        total.backward()
        return total

    losses = []
    for i in range(iterations):
        start = time.perf_counter()
        optimizer.step(closure)
        with torch.no_grad():  # the loss of the image this round ends at (the book's printed value)
            total, parts = loss_fn(x)
        losses.append(float(total))
        if on_iteration is not None:
            on_iteration(i, float(total), parts, time.perf_counter() - start)
    return x.detach(), losses
