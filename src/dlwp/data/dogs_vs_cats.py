"""The book's `cats_and_dogs_small` (5.2, 5.3): 2,000 train / 1,000 validation / 1,000 test images.

The split is the book's, by Kaggle id: `cat.0-999` and `dog.0-999` train, `1000-1499` validate,
`1500-1999` test; cats = 0, dogs = 1 (`flow_from_directory`'s alphabetical classes). The images
come from either source, holding the same ids:

- a data root laid out as the shared mirror (`dlwp data fetch dogs_vs_cats`):
  `cats_and_dogs_filtered/train/{cats,dogs}/` (the 2,000 originals) and
  `cats_and_dogs_small_valtest_200px/{validation,test}/{cats,dogs}/` (the book's ids, 200 px);
- Kaggle's `train.zip` (`kaggle_zip`), read in place: `train/cat.<id>.jpg`.

Every image is decoded and resized once (`image_size`, Keras 2.0.8's nearest-neighbour `load_img`)
into a uint8 array cached beside the data, keyed by the sha256 of the files read, the size and
the resampling; epochs then read memory, and the book's `ImageDataGenerator` augmentation is
drawn per image and per epoch (`dlwp.data.augment`), on the training split only.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dlwp.data.augment import KerasAugmentation
from dlwp.data.streaming import Sample, StreamingDataModule, TensorSource
from dlwp.errors import ConfigError, DataMissingError

CLASSES = ("cats", "dogs")  # label 0, 1: flow_from_directory sorts the class folders
BOOK_IDS = {"train": range(0, 1000), "val": range(1000, 1500), "test": range(1500, 2000)}
MIRROR_DIRS = {
    "train": "cats_and_dogs_filtered/train",
    "val": "cats_and_dogs_small_valtest_200px/validation",
    "test": "cats_and_dogs_small_valtest_200px/test",
}
CACHE_VERSION = 1
"""Bump when decoding or resizing changes: part of the cache key."""


def image_name(label: int, kaggle_id: int) -> str:
    return f"{CLASSES[label][:-1]}.{kaggle_id}.jpg"


class DecodedImages:
    """A `SampleSource` over decoded uint8 images ([N, C, H, W]) and their labels; samples are
    float32 in [0, 1] (the book's `rescale=1./255`), augmented by `transform` when one is given."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Sample:
        return self.images[index], self.labels[index]

    def targets(self) -> torch.Tensor:
        return self.labels


class DogsVsCatsDataModule(StreamingDataModule):
    """The book's cats vs dogs split, decoded once, augmented per sample; see the module docstring.

    Args:
        root: the dataset folder in the data root (`data/dogs_vs_cats`).
        kaggle_zip: Kaggle's `train.zip` to read instead of `root` (None: use `root`).
        image_size: [height, width] (the book's `target_size=(150, 150)`).
        interpolation: resampling of the resize; Keras 2.0.8's `load_img` used `nearest`.
        cache_dir: where decoded arrays are cached; None: `<root>/.cache` (ignored by DVC).
        augmentation: the book's `ImageDataGenerator` arguments (`dlwp.data.augment`), applied to
            training samples only; all zero: none.
        per_class: only the first N ids of each class in each split (smoke tests, partial copies);
            None: the book's full split.
        **kwargs: see `StreamingDataModule`.
    """

    dataset = "dogs_vs_cats"

    def __init__(
        self,
        root: str,
        kaggle_zip: str | None = None,
        image_size: list[int] | None = None,
        interpolation: Literal["nearest", "bilinear", "bicubic"] = "nearest",
        cache_dir: str | None = None,
        augmentation: KerasAugmentation | None = None,
        per_class: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        size = list(image_size) if image_size is not None else [150, 150]
        if len(size) != 2 or min(size) < 1:
            raise ConfigError(f"data.image_size must be [height, width], got {image_size}")
        self.root, self.size, self.interpolation = Path(root), (int(size[0]), int(size[1])), interpolation
        self.kaggle_zip = Path(kaggle_zip) if kaggle_zip else None
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / ".cache"
        self.augmentation = _augmentation(augmentation)
        if per_class is not None and not 1 <= per_class <= 500:
            raise ConfigError(f"data.per_class must be in [1, 500] (or null for the book's split), got {per_class}")
        self.per_class = per_class
        self._listing: dict[str, list[tuple[str, int]]] | None = None
        if self.augmentation.active:
            self.train_transform = self._augment

    def _augment(self, sample: Sample, generator: torch.Generator) -> Sample:
        image, label = sample
        return self.augmentation(image, generator), label

    # -- what is read ---------------------------------------------------------------------------
    def listing(self) -> dict[str, list[tuple[str, int]]]:
        """Per split: (file path or zip member, label), classes in order, ids in order (built once:
        a run asks for it five times, 4,000 paths each)."""
        if self._listing is not None:
            return self._listing
        out = {}
        for split, ids in BOOK_IDS.items():
            entries = []
            for label in (0, 1):
                for kaggle_id in list(ids)[: self.per_class]:
                    name = image_name(label, kaggle_id)
                    if self.kaggle_zip is not None:
                        entries.append((f"train/{name}", label))
                    else:
                        entries.append((str(self.root / MIRROR_DIRS[split] / CLASSES[label] / name), label))
            out[split] = entries
        self._listing = out
        return out

    def files(self) -> list[Path]:
        if self.kaggle_zip is not None:
            return [self.kaggle_zip]
        return [Path(path) for entries in self.listing().values() for path, _ in entries]

    def load(self) -> dict[str, DecodedImages]:
        from dlwp.record import file_identities

        if self.kaggle_zip is not None and not self.kaggle_zip.is_file():
            raise DataMissingError(f"dogs_vs_cats: data.kaggle_zip={self.kaggle_zip} does not exist")
        missing = [f for f in self.files() if not f.is_file()]
        if missing:
            folders = sorted({str(f.parent) for f in missing})
            raise DataMissingError(
                f"dogs_vs_cats: {len(missing)} of the book's images are missing, e.g. {missing[0]} "
                f"(in {', '.join(folders[:4])}{' ...' if len(folders) > 4 else ''}). Fetch them with "
                "`dlwp data fetch dogs_vs_cats` (from a mirror), or give Kaggle's train.zip as data.kaggle_zip"
            )
        hashes = {f["path"]: f["sha256"] for f in file_identities(self.files())}
        splits = {}
        for split, entries in self.listing().items():
            labels = torch.tensor([label for _, label in entries], dtype=torch.int64)
            splits[split] = DecodedImages(self._decoded(split, entries, hashes), labels)
        return splits

    def _decoded(self, split: str, entries: list[tuple[str, int]], hashes: dict[str, str]) -> torch.Tensor:
        """The split's images as uint8 [N, 3, H, W], from the cache when its key matches."""
        sources = [hashes[str(self.kaggle_zip)]] if self.kaggle_zip else [hashes[path] for path, _ in entries]
        key = hashlib.sha256(
            f"dogs_vs_cats v{CACHE_VERSION} {split} {self.size} {self.interpolation}\n".encode()
            + "\n".join(sources).encode()
        ).hexdigest()
        cache = self.cache_dir / f"dogs_vs_cats_{split}_{self.size[0]}x{self.size[1]}_{key[:16]}.npy"
        expected = (len(entries), 3, *self.size)
        if cache.is_file():
            try:
                array = np.load(cache, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise DataMissingError(f"{cache} is not a readable cache ({err}); delete it: it is rebuilt") from err
            if array.shape != expected or array.dtype != np.uint8:
                raise DataMissingError(
                    f"{cache} holds {array.dtype} {array.shape}, not uint8 {expected}: it is not this split's "
                    "decoded images (a damaged or foreign file). Delete it: it is rebuilt on the next run"
                )
            return torch.from_numpy(array)
        array = self._decode_all(split, [path for path, _ in entries])
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, array)
            os.replace(tmp, cache)
        except OSError:
            pass  # an unwritable cache only costs the next run the decoding
        return torch.from_numpy(array)

    def _decode_all(self, split: str, names: list[str]) -> np.ndarray:
        from tqdm import tqdm

        out = np.empty((len(names), 3, *self.size), dtype=np.uint8)
        archive = zipfile.ZipFile(self.kaggle_zip) if self.kaggle_zip else None

        def read(i: int) -> None:
            if archive is not None:
                data = archive.read(names[i])  # ZipFile.read is safe to call from threads
                out[i] = decode_resized(data, names[i], self.size, self.interpolation)
            else:
                out[i] = decode_resized(Path(names[i]).read_bytes(), names[i], self.size, self.interpolation)

        bar = tqdm(total=len(names), desc=f"decoding dogs_vs_cats {split} ({self.size[0]}x{self.size[1]})",
                   unit="img", leave=False)  # fmt: skip
        try:
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                for _ in pool.map(read, range(len(names))):
                    bar.update()
        finally:
            bar.close()
            if archive is not None:
                archive.close()
        return out

    def synthetic(self) -> dict[str, TensorSource]:
        """Small stand-in images of the real format: a bright disc on cats, a bright bar on dogs."""
        gen = torch.Generator().manual_seed(1234)
        h, w = self.size
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        disc = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 4) ** 2).to(torch.uint8)
        bar = ((yy - h / 2).abs() < h / 10).to(torch.uint8)

        def split(n: int) -> DecodedImages:
            y = torch.arange(n) % 2
            noise = torch.randint(0, 120, (n, 3, h, w), generator=gen, dtype=torch.uint8)
            shape = torch.where(y.view(-1, 1, 1) == 0, disc, bar).unsqueeze(1)
            return DecodedImages(noise + shape * 120, y.long())

        return {"train": split(400), "val": split(200), "test": split(200)}

    @staticmethod
    def batch_transform(batch: Sample) -> Sample:
        """uint8 images -> float32 in [0, 1]: the book's `rescale=1./255`, once per batch."""
        images, labels = batch
        return images.float().div_(255.0), labels


def _augmentation(config) -> KerasAugmentation:
    if config is None:
        return KerasAugmentation()
    if isinstance(config, KerasAugmentation):
        return config
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(config, resolve=True) if OmegaConf.is_config(config) else dict(config)
    return KerasAugmentation(**plain)


_ID = re.compile(r"(cat|dog)\.(\d+)\.jpg$")


def decode_resized(data: bytes, name: str, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """JPEG bytes -> uint8 [3, H, W], RGB, resized as Keras' `load_img(target_size)`."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), getattr(Image.Resampling, interpolation.upper()))
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise DataMissingError(f"{name} is not a readable image ({err}); replace it with a good copy") from err
    return array.transpose(2, 0, 1)
