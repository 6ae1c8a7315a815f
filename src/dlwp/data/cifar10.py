"""CIFAR-10's 50,000 training images (book 8.5 uses its 5,000 frogs; 5.3 here pretrains a base).

Read from Keras' `cifar-10-python.tar.gz` when present (its pickled batches are loaded only when
the file's md5 is the published one), else from the shared mirror's JPEG re-encoding
(`CIFAR-10-images/train/<class>/NNNN.jpg`: the same images, lossy, so not bit-exact; run records
name which file was read). Classes in Keras' label order (airplane = 0 ... frog = 6 ... truck = 9).
Decoded once into a uint8 array cached beside the data; batches are float in [0, 1].
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from dlwp.data.base import InMemoryDataModule, Split
from dlwp.data.images import BatchShiftFlip
from dlwp.errors import ConfigError, DataMissingError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PYTHON_MD5 = "c58f30108f718f92721af3b95e74349a"
CACHE_VERSION = 2  # 2: JPEG stand-in read with its classes interleaved


class CIFAR10DataModule(InMemoryDataModule):
    """CIFAR-10 training images as uint8 [N, 3, 32, 32] in memory, served as float in [0, 1].

    Args:
        python_tar: Keras' `cifar-10-python.tar.gz` (used when it exists).
        jpeg_tar: the mirror's JPEG re-encoding of the training images (used otherwise).
        classes: keep these classes only (e.g. [frog] for book 8.5), labels renumbered 0.. in
            this order; None: all ten.
        test_size: the training archive has no test split: hold out its last `test_size` images
            as one (classes interleaved, so balanced), before `val_size` takes its own.
        shift: training augmentation: random shifts of up to this fraction of the height and
            width, nearest-pixel fill (Keras' `width/height_shift_range`), drawn per image.
        hflip: training augmentation: random horizontal flips (Keras' `horizontal_flip`).
        **kwargs: see `InMemoryDataModule`.
    """

    dataset = "cifar10"

    def __init__(self, python_tar: str, jpeg_tar: str, classes: list[str] | None = None, test_size: int = 0,
                 shift: float = 0.0, hflip: bool = False, **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.test_size = test_size
        augment = BatchShiftFlip(shift, hflip)
        self.train_augment = augment if augment.active else None
        self.python_tar, self.jpeg_tar = Path(python_tar), Path(jpeg_tar)
        unknown = [c for c in classes or [] if c not in CLASSES]
        if unknown:
            raise ConfigError(f"data.classes: {unknown} are not CIFAR-10 classes ({', '.join(CLASSES)})")
        self.classes = list(classes) if classes else list(CLASSES)

    def _source(self) -> Path:
        return self.python_tar if self.python_tar.is_file() else self.jpeg_tar

    def files(self) -> list[Path]:
        return [self._source()]

    @staticmethod
    def batch_transform(batch: Split) -> Split:
        """uint8 images -> float32 in [0, 1] (the book's `/ 255.`), per batch."""
        images, labels = batch
        return images.float().div_(255.0), labels

    def load(self) -> dict[str, Split]:
        from dlwp.record import file_identities

        source = self._source()
        if not source.is_file():
            raise DataMissingError(
                f"cifar10: neither {self.python_tar} nor {self.jpeg_tar} exists. `dlwp data fetch cifar10` "
                "(downloads Keras' file, or copies the JPEG stand-in from $DLWP_DATA_MIRROR)"
            )
        digest = file_identities([source])[0]["sha256"]
        key = hashlib.sha256(f"cifar10 v{CACHE_VERSION} {digest}".encode()).hexdigest()[:16]
        cache = source.parent / ".cache" / f"cifar10_train_{key}.npz"
        if cache.is_file():
            with np.load(cache, allow_pickle=False) as data:
                images, labels = data["x"], data["y"]
        else:
            images, labels = read_python(source) if source == self.python_tar else read_jpegs(source)
            _write(cache, images, labels)
        if len(images) != 50000 or images.shape[1:] != (3, 32, 32):
            raise DataMissingError(f"cifar10: {source} gave {images.shape}, not 50,000 3x32x32 images")
        keep = np.isin(labels, [CLASSES.index(c) for c in self.classes])
        relabel = np.full(len(CLASSES), -1)
        relabel[[CLASSES.index(c) for c in self.classes]] = np.arange(len(self.classes))
        x = torch.from_numpy(np.ascontiguousarray(images[keep]))
        y = torch.from_numpy(relabel[labels[keep]].astype(np.int64))
        return self._hold_out_test(x, y)

    def _hold_out_test(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Split]:
        if not self.test_size:
            return {"train": (x, y)}
        if not 0 < self.test_size < len(x):
            raise ConfigError(f"data.test_size={self.test_size}: give fewer than the {len(x)} images")
        t = len(x) - self.test_size
        return {"train": (x[:t], y[:t]), "test": (x[t:], y[t:])}

    def synthetic(self) -> dict[str, Split]:
        """5,000 32x32 "images" per class: each class a fixed colour pattern plus noise."""
        gen = torch.Generator().manual_seed(1234)
        patterns = torch.randint(0, 256, (len(self.classes), 3, 32, 32), generator=gen)
        n = 500 * len(self.classes)
        y = torch.arange(n) % len(self.classes)
        noise = torch.randint(0, 256, (n, 3, 32, 32), generator=gen)
        x = (0.6 * patterns[y] + 0.4 * noise).to(torch.uint8)
        return self._hold_out_test(x, y)


def read_python(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Keras' file: `data_batch_1..5` pickles, loaded only when the file is the published one."""
    md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    if md5 != PYTHON_MD5:
        raise DataMissingError(f"{path} has md5 {md5}, not the published {PYTHON_MD5}: its pickles are not loaded")
    images, labels = [], []
    with tarfile.open(path, "r:gz") as tar:
        for i in range(1, 6):
            batch = pickle.loads(tar.extractfile(f"cifar-10-batches-py/data_batch_{i}").read(), encoding="bytes")
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def read_jpegs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The mirror's `CIFAR-10-images/train/<class>/NNNN.jpg`, classes in Keras order, files by name."""
    from PIL import Image

    found: dict[str, list[tuple[str, np.ndarray]]] = {c: [] for c in CLASSES}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                parts = member.name.split("/")
                if not member.isfile() or len(parts) != 4 or parts[1] != "train" or parts[2] not in found:
                    continue
                with Image.open(io.BytesIO(tar.extractfile(member).read())) as image:
                    found[parts[2]].append((parts[3], np.asarray(image.convert("RGB"), dtype=np.uint8)))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataMissingError(f"cifar10: {path} is corrupt or not the CIFAR-10 JPEG archive ({err})") from err
    # Classes interleaved (image k of every class, then k + 1), not one class after another: Keras'
    # batches mix the classes, and a tail hold-out (data.val_size) must hold every class, not trucks only.
    ordered = [sorted(found[name], key=lambda item: item[0]) for name in CLASSES]
    images, labels = [], []
    for k in range(max((len(files) for files in ordered), default=0)):
        for label, files in enumerate(ordered):
            if k < len(files):
                images.append(files[k][1].transpose(2, 0, 1))
                labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _write(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, x=images, y=labels)
        os.replace(tmp, path)
    except OSError:
        pass
