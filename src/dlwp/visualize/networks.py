"""What a visualisation looks into: a registered ImageNet backbone (whole network, classifier
included) or the network of a dlwp checkpoint, with the names its layers go by and the identity
of its weights for the run record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlwp.errors import CheckpointError, ConfigError
from dlwp.visualize import layers


@dataclass
class Inspected:
    network: nn.Module
    """The module whose `named_modules()` names are the layer names users type."""
    preprocess: Callable[[torch.Tensor], torch.Tensor]
    """RGB in [0, 1] -> what `network` expects."""
    identity: dict[str, Any]
    """For the run record: backbone or checkpoint, weights file and sha256."""
    aliases: dict[str, str] = field(default_factory=dict)
    presets: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] | None = None
    """(height, width) the network was trained at, for a checkpoint; None: any size."""
    classes: list[str] | None = None
    """Class names of its outputs, where known (ImageNet's 1,000 for the backbones)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.preprocess(x))

    def find(self, names: list[str]) -> dict[str, nn.Module]:
        return layers.find(self.network, names, self.aliases)

    def preset(self, what: str) -> Any:
        if what not in self.presets:
            raise ConfigError(f"{self.identity.get('backbone') or 'this network'} has no default layers for {what}: "
                              f"give them (valid layers: {layers.valid(self.network, self.aliases)})")  # fmt: skip
        return self.presets[what]

    def to(self, device: torch.device) -> Inspected:
        self.network.to(device)
        return self


def open_backbone(name: str, weights: str | None = None, download: bool = True) -> Inspected:
    """A registered backbone's whole ImageNet network, in eval mode, weights frozen."""
    from dlwp.model import backbones
    from dlwp.record import file_identities

    if name not in backbones.BACKBONES:
        raise ConfigError(f"backbone={name!r} is not registered; known: {', '.join(backbones.BACKBONES)}")
    spec = backbones.BACKBONES[name]
    whole, path = backbones.build_with_weights(spec, weights, download, classifier=True)
    network = whole
    for part in filter(None, spec.root.split(".")):
        network = getattr(network, part)
    identity: dict[str, Any] = {"backbone": name}
    if path is not None:
        identity.update(weights=str(path), sha256=file_identities([path])[0]["sha256"])
    return Inspected(_frozen(network), spec.preprocess, identity, dict(spec.aliases), dict(spec.presets),
                     classes=imagenet_classes())  # fmt: skip


def open_checkpoint(spec: str, runs_dir: Path) -> Inspected:
    """The network a dlwp run trained (its best checkpoint), if it is an image network."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from dlwp import checkpoints
    from dlwp.record import sha256_file

    path = checkpoints.resolve(spec, runs_dir, task="", prefer="best")
    ckpt = checkpoints.load(path)
    config = ckpt["dlwp"]["config"]
    task, model = config.get("task", {}).get("name", "?"), config.get("model", {})
    shape = model.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and shape[0] in (1, 3)):
        raise CheckpointError(
            f"{path} is a checkpoint of task {task!r}, whose network does not take images "
            f"(model.input_shape={shape}): visualize needs an image task such as cats_dogs_augmented"
        )
    network = instantiate(OmegaConf.create(model))
    network.load_state_dict({k.removeprefix("network."): v for k, v in ckpt["state_dict"].items()
                             if k.startswith("network.")})  # fmt: skip
    presets = {"activations": default_activation_layers(network)}
    identity = {"checkpoint": str(path), "sha256": sha256_file(path), "task": task}
    grey = shape[0] == 1
    return Inspected(_frozen(network), _to_grey if grey else _identity, identity, presets=presets,
                     input_size=(shape[1], shape[2]))  # fmt: skip


def default_activation_layers(network: nn.Module, count: int = 8) -> list[str]:
    """Book 5.4: the first 8 layers' outputs; Keras' Conv2D includes its activation, so here the
    activations and poolings (the outputs the book's layers had)."""
    kinds = (nn.ReLU, nn.ReLU6, nn.MaxPool2d, nn.AvgPool2d)
    convolutional = network.features if isinstance(getattr(network, "features", None), nn.Module) else network
    prefix = "features." if convolutional is not network else ""
    return [prefix + name for name, m in convolutional.named_modules() if isinstance(m, kinds)][:count]


def imagenet_classes() -> list[str]:
    """ImageNet-1k class names in the order of the classifiers' outputs (timm ships them)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(info.num_classes())]


def _frozen(network: nn.Module) -> nn.Module:
    layers.no_inplace(network)
    network.eval()
    for p in network.parameters():
        p.requires_grad_(False)
    return network


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _to_grey(x: torch.Tensor) -> torch.Tensor:
    return x.mean(1, keepdim=True) if x.shape[1] == 3 else x
