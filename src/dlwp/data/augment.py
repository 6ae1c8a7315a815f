"""Keras 2.0.8's `ImageDataGenerator` random transform, per image (book 5.2b, 5.3b).

Keras draws, for every image on its own: a rotation, a height and a width shift, a shear (in
radians in 2.0.8), independent x and y zooms and a horizontal flip; composes them into one affine
map about the image centre, and resamples with `scipy.ndimage.affine_transform(order=0,
mode=fill_mode)`: nearest-neighbour, points outside the image taking the nearest edge pixel for
`fill_mode="nearest"`. This does the same arithmetic in torch on a `[C, H, W]` image, drawing from
the generator it is given (dlwp seeds one per (seed, epoch, sample)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dlwp.errors import ConfigError

FILL_MODES = ("nearest", "constant", "reflect", "wrap")


@dataclass
class KerasAugmentation:
    """The arguments of the book's `ImageDataGenerator` (5.2b: 40, 0.2, 0.2, 0.2, 0.2, True, nearest)."""

    rotation_range: float = 0.0
    """Degrees: the angle is uniform in [-r, r]."""
    width_shift_range: float = 0.0
    """Fraction of the width: the horizontal shift is uniform in [-s, s] x width."""
    height_shift_range: float = 0.0
    shear_range: float = 0.0
    """Radians in Keras 2.0.8 (later Keras reads degrees): the shear angle is uniform in [-s, s]."""
    zoom_range: float = 0.0
    """x and y zoom factors each uniform in [1 - z, 1 + z], drawn independently."""
    horizontal_flip: bool = False
    fill_mode: str = "nearest"
    cval: float = 0.0
    """The fill value of `fill_mode="constant"`, in the image's own units."""

    def __post_init__(self) -> None:
        if self.fill_mode not in FILL_MODES:
            raise ConfigError(f"data.augmentation.fill_mode must be one of {list(FILL_MODES)}, got {self.fill_mode!r}")
        for name in ("rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.augmentation.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def active(self) -> bool:
        return bool(self.rotation_range or self.width_shift_range or self.height_shift_range or self.shear_range
                    or self.zoom_range or self.horizontal_flip)  # fmt: skip

    def matrix(self, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """The 3x3 map from output (row, col, 1) to input coordinates, drawn as Keras draws it."""
        u = torch.rand(6, generator=generator, dtype=torch.float64) * 2 - 1  # uniform in [-1, 1)
        theta = math.pi / 180 * self.rotation_range * float(u[0])
        tx = self.height_shift_range * float(u[1]) * height  # Keras: tx shifts rows (height)
        ty = self.width_shift_range * float(u[2]) * width
        shear = self.shear_range * float(u[3])
        zx, zy = (1 + self.zoom_range * float(u[4]), 1 + self.zoom_range * float(u[5]))
        if not self.zoom_range:
            zx = zy = 1.0
        m = torch.eye(3, dtype=torch.float64)
        if theta:
            c, s = math.cos(theta), math.sin(theta)
            m = m @ torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)
        if tx or ty:
            m = m @ torch.tensor([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=torch.float64)
        if shear:
            m = m @ torch.tensor([[1, -math.sin(shear), 0], [0, math.cos(shear), 0], [0, 0, 1]], dtype=torch.float64)
        if zx != 1 or zy != 1:
            m = m @ torch.tensor([[zx, 0, 0], [0, zy, 0], [0, 0, 1]], dtype=torch.float64)
        # Keras' transform_matrix_offset_center: about the centre (h/2 + 0.5, w/2 + 0.5)
        ox, oy = height / 2 + 0.5, width / 2 + 0.5
        offset = torch.tensor([[1, 0, ox], [0, 1, oy], [0, 0, 1]], dtype=torch.float64)
        reset = torch.tensor([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]], dtype=torch.float64)
        return offset @ m @ reset

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One randomly transformed copy of `image` ([C, H, W], any dtype)."""
        _, height, width = image.shape
        m = self.matrix(height, width, generator)
        flip = self.horizontal_flip and bool(torch.rand(1, generator=generator) < 0.5)
        if torch.equal(m, torch.eye(3, dtype=torch.float64)) and not flip:
            return image
        out = resample_nearest(image, m, self.fill_mode, self.cval)
        return out.flip(-1) if flip else out


def resample_nearest(image: torch.Tensor, m: torch.Tensor, fill_mode: str, cval: float) -> torch.Tensor:
    """`scipy.ndimage.affine_transform(channel, m[:2, :2], m[:2, 2], order=0, mode=fill_mode)` for
    every channel: output pixel (r, c) takes the input pixel nearest to m @ (r, c, 1)."""
    _, height, width = image.shape
    rows = torch.arange(height, dtype=torch.float64).view(-1, 1).expand(height, width)
    cols = torch.arange(width, dtype=torch.float64).view(1, -1).expand(height, width)
    src_r = m[0, 0] * rows + m[0, 1] * cols + m[0, 2]
    src_c = m[1, 0] * rows + m[1, 1] * cols + m[1, 2]
    r, c = torch.floor(src_r + 0.5).long(), torch.floor(src_c + 0.5).long()  # order=0, as scipy rounds
    outside = (r < 0) | (r >= height) | (c < 0) | (c >= width)
    if fill_mode == "nearest":
        r, c = r.clamp(0, height - 1), c.clamp(0, width - 1)
    elif fill_mode == "reflect":  # scipy's 'reflect': the edge pixel is repeated (d c b a | a b c d)
        r, c = _reflect(r, height), _reflect(c, width)
    elif fill_mode == "wrap":
        r, c = r % height, c % width
    else:
        r, c = r.clamp(0, height - 1), c.clamp(0, width - 1)
    out = image[:, r, c]
    if fill_mode == "constant":
        out = out.masked_fill(outside.unsqueeze(0), cval)
    return out


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    period = 2 * size
    index = index % period
    return torch.where(index >= size, period - 1 - index, index)
