"""A visualisation's run: directory, record, pictures, loss curves, W&B.

These procedures optimise or inspect images, not weights, so they are not training runs, but
they are traceable like one: `run.json` holds the git state, packages, seed, resolved config,
the inputs' sha256, the network's weights identity and the measured numbers; `images/*.png`
are the pictures (logged to W&B with `logger=wandb`); `losses.csv` the per-step losses.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from dlwp.record import RunRecord, file_identities, write_atomic
from dlwp.redact import redact_tree
from dlwp.visualize import images


class Session:
    """Use as `with Session(cfg, "dream") as s:`; a failure is recorded, then raised."""

    def __init__(self, cfg: DictConfig, kind: str) -> None:
        from dlwp.config import to_plain
        from dlwp.train import output_dir

        self.cfg, self.kind = cfg, kind
        self.run_dir = output_dir(cfg, kind=kind)
        (self.run_dir / "images").mkdir(parents=True, exist_ok=True)
        redacted = redact_tree(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
        write_atomic(self.run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(redacted)))
        self.record = RunRecord(self.run_dir, kind, Path(cfg.paths.root))
        self.record.update(task=kind, seed=cfg.seed, config=to_plain(cfg, resolve=True))
        self.metrics: dict[str, Any] = {}
        self.loss_rows: list[dict[str, Any]] = []
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind, error, _tb) -> None:
        if error is None:
            self.finish()
        else:
            self.record.finish("failed", error)

    def inputs(self, **specs: str) -> dict[str, Any]:
        """Record each input image: its spec, file and sha256."""
        found = {name: images.resolve(spec) for name, spec in specs.items()}
        ids = file_identities(list(found.values()))
        data = {name: {"spec": specs[name], **ident} for name, ident in zip(found, ids, strict=True)}
        self.record.update(inputs=data)
        return data

    def network(self, identity: dict[str, Any]) -> None:
        self.record.update(network=identity)

    def image(self, name: str, picture: torch.Tensor | Any) -> Path:
        """Save `images/<name>.png` from an image tensor in [0, 1] or a matplotlib figure."""
        path = self.run_dir / "images" / f"{name}.png"
        if isinstance(picture, torch.Tensor):
            images.save_png(picture, path)
        else:
            picture.savefig(path, dpi=100, bbox_inches="tight")
            import matplotlib.pyplot as plt

            plt.close(picture)
        return path

    def loss(self, **row: Any) -> None:
        self.loss_rows.append(row)

    def finish(self) -> None:
        if self.loss_rows:
            keys = list(dict.fromkeys(k for row in self.loss_rows for k in row))
            with (self.run_dir / "losses.csv").open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=keys)
                writer.writeheader()
                writer.writerows(self.loss_rows)
        self.record.update(metrics=self.metrics, images=sorted(p.name for p in (self.run_dir / "images").glob("*.png")))
        self.record.finish("completed")
        if self.cfg.logger.wandb.enabled:
            from dlwp.logger.wandb import log_pictures

            self.record.update(wandb=log_pictures(self.cfg.logger.wandb, self.run_dir, self.kind, self.record.data))
        print(f"dlwp {self.kind}: {len(self.record.data['images'])} pictures in {self.run_dir / 'images'}; "
              f"record: {self.record.path}", file=sys.stderr)  # fmt: skip


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from dlwp.errors import ConfigError

        raise ConfigError(f"device={name}: no CUDA device here; use device=cpu or device=auto")
    return torch.device(name)


class Timer:
    """Seconds of a block, synchronising CUDA so GPU work is counted where it happens."""

    def __enter__(self) -> Timer:
        self._sync()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *_: Any) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self.start

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()


def progress(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr for long work (off with `progress=false`)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, file=sys.stderr)
