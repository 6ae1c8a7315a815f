"""Images in class folders, read one at a time: Keras' `flow_from_directory` (book chapter 5).

`root/<split>/<class>/<image>`: classes sorted alphabetically get labels 0, 1, ... (cats = 0,
dogs = 1 in book 5.2), files sorted by name within a class. Each image is decoded, converted to
RGB (or grayscale) and resized when read, then scaled to [0, 1] as the book's `rescale=1./255`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dlwp.data.streaming import Sample, StreamingDataModule, TensorSource
from dlwp.errors import ConfigError, DataMissingError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")
RESAMPLING = ("nearest", "bilinear", "bicubic")


class ImageFolder:
    """A `SampleSource` over `folder/<class>/<image>`: (float32 CxHxW in [0, 1], int64 class)."""

    def __init__(self, folder: Path, classes: list[str], size: tuple[int, int] | None,
                 interpolation: str = "nearest", color_mode: str = "rgb") -> None:  # fmt: skip
        self.folder, self.classes, self.size = Path(folder), classes, size
        self.interpolation, self.color_mode = interpolation, color_mode
        self.paths: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(classes):
            class_dir = self.folder / name
            if not class_dir.is_dir():
                raise DataMissingError(f"{class_dir} does not exist: every split needs a folder per class ({classes})")
            files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            self.paths += files
            labels += [label] * len(files)
        if not self.paths:
            raise DataMissingError(f"{self.folder} holds no images in {', '.join(classes)}/")
        self._targets = torch.tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Sample:
        return decode(self.paths[index], self.size, self.interpolation, self.color_mode), self._targets[index]

    def targets(self) -> torch.Tensor:
        return self._targets


def decode(path: Path, size: tuple[int, int] | None, interpolation: str, color_mode: str) -> torch.Tensor:
    """One image file -> float32 [C, H, W] in [0, 1], resized to `size` (height, width)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if color_mode == "rgb" else "L")
            if size is not None and image.size != (size[1], size[0]):
                resample = getattr(Image.Resampling, interpolation.upper())
                image = image.resize((size[1], size[0]), resample)
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise DataMissingError(f"{path} is not a readable image ({err}); replace or remove it") from err
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def random_shift_flip(sample: Sample, generator: torch.Generator, shift: float, hflip: bool) -> Sample:
    """Keras-style `width/height_shift_range` (a fraction of the size, nearest-pixel fill) and
    `horizontal_flip`, drawn for this one image from `generator`: `BatchShiftFlip` on a batch of one."""
    image, target = sample
    uniforms = torch.zeros(1, BatchShiftFlip.draws)
    if shift > 0:
        uniforms[0, :2] = torch.rand(2, generator=generator)
    if hflip:
        uniforms[0, 2] = torch.rand(1, generator=generator)
    return BatchShiftFlip(shift, hflip)(image[None], uniforms)[0], target


