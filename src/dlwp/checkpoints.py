"""Finding and safely reading checkpoints.

A checkpoint is read with `torch.load(weights_only=True)`: tensors and plain containers only, so
opening a checkpoint never executes pickled code. dlwp stores the run's config inside every
checkpoint (key `dlwp`), which is all that is needed to rebuild the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlwp.errors import CheckpointError

NAMES = ("last", "best")


def resolve(spec: str, runs_dir: Path, task: str, prefer: str = "last") -> Path:
    """A checkpoint file from a path, a run directory, or `last`/`best` (newest run of `task`)."""
    if spec in NAMES:
        candidates = sorted((runs_dir / task).glob(f"**/checkpoints/{spec}.ckpt"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise CheckpointError(
                f"ckpt_path={spec}: no run of task '{task}' under {runs_dir / task} has checkpoints/{spec}.ckpt; "
                "pass the path of a checkpoint or a run directory instead"
            )
        return candidates[-1]
    path = Path(spec).expanduser()
    if path.is_dir():
        for name in (prefer, *NAMES):
            if (path / "checkpoints" / f"{name}.ckpt").is_file():
                return path / "checkpoints" / f"{name}.ckpt"
            if (path / f"{name}.ckpt").is_file():
                return path / f"{name}.ckpt"
        raise CheckpointError(f"ckpt_path={spec}: directory has no checkpoints/{prefer}.ckpt")
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={spec}: no such file or directory")
    return path


def load(path: Path) -> dict[str, Any]:
    """Read a dlwp checkpoint without unpickling code; errors say what is wrong with the file."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to parse means the file is not a usable checkpoint
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated, corrupt or unsafe): {first}") from err
    if not isinstance(ckpt, dict) or "dlwp" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a dlwp checkpoint (it has no stored run config)")
    return ckpt


def check_task(ckpt: dict[str, Any], path: Path, task: str) -> None:
    stored = ckpt["dlwp"]["config"]["task"]["name"]
    if stored != task:
        raise CheckpointError(f"{path} is a checkpoint of task '{stored}', not '{task}'")


def check_same_network(ckpt: dict[str, Any], path: Path, model: dict[str, Any]) -> None:
    """A resumed run must build the network its checkpoint was saved from: name each `model.*` key
    that differs, instead of torch's size-mismatch traceback."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:  # the stored config is unresolved (`${data.num_words}`): resolved within its own tree
        stored = OmegaConf.to_container(OmegaConf.create(ckpt["dlwp"]["config"]).model, resolve=True)
    except (OmegaConfBaseException, AttributeError):
        return  # an older or partial record: torch's own check of the weights' shapes still applies
    differing = sorted(_differences(stored, model, "model"))
    if differing:
        shown = "; ".join(f"{key}: checkpoint {old!r}, now {new!r}" for key, old, new in differing)
        raise CheckpointError(
            f"ckpt_path={path} was saved from another network ({shown}). Resume with the checkpoint's settings "
            "(its run's config.yaml), or start a new run from its weights with init_from=<that run>"
        )


def _differences(old: Any, new: Any, key: str) -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in _differences(old.get(k), new.get(k), f"{key}.{k}")]  # fmt: skip
    return [] if old == new else [(key, old, new)]


def init_from(module, spec: str, runs_dir: Path) -> dict[str, Any]:
    """Load the network weights of a checkpoint (or a run directory's best) into `module.network`:
    transfer, not resume (the optimiser, epoch and history start fresh). Weights are matched by
    name and shape, so a network with another head takes everything else; returns what was done,
    for the run record."""
    from dlwp.record import sha256_file

    if spec in NAMES:
        raise CheckpointError(f"init_from={spec}: give the path of a checkpoint or a run directory")
    path = resolve(spec, runs_dir, task="", prefer="best")
    ckpt = load(path)
    weights = {k.removeprefix("network."): v for k, v in ckpt["state_dict"].items() if k.startswith("network.")}
    own = module.network.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise CheckpointError(
            f"init_from={spec}: no weight of {path} fits this network (no parameter has the same name and shape)"
        )
    module.network.load_state_dict(fitting, strict=False)
    return {
        "path": str(path),
        "sha256": sha256_file(path),
        "task": ckpt["dlwp"]["config"].get("task", {}).get("name"),
        "loaded": len(fitting),
        "kept_initial": sorted(set(own) - set(fitting)),
        "ignored": sorted(set(weights) - set(fitting)),
    }
