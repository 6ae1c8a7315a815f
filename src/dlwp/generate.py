"""`dlwp generate`: sample from a trained generative checkpoint (book 8.1's text model), seeded.

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
    if not isinstance(datamodule, CharWindowsDataModule):
        raise ConfigError(f"{path} is a checkpoint of {task_cfg.task.name!r}, which generates nothing: `dlwp "
                          "generate` samples text from a character model (task=nietzsche_char_lstm) or decodes "
                          "latent points of a VAE (task=mnist_vae)")  # fmt: skip
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
    import torch

    from dlwp.task.vae import latent_points
    from dlwp.visualize.images import save_png, tile

    if cfg.latent is None:
        if network.latent_dim != 2:
            raise ConfigError(f"{task} has a {network.latent_dim}-D latent space: give the points, latent=[[...], ...]")
        points, columns = latent_points(15), 15
    else:
        try:
            points = torch.tensor([[float(v) for v in p] for p in cfg.latent], dtype=torch.float32)
        except (TypeError, ValueError):
            points = torch.empty(0)
        if points.ndim != 2 or points.shape[1] != network.latent_dim:
            raise ConfigError(f"latent={list(cfg.latent)}: give points of {network.latent_dim} numbers each, "
                              "e.g. latent=[[0,0],[1,-1]]")  # fmt: skip
        columns = len(points)
    out = Path(cfg.out) if cfg.out else Path.cwd() / "decoded.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    network.eval()
    save_png(tile(network.decode(points).cpu(), columns), out)
    print(f"dlwp generate: {task} checkpoint {path}: {len(points)} decoded points -> {out}", file=sys.stderr)
    return {"points": points.tolist(), "image": str(out)}
