"""Book 8.2: DeepDream. Gradient ascent on a photo, at several scales (octaves), to amplify what
chosen layers see; detail lost by shrinking is re-injected after each octave.

The image is optimised on a [-1, 1] scale (InceptionV3's inputs, which the book's step of 0.01
assumes) and handed to the network as [0, 1] RGB through its own preprocessing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlwp.visualize import layers
from dlwp.visualize.networks import Inspected


def dream_loss(outputs: dict[str, torch.Tensor], coefficients: dict[str, float]) -> torch.Tensor:
    """Σ coeff · sum(act[:, :, 2:-2, 2:-2]²) / act.numel(): borders excluded, scaled by the whole size."""
    loss = torch.zeros((), device=next(iter(outputs.values())).device)
    for name, coeff in coefficients.items():
        act = outputs[name]
        loss = loss + coeff * act[:, :, 2:-2, 2:-2].pow(2).sum() / act.numel()
    return loss


def octave_shapes(height: int, width: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """Smallest first; the last is the photo's own size (book: (178,178), (250,250), (350,350))."""
    return [(int(height / scale**i), int(width / scale**i)) for i in reversed(range(octaves))]


def resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False)


def ascend(inspected: Inspected, x: torch.Tensor, found: dict, coefficients: dict[str, float], iterations: int,
           step: float, max_loss: float | None, bar=None) -> tuple[torch.Tensor, list[float]]:  # fmt: skip
    """The book's `gradient_ascent`: gradient / max(mean |g|, 1e-7) times `step`, stopping once
    the loss exceeds `max_loss`. Returns the image and the loss of every iteration run."""
    x = x.detach().clone().requires_grad_(True)
    losses = []
    with layers.capture(found) as outputs:
        for _ in range(iterations):
            layers.run(inspected.network, inspected.preprocess((x + 1) / 2), outputs)
            loss = dream_loss(outputs, coefficients)
            losses.append(float(loss.detach()))
            if max_loss is not None and losses[-1] > max_loss:
                break
            (grad,) = torch.autograd.grad(loss, x)
            with torch.no_grad():
                x += step * grad / grad.abs().mean().clamp_min(1e-7)
            if bar is not None:
                bar.update(1)
    return x.detach(), losses


def deep_dream(inspected: Inspected, image: torch.Tensor, coefficients: dict[str, float], octaves: int = 3,
               octave_scale: float = 1.4, iterations: int = 20, step: float = 0.01, max_loss: float | None = 10.0,
               on_octave=None, bar=None) -> tuple[torch.Tensor, list[list[float]]]:  # fmt: skip
    """The dreamt `[3, H, W]` image in [0, 1] and each octave's losses. `on_octave(i, shape,
    image, losses, seconds)` is called after each octave."""
    import time

    found = inspected.find(list(coefficients))
    device = next(inspected.network.parameters()).device
    original = (image[None] * 2 - 1).to(device)
    shapes = octave_shapes(original.shape[2], original.shape[3], octaves, octave_scale)
    shrunk_original = resize(original, shapes[0])
    x = original
    history = []
    for i, shape in enumerate(shapes):
        start = time.perf_counter()
        x = resize(x, shape)
        x, losses = ascend(inspected, x, found, coefficients, iterations, step, max_loss, bar)
        lost_detail = resize(original, shape) - resize(shrunk_original, shape)
        x = x + lost_detail
        shrunk_original = resize(original, shape)
        history.append(losses)
        if on_octave is not None:
            on_octave(i, shape, ((x[0] + 1) / 2).clamp(0, 1).cpu(), losses, time.perf_counter() - start)
    return ((x[0] + 1) / 2).clamp(0, 1).cpu(), history
