"""Input photos and output pictures of the visualisation commands.

Images are float tensors `[3, H, W]` in [0, 1], as dlwp's image data modules serve them. An input
is a file path or `skimage:NAME`, a photo that ships inside scikit-image's wheel (`chelsea`,
`coffee`, `astronaut`, ...), so the commands have real inputs with nothing downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlwp.errors import ConfigError, DataMissingError

SKIMAGE_PREFIX = "skimage:"


def skimage_photos() -> dict[str, Path]:
    """Name -> file of the colour and grey photos inside the installed scikit-image."""
    try:
        import skimage
    except ImportError as err:
        raise ConfigError("skimage: images need scikit-image (pip install scikit-image)") from err
    folder = Path(skimage.__file__).parent / "data"
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in (".png", ".jpg")}


def resolve(spec: str) -> Path:
    """The file an image spec names: a path, or `skimage:NAME`."""
    if spec.startswith(SKIMAGE_PREFIX):
        name = spec[len(SKIMAGE_PREFIX) :]
        photos = skimage_photos()
        if name not in photos:
            raise ConfigError(f"image={spec}: scikit-image has no photo {name!r}; it has {', '.join(photos)}")
        return photos[name]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise DataMissingError(f"image={spec}: no such file (give an image path or skimage:NAME, e.g. skimage:chelsea)")
    return path


def load(spec: str, size: tuple[int, int] | None = None, height: int | None = None,
         max_side: int | None = None) -> tuple[torch.Tensor, Path]:  # fmt: skip
    """An image as RGB `[3, H, W]` in [0, 1], and its file. Resized (bilinear) to `size` (height,
    width), or to `height` with the width scaled (book 8.3), or so that its longer side is `max_side`."""
    from PIL import Image, UnidentifiedImageError

    path = resolve(spec)
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
            image.load()
    except (OSError, UnidentifiedImageError) as err:
        raise DataMissingError(f"image={spec}: {path} is not a readable image ({err})") from err
    w, h = image.size
    if height is not None:
        size = (height, max(1, round(w * height / h)))
    elif max_side is not None and max(w, h) != max_side:
        scale = max_side / max(w, h)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if size is not None and (h, w) != tuple(size):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0), path


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """`[3, H, W]` (or `[1, H, W]`, `[H, W]`) in [0, 1] -> `[H, W, 3]` (or `[H, W]`) uint8, clipped."""
    array = image.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()
    if array.ndim == 3:
        array = array.transpose(1, 2, 0)
        return array[..., 0] if array.shape[-1] == 1 else array
    return array


def save_png(image: torch.Tensor | np.ndarray, path: Path) -> Path:
    from PIL import Image

    array = to_uint8(image) if isinstance(image, torch.Tensor) else image
    Image.fromarray(array).save(path)
    return path


def standardise(maps: torch.Tensor) -> torch.Tensor:
    """Each map to a viewable [0, 1]: book 5.4's `(x - mean) / std * 64 + 128`, clipped, over 255."""
    flat = maps.flatten(1)
    mean, std = flat.mean(1, keepdim=True), flat.std(1, keepdim=True)
    out = ((flat - mean) / (std + 1e-5) * 64 + 128).clamp(0, 255) / 255
    return out.view_as(maps)


def tile(tiles: torch.Tensor, columns: int, margin: int = 0, fill: float = 0.0) -> torch.Tensor:
    """`[N, H, W]` or `[N, C, H, W]` tiles -> one `[C?, rows*H + ..., columns*W + ...]` grid,
    `margin` pixels between tiles (book 5.4's filter grids use 5)."""
    grey = tiles.dim() == 3
    if grey:
        tiles = tiles[:, None]
    n, c, h, w = tiles.shape
    rows = -(-n // columns)
    grid = torch.full((c, rows * h + (rows - 1) * margin, columns * w + (columns - 1) * margin), fill)
    for i in range(n):
        r, q = divmod(i, columns)
        grid[:, r * (h + margin) : r * (h + margin) + h, q * (w + margin) : q * (w + margin) + w] = tiles[i]
    return grid[0] if grey else grid


def overlay(image: torch.Tensor, heatmap: torch.Tensor, alpha: float = 0.4) -> torch.Tensor:
    """Book 5.4's class activation picture: the heatmap (`[h, w]` in [0, 1]) resized to the image,
    coloured with JET, `alpha * heatmap + image`, rescaled into [0, 1]."""
    import matplotlib

    resized = torch.nn.functional.interpolate(heatmap[None, None].float(), size=image.shape[1:], mode="bilinear",
                                              align_corners=False)[0, 0].clamp(0, 1)  # fmt: skip
    jet = torch.from_numpy(matplotlib.colormaps["jet"](resized.numpy())[..., :3]).permute(2, 0, 1).float()
    mixed = alpha * jet + image
    return mixed / mixed.max()
