"""`dlwp generate`: sample from a trained generative checkpoint, seeded: text from book 8.1's
character model, decoded latent points from 8.4's VAE, images from 8.5's GAN.

The checkpoint's own config rebuilds its data module (for the vocabulary and the corpus) and its
network; a checkpoint of a task that generates nothing is an error that says which tasks do.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dlwp import checkpoints
from dlwp.errors import ConfigError


def generate(cfg: DictConfig) -> dict[str, Any]:
    from dlwp.config import to_plain
    from dlwp.data.nietzsche import CharWindowsDataModule
    from dlwp.evaluate import load_model
    from dlwp.sampling import sample_text

    path = checkpoints.resolve(cfg.ckpt_path, Path(cfg.paths.runs_dir), task="", prefer="best")
    task_cfg, datamodule, module = load_model(path, paths=to_plain(cfg.paths, resolve=True))
    if hasattr(module.network, "decode"):
        return decode_points(cfg, module.network, path, task_cfg.task.name)
    if hasattr(module.network, "generator"):
        return draw_images(cfg, module, path, task_cfg.task.name)
    if not isinstance(datamodule, CharWindowsDataModule):
        raise ConfigError(f"{path} is a checkpoint of {task_cfg.task.name!r}, which generates nothing: `dlwp "
                          "generate` samples text from a character model (task=nietzsche_char_lstm), decodes "
                          "latent points of a VAE (task=mnist_vae) or draws images from a GAN "
                          "(task=cifar_frogs_dcgan)")  # fmt: skip
    if cfg.length < 0 or cfg.temperature < 0:
        raise ConfigError(f"length={cfg.length}, temperature={cfg.temperature}: both must be >= 0")
    datamodule.setup("fit")
    if cfg.seed_text is None:  # as the book: a window from a random place in the corpus (seeded)
        seed_codes = datamodule.seed_window(cfg.seed)
    else:
        seed_codes = datamodule.encode(cfg.seed_text)
        if len(seed_codes) < datamodule.maxlen:
            raise ConfigError(f"seed_text has {len(seed_codes)} characters; the model reads windows of "
                              f"{datamodule.maxlen}: give at least that many")  # fmt: skip
    seed_text = datamodule.decode(seed_codes)
    [text] = sample_text(module.network, seed_codes, cfg.length, [cfg.temperature], datamodule.chars,
                         datamodule.maxlen, seed=cfg.seed)  # fmt: skip
    print(seed_text + text)
    print(f"dlwp generate: {task_cfg.task.name} checkpoint {path}, temperature {cfg.temperature}, seed {cfg.seed}",
          file=sys.stderr)  # fmt: skip
    return {"seed_text": seed_text, "text": text}


def decode_points(cfg: DictConfig, network, path: Path, task: str) -> dict[str, Any]:
    """A VAE's decoder on `latent` points (or the book's 15 x 15 grid), as one picture in `out`."""
    from dlwp.task.vae import latent_points
    from dlwp.visualize.images import save_png, tile

    if cfg.latent is None:
        if network.latent_dim != 2:
            raise ConfigError(f"{task} has a {network.latent_dim}-D latent space: give the points, latent=[[...], ...]")
        points, columns = latent_points(15), 15
    else:
        points = given_points(cfg.latent, network.latent_dim)
        columns = len(points)
    out = Path(cfg.out) if cfg.out else Path.cwd() / "decoded.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    network.eval()
    save_png(tile(network.decode(points).cpu(), columns), out)
    print(f"dlwp generate: {task} checkpoint {path}: {len(points)} decoded points -> {out}", file=sys.stderr)
    return {"points": points.tolist(), "image": str(out)}


def draw_images(cfg: DictConfig, module, path: Path, task: str) -> dict[str, Any]:
    """A GAN generator's images for `images` latent points drawn with `seed` (or the `latent`
    points), shown as training shows them (`GANTask.generated_images`), as one picture in `out`."""
    import torch

    from dlwp.visualize.images import save_png, tile

    latent_dim = module.network.generator.latent_dim
    if cfg.latent is not None:
        points = given_points(cfg.latent, latent_dim)
    elif cfg.images < 1:
        raise ConfigError(f"images={cfg.images}: give at least 1")
    else:
        points = torch.randn(cfg.images, latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
    out = Path(cfg.out) if cfg.out else Path.cwd() / "generated.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    images = module.generated_images(points)
    save_png(tile(images, min(len(points), 8)), out)
    print(f"dlwp generate: {task} checkpoint {path}: {len(points)} images, seed {cfg.seed} -> {out}", file=sys.stderr)
    return {"images": images, "image": str(out)}


def given_points(latent: Any, dim: int):
    """`latent=[[...], ...]` as a [N, dim] tensor, or an error that shows the expected form."""
    import torch

    try:
        points = torch.tensor([[float(v) for v in p] for p in latent], dtype=torch.float32)
    except (TypeError, ValueError):
        points = torch.empty(0)
    if points.ndim != 2 or points.shape[1] != dim or len(points) == 0:
        example = "[[0,0],[1,-1]]" if dim == 2 else f"[[{dim} numbers], ...]"
        raise ConfigError(f"latent={list(latent)}: give points of {dim} numbers each, e.g. latent={example}")
    return points
