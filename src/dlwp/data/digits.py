"""scikit-learn's 8x8 handwritten digits: real data that ships inside a PyPI package.

It lets `dlwp train` run a real book network on a fresh machine with no download: 1,797 images
from 43 writers (UCI "Optical Recognition of Handwritten Digits"), pixel values 0-16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from dlwp.data.base import InMemoryDataModule, Split, check_target_names, make_targets

TARGETS = {
    "digit": lambda y: y,  # int64 class 0-9
    "odd": lambda y: (y % 2).float(),  # binary: is the digit odd?
    "value": lambda y: y.float(),  # regression: the digit as a number
}


class DigitsDataModule(InMemoryDataModule):
    """Digits split once, stratified and seeded, into 1,437 train / 360 test (80/20).

    Args:
        test_size: test samples; the split is fixed (seed 0) so every run sees the same test set.
        layout: `flat` (64 features, for dense networks) or `image` (1x8x8, for convnets).
        targets: `digit` (the class, 0-9), or a list of named targets for a multi-output task:
            `digit`, `odd` (0/1) and `value` (the digit as a float, for regression).
        **kwargs: see `InMemoryDataModule`.
    """

    def __init__(self, test_size: int = 360, layout: Literal["flat", "image"] = "flat", targets: Any = "digit",
                 **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.test_size, self.layout = test_size, layout
        self.targets_spec = check_target_names(targets, TARGETS)

    def files(self) -> list[Path]:
        import sklearn.datasets

        return [Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"]

    def load(self) -> dict[str, Split]:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x = (digits.data / 16.0).astype(np.float32)
        if self.layout == "image":
            x = x.reshape(-1, 1, 8, 8)
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, digits.target, test_size=self.test_size, stratify=digits.target, random_state=0
        )
        return {
            "train": (torch.from_numpy(x_tr), make_targets(self.targets_spec, TARGETS, torch.from_numpy(y_tr).long())),
            "test": (torch.from_numpy(x_te), make_targets(self.targets_spec, TARGETS, torch.from_numpy(y_te).long())),
        }
