"""Book 5.3a, fast feature extraction: a pretrained base's output for every image, computed once.

The images come from another data module (`images`, e.g. the cats vs dogs one, without
augmentation), run through the backbone in evaluation mode, and the feature maps are cached,
keyed by the backbone, its weights' sha256, the image files' sha256 and the image module's
options; a small densely connected classifier then trains on them in memory, in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlwp.data.base import InMemoryDataModule, Split
from dlwp.errors import DataMissingError

CACHE_VERSION = 1


class ExtractedFeatures(InMemoryDataModule):
    """Features of `images` under a pretrained `backbone` (see the module docstring).

    Args:
        images: the image data module's config (`_target_` and its options); its own hold-out,
            subset and augmentation options are ignored: every split, in order, unaugmented.
        backbone: a registered backbone (`dlwp.model.backbones`) or `dlwp_run`.
        weights: its weights file (or run), as `PretrainedConvNet`'s `weights`.
        pool: `flatten` (the book: 4x4x512 = 8,192 VGG16 features) or `avg` (one per channel).
        cache_dir: where features are cached; None: the image module's cache folder (or `.cache/`
            beside its first file).
        extract_batch_size: images per forward pass of the backbone.
        **kwargs: see `InMemoryDataModule`.
    """

    def __init__(self, images: Any, backbone: str, weights: str | None = None, pool: str = "flatten",
                 cache_dir: str | None = None, extract_batch_size: int = 50, **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        from omegaconf import OmegaConf

        from dlwp.config.targets import check_target

        node = images if OmegaConf.is_config(images) else OmegaConf.create(images)
        self.images_config = check_target(node, "data.images", injected=("seed",))
        self.backbone, self.weights, self.pool = backbone, weights, pool
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.extract_batch_size = extract_batch_size
        self._images = None

    def image_module(self):
        if self._images is None:
            from hydra.utils import instantiate

            self._images = instantiate(self.images_config, seed=self.seed)
        return self._images

    def files(self) -> list[Path]:
        return self.image_module().files()

    def synthetic(self) -> dict[str, Split]:
        """The features of the image module's synthetic images (not cached)."""
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        self._images = instantiate(OmegaConf.merge(self.images_config, {"source": "synthetic"}), seed=self.seed)
        return self.load(cache=False)

    def load(self, cache: bool = True) -> dict[str, Split]:
        from dlwp.model.backbones import BACKBONES, find_weights, load_backbone
        from dlwp.record import file_identities

        images = self.image_module()
        weights_id = self.weights or ""
        if self.backbone in BACKBONES and BACKBONES[self.backbone].weights is not None:
            weights_id = file_identities([find_weights(BACKBONES[self.backbone], self.weights)])[0]["sha256"]
        from omegaconf import OmegaConf

        options = OmegaConf.to_container(self.images_config, resolve=True)
        key = hashlib.sha256(json.dumps({
            "version": CACHE_VERSION, "backbone": self.backbone, "weights": weights_id, "pool": self.pool,
            "layout": "channels_last",
            "images": {k: v for k, v in options.items() if k not in ("batch_size", "eval_batch_size", "num_workers")},
            "files": [f["sha256"] for f in file_identities(images.data_files())],
        }, sort_keys=True, default=str).encode()).hexdigest()  # fmt: skip
        images.setup()
        files = images.data_files()
        beside = getattr(images, "cache_dir", None) or (Path(files[0]).parent / ".cache" if files else Path(".cache"))
        cache_dir = self.cache_dir or Path(beside)
        base = None
        splits = {}
        for split, source in images.splits.items():
            path = cache_dir / f"features_{self.backbone}_{split}_{key[:16]}.npz"
            if cache and path.is_file():
                splits[split] = _read(path, len(source))
                continue
            if base is None:
                # NHWC: oneDNN's convolutions (depthwise ones most) run ~1.4x faster than in NCHW on the CPU
                base = load_backbone(self.backbone, self.weights).eval().to(memory_format=torch.channels_last)
            splits[split] = self._extract(base, images, source)
            if cache:
                _write(path, splits[split])
        return splits

    @torch.no_grad()
    def _extract(self, base, images, source) -> Split:
        from tqdm import tqdm

        feats, labels = [], []
        collate = getattr(images, "collate", None)
        for start in tqdm(range(0, len(source), self.extract_batch_size), desc=f"features ({self.backbone})",
                          unit="batch", leave=False):  # fmt: skip
            samples = [source[i] for i in range(start, min(start + self.extract_batch_size, len(source)))]
            x, y = collate(samples) if collate else torch.utils.data.default_collate(samples)
            fmap = base(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x)
            feats.append(fmap.mean((2, 3)) if self.pool == "avg" else fmap.flatten(1))
            labels.append(y)
        return torch.cat(feats), torch.cat(labels)


def _read(path: Path, n: int) -> Split:
    try:
        with np.load(path, allow_pickle=False) as data:
            x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    except (OSError, ValueError, KeyError) as err:
        raise DataMissingError(f"{path} is not a readable feature cache ({err}); delete it: it is rebuilt") from err
    if len(x) != n or len(y) != n:
        raise DataMissingError(f"{path} holds {len(x)} samples, not the split's {n}: delete it, it is rebuilt")
    return x, y


def _write(path: Path, split: Split) -> None:
    """Atomically: a reader never sees half a cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, x=split[0].numpy(), y=split[1].numpy())
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs the next run the extraction
