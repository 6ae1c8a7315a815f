"""How far generated images are from real ones, measured in the feature space of a classifier that
dlwp trained (book 8.5 only shows samples). FID's Inception weights cannot be downloaded here, and
any fixed feature space gives the same two distances:

- the Fréchet distance between Gaussians fitted to the two feature sets (FID's formula);
- the kernel distance (KID's unbiased squared MMD, cubic polynomial kernel), averaged over random
  subsets; unlike the Fréchet distance it is unbiased for small sets.

Real images against other real images (disjoint sets of the same size) give the floor: a
generator whose distances approach it has matched the real images as this classifier sees them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)) for feature sets [n, d]."""
    a, b = a.double(), b.double()
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(cov_a)
    root_a = (v * w.clamp(min=0).sqrt()) @ v.T
    # tr((C_a C_b)^(1/2)) = sum of the square roots of the eigenvalues of C_a^(1/2) C_b C_a^(1/2)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def kernel_distance(a: torch.Tensor, b: torch.Tensor, subsets: int = 10, subset_size: int = 1000,
                    seed: int = 0) -> float:  # fmt: skip
    """KID: the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, mean over `subsets` random subsets."""
    a, b = a.double(), b.double()
    m = min(subset_size, len(a), len(b))
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(subsets):
        x, y = a[torch.randperm(len(a), generator=g)[:m]], b[torch.randperm(len(b), generator=g)[:m]]
        d = x.shape[1]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        off = m * (m - 1)
        total += float((kxx.sum() - kxx.trace()) / off + (kyy.sum() - kyy.trace()) / off - 2 * kxy.mean())
    return total / subsets


class FeatureSpace:
    """The convolutional base of a dlwp classifier run (e.g. `cifar10_convnet`), flattened: images
    in [0, 1] as that run's data module served them -> feature vectors."""

    def __init__(self, run: str | Path) -> None:
        from dlwp.model.backbones import load_backbone

        self.network: nn.Module = load_backbone("dlwp_run", str(run)).eval()
        self.run = str(run)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
        device = next(self.network.parameters()).device
        parts = [self.network(images[i : i + batch_size].to(device)).flatten(1).cpu()
                 for i in range(0, len(images), batch_size)]  # fmt: skip
        return torch.cat(parts)
