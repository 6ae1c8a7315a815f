"""The private APIs of Lightning and torchmetrics that dlwp's speed depends on, in one place.

For the book's small networks, framework bookkeeping costs as much as the step itself on a CPU
(docs/PERFORMANCE.md), so three shortcuts reach past public APIs:

- `counted_step`: an optimiser step taken on the raw torch optimiser, with Lightning's step
  counter (`trainer.global_step`) and profiler hooks kept (`LightningOptimizer._on_before_step` /
  `_on_after_step`), instead of `LightningOptimizer.step`, whose callback hooks cost ~0.3 ms.
- `fast_update`: a torchmetrics update without its wrapper (`_computed`, `_update_count`).
- `PLAIN_ATTRIBUTES`: module attributes Lightning sets ~40 times a step, written to `__dict__`.

And one for correctness: `epoch_to_serve` reads the fit loop's epoch counter, because Lightning
creates the training iterator of a resumed run before it moves to the epoch it resumes at.

They are used only with the versions they were checked on (`CHECKED`); any other version takes
the public paths (slower, same results), and `tests/test_compat.py` fails when an upstream
change breaks one of them within the checked versions.
"""

from __future__ import annotations

from importlib.metadata import version

CHECKED = {"lightning": ("2.4", "2.7"), "torchmetrics": ("1.4", "1.10")}
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
