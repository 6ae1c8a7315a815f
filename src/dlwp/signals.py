"""Stop signals end a run promptly and recorded: SIGTERM (a scheduler's preemption, `kill`) and
SIGINT (Ctrl-C).

Each raises in the main thread, as Python and Lightning expect (`SIGTERMException`,
`KeyboardInterrupt`). An exception raised at an unlucky moment can be swallowed (a library's
cleanup, a `__del__`, a callback's broad `except`), and the run would then train on as if
nothing had happened; `ReRaiseStopSignal` raises it again at the next batch, so a received
signal always ends the run.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

SIGNAL_NUMBERS = {"SIGINT": int(signal.SIGINT), "SIGTERM": int(signal.SIGTERM)}
_received: str | None = None


def received() -> str | None:
    """The stop signal this process received inside `stop_signals()`, if any."""
    return _received


def _raise_for(name: str) -> None:
    if name == "SIGTERM":
        raise SIGTERMException()
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise at once, also while the run is still starting (before Lightning's
    own SIGTERM handler exists) and during validation or testing, so the record always ends as
    `interrupted` and the process exits 143 or 130, never 0 or silently."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame) -> None:
        global _received
        _received = signal.Signals(signum).name
        _raise_for(_received)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    _received = None
    try:
        yield
    except SIGTERMException:  # before the run record existed
        print("dlwp train: interrupted by SIGTERM while starting; nothing to resume", file=sys.stderr)
        raise SystemExit(128 + SIGNAL_NUMBERS["SIGTERM"]) from None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _received = None


class ReRaiseStopSignal(Callback):
    """Raises a received stop signal again at the end of every batch: a no-op unless the first
    exception was swallowed and the run went on."""

    def _check(self, *args) -> None:
        if _received is not None:
            _raise_for(_received)

    on_train_batch_end = on_validation_batch_end = on_test_batch_end = on_predict_batch_end = _check
