"""Book 5.4 (iii): class activation maps (Grad-CAM) of an ImageNet classifier on a photo.

Channel weights are the gradient of the class score with respect to the layer's feature map,
averaged over space; the heatmap is the weighted channel mean, ReLU'd and scaled to max 1. The
book differentiates the softmax probability (`model.output[:, 386]`); Grad-CAM's paper, and the
default here, the class logit (`score=probability` is the book's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlwp.errors import ConfigError
from dlwp.visualize import layers
from dlwp.visualize.networks import Inspected


@dataclass
class Explanation:
    heatmap: torch.Tensor
    """`[h, w]` in [0, 1], the layer's spatial size."""
    class_index: int
    probabilities: torch.Tensor
    """Softmax over the network's outputs, `[classes]`."""


def gradcam(inspected: Inspected, image: torch.Tensor, layer: str, class_index: int | None = None,
            score: str = "logit") -> Explanation:  # fmt: skip
    """Grad-CAM of one `[3, H, W]` image (in [0, 1]) at `layer`, for `class_index` (default: the
    top prediction)."""
    if score not in ("logit", "probability"):
        raise ConfigError(f"score={score!r}: use logit (Grad-CAM's paper) or probability (the book)")
    found = inspected.find([layer])
    # the weights are frozen: the input's gradient is what makes autograd record the graph
    x = image[None].to(next(inspected.network.parameters()).device).requires_grad_(True)
    with torch.enable_grad(), layers.capture(found, stop=False) as outputs:
        logits = layers.run(inspected.network, inspected.preprocess(x), outputs)
        feature_map = outputs[layer]
    if logits is None or logits.dim() != 2:
        raise ConfigError("Grad-CAM needs a classifier: a network whose output is [batch, classes]")
    if feature_map.dim() != 4:
        raise ConfigError(f"layer {layer!r} outputs shape {list(feature_map.shape)}, not a feature map")
    probabilities = logits.softmax(-1)[0]
    index = int(probabilities.argmax()) if class_index is None else class_index
    if not 0 <= index < logits.shape[1]:
        raise ConfigError(f"class_index={index}: the network has {logits.shape[1]} classes (0-{logits.shape[1] - 1})")
    target = logits[0, index] if score == "logit" else probabilities[index]
    (grads,) = torch.autograd.grad(target, feature_map)
    weights = grads[0].mean((1, 2))  # one weight per channel
    heatmap = (feature_map[0] * weights[:, None, None]).mean(0).relu()
    heatmap = heatmap / heatmap.max() if heatmap.max() > 0 else heatmap
    return Explanation(heatmap.detach().cpu(), index, probabilities.detach().cpu())


def top(probabilities: torch.Tensor, classes: list[str] | None, k: int = 3) -> list[dict[str, object]]:
    values, indices = probabilities.topk(min(k, probabilities.numel()))
    return [{"index": int(i), "class": classes[int(i)] if classes else str(int(i)), "probability": float(v)}
            for v, i in zip(values, indices, strict=True)]  # fmt: skip


def figure(image: torch.Tensor, overlaid: torch.Tensor, ranked: list[dict[str, object]], explained: dict[str, object]):
    """Photo | overlay, with the top predictions beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.8))
    for ax, picture, title in ((axes[0], image, "input"), (axes[1], overlaid, f"Grad-CAM: {explained['class']}")):
        ax.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    text = "\n".join(f"{r['probability']:.3f}  {r['class']}" for r in ranked)
    fig.text(0.5, 0.02, text, ha="center", va="bottom", family="monospace", fontsize=9)
    fig.subplots_adjust(bottom=0.2)
    return fig
