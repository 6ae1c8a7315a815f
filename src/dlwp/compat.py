"""The private APIs of Lightning, torchmetrics and Hydra that dlwp's speed depends on, in one place.

For the book's small networks, framework bookkeeping costs as much as the step itself on a CPU
(docs/PERFORMANCE.md), so three shortcuts reach past public APIs of Lightning and torchmetrics:

- `counted_step`: an optimiser step taken on the raw torch optimiser, with Lightning's step
  counter (`trainer.global_step`) and profiler hooks kept (`LightningOptimizer._on_before_step` /
  `_on_after_step`), instead of `LightningOptimizer.step`, whose callback hooks cost ~0.3 ms.
- `fast_update`: a torchmetrics update without its wrapper (`_computed`, `_update_count`).
- `PLAIN_ATTRIBUTES`: module attributes Lightning sets ~40 times a step, written to `__dict__`.

One spares every command a second composition of its config: `skip_hydra_mode_probe` (Hydra).

And one for correctness: `epoch_to_serve` reads the fit loop's epoch counter, because Lightning
creates the training iterator of a resumed run before it moves to the epoch it resumes at.

They are used only with the versions they were checked on (`CHECKED`); any other version takes
the public paths (slower, same results), and `tests/test_compat.py` fails when an upstream
change breaks one of them within the checked versions.
"""

from __future__ import annotations

import functools
import re
from importlib.metadata import version
from pathlib import Path

CHECKED = {"lightning": ("2.4", "2.7"), "torchmetrics": ("1.4", "1.10"), "hydra-core": ("1.3", "1.4")}
"""[first, stop) release ranges each shortcut was checked on."""
PLAIN_ATTRIBUTES = frozenset({"_current_fx_name"})


def _release(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def checked(package: str) -> bool:
    low, high = CHECKED[package]
    try:
        return _release(low) <= _release(version(package)) < _release(high)
    except Exception:
        return False


LIGHTNING_OK = checked("lightning")
TORCHMETRICS_OK = checked("torchmetrics")
HYDRA_OK = checked("hydra-core")


def counted_step(lightning_optimizer, step) -> None:
    """`step()` (the raw optimiser's), counted by Lightning as `lightning_optimizer.step()` is."""
    lightning_optimizer._on_before_step()
    step()
    lightning_optimizer._on_after_step()


def fast_update(metric, *args) -> None:
    """`metric.update(*args)` for dlwp's `LeanMetric`s, without torchmetrics' update wrapper."""
    if not TORCHMETRICS_OK:
        metric.update(*args)
        return
    state = metric.__dict__
    state["_computed"] = None
    state["_update_count"] += 1
    metric.accumulate(*args)


def epoch_to_serve(trainer) -> int:
    """The training epoch a data iterator created now will serve.

    Not `trainer.current_epoch`: resuming from a checkpoint saved at the end of epoch k, Lightning
    creates the training iterator (and a `DataLoader`'s worker processes start reading it) while
    `current_epoch` still says k, then moves to k + 1 without a new iterator. The fit loop's
    `processed` count already includes epoch k. Other Lightning versions: `current_epoch` (exact
    except for a resumed run with worker processes).
    """
    if LIGHTNING_OK:
        return int(trainer.fit_loop.epoch_progress.current.processed)
    return int(trainer.current_epoch)


HYDRA_MODE_SETTING = re.compile(r"\bMULTIRUN\b|\bmode\s*:\s*['\"]?RUN\b")
"""What a config file that sets `hydra.mode` holds (`mode: MULTIRUN`, `mode: RUN`)."""
CONFIG_SOURCES = ("hydra.mode", "hydra.searchpath", "-cd", "--config-dir", "-cp", "--config-path")
"""Command-line arguments that set `hydra.mode` or add config files that were not scanned."""


def skip_hydra_mode_probe(config_dirs: list[Path], arguments: list[str]) -> bool:
    """Spare every `dlwp` command Hydra's second composition of the whole config.

    Hydra 1.3 composes the config once (`Hydra.get_mode`) only to read `hydra.mode`, then again
    to run; each composition of dlwp's config costs ~0.35 s of CPU here. `hydra.mode` is
    null (Hydra's own default) unless a config file or an override sets it, so when no YAML file
    of `config_dirs` (every folder Hydra searches) and no command-line argument can set it, the
    probe's answer is None and is returned without composing. Otherwise, and with another Hydra
    version, Hydra's probe runs. Returns whether the shortcut is in place.
    """
    from hydra._internal.hydra import Hydra

    probe = getattr(Hydra.get_mode, "__wrapped__", Hydra.get_mode)
    may_set = any(arg.lstrip("+~").startswith(CONFIG_SOURCES) for arg in arguments)
    if not HYDRA_OK or may_set or _files_set_hydra_mode(config_dirs):
        Hydra.get_mode = probe
        return False

    @functools.wraps(probe)
    def get_mode(self, config_name, overrides):
        return None  # what the probe would compose: no source of hydra.mode exists

    Hydra.get_mode = get_mode
    return True


def _files_set_hydra_mode(config_dirs: list[Path]) -> bool:
    return any(
        HYDRA_MODE_SETTING.search(path.read_text(errors="replace"))
        for folder in config_dirs
        for path in Path(folder).rglob("*.yaml")
    )
