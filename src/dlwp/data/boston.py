"""Boston housing prices (book 3.7) as Keras `boston_housing.load_data()` gives them, standardised as the book does.

Keras shuffles the 506 rows with `RandomState(113)` (2.0.8's reseed-and-shuffle of x and y draws
the same permutation) and keeps the first `int(506 * (1 - test_split))` = 404 for training; the
book then subtracts the training mean and divides by the training std (numpy's, ddof 0) of each
feature, for train and test alike. Those statistics come from all 404 training samples, before
any validation hold-out or K-fold split, exactly as in the book. Targets: median value in k$,
float32 (N,).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlwp.data.base import InMemoryDataModule, Split
from dlwp.data.mnist import read_npz
from dlwp.data.text import keras_permutation
from dlwp.errors import ConfigError

NUM_ROWS, NUM_FEATURES = 506, 13


class BostonHousingDataModule(InMemoryDataModule):
    """404 train / 102 test houses x 13 features, regression on the price.

    Args:
        path: Keras-layout `boston_housing.npz` (`x` (506, 13), `y` (506,)).
        test_split: fraction held out as the test set, from the end of the shuffled rows (Keras').
        standardize: feature-wise `(x - mean) / std` with the training split's statistics (book
            3.7); false gives the raw features, whose scales differ by a factor of ~1,000.
        **kwargs: see `InMemoryDataModule`.
    """

    dataset = "boston_housing"

    def __init__(self, path: str, test_split: float = 0.2, standardize: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 < test_split < 1:
            raise ConfigError(f"data.test_split must lie strictly between 0 and 1, got {test_split}")
        self.path, self.test_split, self.standardize = Path(path), test_split, standardize

    def files(self) -> list[Path]:
        return [self.path]

    def load(self) -> dict[str, Split]:
        arrays = read_npz(self.path, {"x": (NUM_ROWS, NUM_FEATURES), "y": (NUM_ROWS,)}, dataset="boston_housing")
        order = keras_permutation(NUM_ROWS)
        return self._split(arrays["x"][order], arrays["y"][order])

    def synthetic(self) -> dict[str, Split]:
        """506 houses: features on the real data's mixed scales, price = linear + noise, clipped to 5-50 k$."""
        rng = np.random.default_rng(1234)
        scales = np.array([3.6, 23.0, 6.9, 0.25, 0.12, 0.7, 28.0, 2.1, 8.7, 168.0, 2.2, 91.0, 7.1])
        centres = np.array([3.6, 11.0, 11.0, 0.07, 0.55, 6.3, 69.0, 3.8, 9.5, 408.0, 18.5, 357.0, 12.7])
        z = rng.standard_normal((NUM_ROWS, NUM_FEATURES))
        weights = rng.normal(0.0, 2.5, NUM_FEATURES)
        y = np.clip(22.5 + z @ weights + rng.normal(0.0, 2.0, NUM_ROWS), 5.0, 50.0)
        return self._split(centres + z * scales, y)

    def _split(self, x: np.ndarray, y: np.ndarray) -> dict[str, Split]:
        n_train = int(len(x) * (1 - self.test_split))
        x = x.astype(np.float64)
        if self.standardize:  # in float64, like the book's numpy code, then float32 like Keras' input
            mean, std = x[:n_train].mean(axis=0), x[:n_train].std(axis=0)
            x = (x - mean) / np.where(std > 0, std, 1.0)
        x_t, y_t = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
        return {"train": (x_t[:n_train], y_t[:n_train]), "test": (x_t[n_train:], y_t[n_train:])}