class BatchShiftFlip:
    """Keras-style shifts (nearest-pixel fill), then horizontal flips, of a whole batch `[B, C, H, W]`
    at once (in-memory images, e.g. CIFAR-10): one gather, on whatever device the batch lives
    (`random_shift_flip` is a batch of one). Each image's shift
    and flip come from its own row of `draws` uniforms, which `dlwp.data.batches.TensorBatches`
    draws per global batch from `(seed, epoch, position)`: the same images on 1 or W processes."""

    draws = 3
    """Uniforms per image: row shift, column shift, flip."""

    def __init__(self, shift: float, hflip: bool) -> None:
        if not 0 <= shift < 1:
            raise ConfigError(f"data.shift is a fraction of the image size in [0, 1), got {shift}")
        self.shift, self.hflip = shift, hflip

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.hflip

    def __call__(self, images: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        u = uniforms.to(images.device)
        rows = torch.arange(h, device=images.device).expand(b, h)
        cols = torch.arange(w, device=images.device).expand(b, w)
        if self.shift > 0:  # the same rounding and nearest-pixel fill as `random_shift_flip`
            dy = ((u[:, 0] * 2 - 1) * self.shift * h).round().long()
            dx = ((u[:, 1] * 2 - 1) * self.shift * w).round().long()
            rows = (rows - dy[:, None]).clamp(0, h - 1)
            cols = (cols - dx[:, None]).clamp(0, w - 1)
        if self.hflip:
            cols = torch.where((u[:, 2] < 0.5)[:, None], cols.flip(-1), cols)
        batch = torch.arange(b, device=images.device)[:, None, None]
        out = images.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
        return out.permute(0, 3, 1, 2).contiguous()


class ImageFolderDataModule(StreamingDataModule):
    """Class-folder image datasets, read and decoded per sample (book chapter 5).

    Args:
        root: folder holding one folder per split.
        train_dir, val_dir, test_dir: the splits' folder names under `root`; None: no such split
            (a missing `val_dir` folder is not an error when `val_dir` is None).
        classes: class folder names; None: every folder of the training split, sorted.
        image_size: [height, width] every image is resized to (the book's `target_size`); None
            keeps each image's size (they must then all be equal to be batched).
        interpolation: resampling of the resize; Keras 2.0.8's `load_img` used PIL's default of
            its time, `nearest`.
        color_mode: `rgb` (3 channels) or `grayscale` (1).
        shift: training augmentation: random shifts up to this fraction of height and width.
        hflip: training augmentation: random horizontal flips.
        **kwargs: see `StreamingDataModule`.
    """

    def __init__(
        self,
        root: str,
        train_dir: str = "train",
        val_dir: str | None = "validation",
        test_dir: str | None = "test",
        classes: list[str] | None = None,
        image_size: list[int] | None = None,
        interpolation: Literal["nearest", "bilinear", "bicubic"] = "nearest",
        color_mode: Literal["rgb", "grayscale"] = "rgb",
        shift: float = 0.0,
        hflip: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if image_size is not None and len(image_size) != 2:
            raise ConfigError(f"data.image_size must be [height, width], got {image_size}")
        if interpolation not in RESAMPLING:
            raise ConfigError(f"data.interpolation must be one of {list(RESAMPLING)}, got {interpolation!r}")
        self.root = Path(root)
        self.split_dirs = {"train": train_dir, "val": val_dir, "test": test_dir}
        self.classes = list(classes) if classes is not None else None
        self.image_size = tuple(image_size) if image_size is not None else None
        self.interpolation, self.color_mode = interpolation, color_mode
        self.shift, self.hflip = shift, hflip
        if shift > 0 or hflip:
            self.train_transform = self._augment

    def _augment(self, sample: Sample, generator: torch.Generator) -> Sample:
        return random_shift_flip(sample, generator, self.shift, self.hflip)

    def class_names(self) -> list[str]:
        if self.classes is not None:
            return self.classes
        train = self.root / self.split_dirs["train"]
        if not train.is_dir():
            raise DataMissingError(f"{train} does not exist: the training images go in {train}/<class>/")
        return sorted(p.name for p in train.iterdir() if p.is_dir())

    def _folders(self) -> dict[str, Path]:
        folders = {}
        for split, name in self.split_dirs.items():
            if name is None:
                continue
            folder = self.root / name
            if folder.is_dir():
                folders[split] = folder
            elif split == "train":
                raise DataMissingError(f"{folder} does not exist: the training images go in {folder}/<class>/")
        return folders

    def load(self) -> dict[str, ImageFolder]:
        classes = self.class_names()
        return {
            split: ImageFolder(folder, classes, self.image_size, self.interpolation, self.color_mode)
            for split, folder in self._folders().items()
        }

    def files(self) -> list[Path]:
        if not (self.root / self.split_dirs["train"]).is_dir():
            return []  # setup() says what is missing
        return [p for source in self.load().values() for p in source.paths]

    def synthetic(self) -> dict[str, TensorSource]:
        """Two classes of 16x16 images: a bright square in the top-left or bottom-right corner."""
        size = self.image_size or (16, 16)
        channels = 3 if self.color_mode == "rgb" else 1
        gen = torch.Generator().manual_seed(1234)

        def split(n: int) -> TensorSource:
            y = torch.randint(0, 2, (n,), generator=gen)
            x = 0.3 * torch.rand(n, channels, *size, generator=gen)
            h, w = size[0] // 2, size[1] // 2
            x[y == 0, :, :h, :w] += 0.6
            x[y == 1, :, h:, w:] += 0.6
            return TensorSource(x.clamp(0, 1), y)

        return {"train": split(400), "val": split(100), "test": split(100)}
