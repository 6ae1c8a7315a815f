"""Book 5.4 (i): what each layer of a trained network makes of one image, one grid per layer."""

from __future__ import annotations

import torch

from dlwp.visualize import images, layers
from dlwp.visualize.networks import Inspected


def activations(inspected: Inspected, image: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """layer name -> its output `[C, h, w]` for one `[3, H, W]` image (in [0, 1])."""
    found = inspected.find(names)
    with torch.no_grad(), layers.capture(found) as outputs:
        layers.run(inspected.network, inspected.preprocess(image[None]), outputs)
        maps = {name: outputs[name][0].float().cpu() for name in names}
    for name, out in maps.items():
        if out.dim() != 3:
            from dlwp.errors import ConfigError

            raise ConfigError(f"layer {name!r} outputs shape {list(out.shape)}, not a feature map [C, h, w]")
    return maps


def grid(maps: torch.Tensor, per_row: int = 16) -> torch.Tensor:
    """Every channel of one layer, standardised as the book does, `per_row` to a row."""
    return images.tile(images.standardise(maps), columns=min(per_row, maps.shape[0]), margin=1, fill=1.0)


def figure(maps: torch.Tensor, name: str, per_row: int = 16):
    """The book's figure: the grid with viridis colours, the layer's name and shape on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picture = grid(maps, per_row)
    scale = 1.0 / maps.shape[-1] * 1.2
    fig = plt.figure(figsize=(max(4.0, scale * picture.shape[1]), max(1.5, scale * picture.shape[0]) + 0.4))
    ax = fig.add_subplot()
    ax.imshow(picture.numpy(), aspect="auto", cmap="viridis")
    ax.set_title(f"{name}  ({maps.shape[0]} channels, {maps.shape[1]}x{maps.shape[2]})")
    ax.axis("off")
    return fig
