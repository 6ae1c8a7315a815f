"""MNIST in the Keras `mnist.npz` layout: 60,000 train / 10,000 test 28x28 uint8 images, in order."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dlwp.data.base import InMemoryDataModule, Split, require_file
from dlwp.errors import DataMissingError

EXPECTED = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}


class MNISTDataModule(InMemoryDataModule):
    """Pixels scaled to [0, 1] as float32 (the book's `astype('float32') / 255`), labels 0-9.

    Args:
        path: the `mnist.npz` file (keys x_train, y_train, x_test, y_test).
        layout: `flat` (784 features, book 2.1) or `image` (1x28x28, book 5.1).
        **kwargs: see `InMemoryDataModule`.
    """

    dataset = "mnist"

    def __init__(self, path: str, layout: Literal["flat", "image"] = "flat", **kwargs) -> None:
        super().__init__(**kwargs)
        self.path, self.layout = Path(path), layout

    def files(self) -> list[Path]:
        return [self.path]

    def load(self) -> dict[str, Split]:
        arrays = read_npz(self.path, EXPECTED, dataset="mnist")
        shape = (-1, 784) if self.layout == "flat" else (-1, 1, 28, 28)

        def split(x: np.ndarray, y: np.ndarray) -> Split:
            images = torch.from_numpy(x.reshape(shape).astype(np.float32) / 255.0)
            return images, torch.from_numpy(y.astype(np.int64))

        return {
            "train": split(arrays["x_train"], arrays["y_train"]),
            "test": split(arrays["x_test"], arrays["y_test"]),
        }

    def synthetic(self) -> dict[str, Split]:
        """60,000/10,000 28x28 "digits": each class a fixed random stroke pattern plus noise."""
        gen = torch.Generator().manual_seed(1234)
        prototypes = (torch.rand(10, 28, 28, generator=gen) > 0.8).float()

        def split(n: int) -> Split:
            y = torch.randint(0, 10, (n,), generator=gen)
            x = (0.7 * prototypes[y] + 0.3 * torch.rand(n, 28, 28, generator=gen)).clamp(0, 1)
            x = (x * 255).round() / 255  # the real data's uint8 grid
            return x.reshape(-1, 784) if self.layout == "flat" else x.reshape(-1, 1, 28, 28), y

        return {"train": split(60000), "test": split(10000)}


def read_npz(path: Path, expected: dict[str, tuple[int, ...]], dataset: str) -> dict[str, np.ndarray]:
    """Read an npz and check its keys and shapes, with errors that say how to get a good copy."""
    require_file(path, dataset)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in expected}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise DataMissingError(
            f"{dataset}: {path} is corrupt or not the expected format ({err}); "
            f"expected arrays {', '.join(expected)}. Replace it with a good copy."
        ) from err
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise DataMissingError(
                f"{dataset}: {path}[{key}] has shape {arrays[key].shape}, expected {shape}; "
                "this is not the full dataset. Replace it with a good copy."
            )
    return arrays
