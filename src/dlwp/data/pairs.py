"""Pairs of images for a shared-weights ("Siamese") model (book 7.1.5-7.1.6's pattern on real
data): are these two MNIST digits the same class? Each split becomes one pair per image, half of
them of the same class, drawn from a fixed seed so every run sees the same pairs."""

from __future__ import annotations

import torch

from dlwp.data.base import Split
from dlwp.data.mnist import MNISTDataModule


def make_pairs(x: torch.Tensor, y: torch.Tensor, seed: int) -> Split:
    """`({"left": x, "right": x[partner]}, same)`: image i with a partner of its own class
    (i even) or of another class (i odd), the partner drawn with a generator seeded by `seed`."""
    gen = torch.Generator().manual_seed(seed)
    classes = int(y.max()) + 1
    by_class = [torch.nonzero(y == c).flatten() for c in range(classes)]
    partner = torch.empty(len(y), dtype=torch.int64)
    for i, label in enumerate(y.tolist()):
        wanted = label if i % 2 == 0 else (label + int(torch.randint(1, classes, (1,), generator=gen))) % classes
        pool = by_class[wanted]
        partner[i] = pool[int(torch.randint(len(pool), (1,), generator=gen))]
    return {"left": x, "right": x[partner]}, (y == y[partner]).long()


class MNISTPairsDataModule(MNISTDataModule):
    """MNIST as pairs (inputs `left`, `right`; target 1 when both show the same digit).

    Args:
        pair_seed: seed of the pairing (fixed, like a subset's seed, so runs with different
            seeds see the same pairs); each split uses `pair_seed + its index`.
        **kwargs: see `MNISTDataModule` (layout image for a convnet encoder).
    """

    def __init__(self, pair_seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pair_seed = pair_seed

    def load(self) -> dict[str, Split]:
        return self._paired(super().load())

    def synthetic(self) -> dict[str, Split]:
        return self._paired(super().synthetic())

    def _paired(self, splits: dict[str, Split]) -> dict[str, Split]:
        return {name: make_pairs(x, y, self.pair_seed + i) for i, (name, (x, y)) in enumerate(sorted(splits.items()))}
