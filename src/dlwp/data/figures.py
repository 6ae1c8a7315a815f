"""The augmentation figure (book figure 5.11) that a run writes when training sees other images
than the stored ones: each row a stored image, then its augmented draws."""

from __future__ import annotations

from pathlib import Path

import torch


def augmentation_figure(path: Path, rows: list[list[torch.Tensor]]) -> Path | None:
    """Draw `rows` of float `[C, H, W]` images in [0, 1] (the first of each row as stored, the
    others as epochs 0, 1, ... drew them) to `path`; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    cols = max(len(row) for row in rows)
    fig = Figure(figsize=(2 * cols, 2 * len(rows)), dpi=100)
    FigureCanvasAgg(fig)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            ax = fig.add_subplot(len(rows), cols, r * cols + c + 1)
            pixels = image.detach().float().cpu().permute(1, 2, 0).squeeze(-1).clamp(0, 1).numpy()
            ax.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None)
            ax.set_axis_off()
            ax.set_title("stored" if c == 0 else f"epoch {c - 1}", fontsize=8)
    fig.suptitle("Training augmentation, per image (book figure 5.11)")
    fig.tight_layout()
    fig.savefig(path)
    return path
