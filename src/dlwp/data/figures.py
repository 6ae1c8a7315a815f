"""The augmentation figure (book figure 5.11) that a run writes when training sees other images
than the stored ones: each row a stored image, then its augmented draws."""

from __future__ import annotations

from pathlib import Path

import torch

MIN_SIDE = 128  # smaller images (CIFAR's 32 px) are enlarged, pixel for pixel, to at least this
MARGIN = 4  # white pixels between images
HEADER = 16  # the strip above each column for its label


def augmentation_figure(path: Path, rows: list[list[torch.Tensor]]) -> Path:
    """Draw `rows` of float `[C, H, W]` images in [0, 1] (the first of each row as stored, the
    others as epochs 0, 1, ... drew them) to `path`, one column per draw under its label.

    Drawn as one mosaic with PIL: every augmented run writes this figure before its first step,
    and a matplotlib figure of subplots took ~0.9 s of that start-up (docs/PERFORMANCE.md)."""
    from PIL import Image, ImageDraw

    from dlwp.visualize.images import tile, to_uint8

    cols = max(len(row) for row in rows)
    c, h, w = rows[0][0].shape
    blank = torch.ones(c, h, w)
    tiles = torch.stack([(row[i] if i < len(row) else blank).detach().float().cpu().clamp(0, 1)
                         for row in rows for i in range(cols)])  # fmt: skip
    scale = max(1, -(-MIN_SIDE // max(h, w)))
    tiles = tiles.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    grid = to_uint8(tile(tiles, cols, margin=MARGIN, fill=1.0))
    picture = Image.fromarray(grid).convert("RGB")
    canvas = Image.new("RGB", (picture.width, picture.height + HEADER), "white")
    canvas.paste(picture, (0, HEADER))
    draw = ImageDraw.Draw(canvas)
    for i in range(cols):
        draw.text((i * (w * scale + MARGIN) + 2, 2), "stored" if i == 0 else f"epoch {i - 1}", fill="black")
    canvas.save(path)
    return path
