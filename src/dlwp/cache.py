"""Where dlwp keeps what it can rebuild: `$DLWP_CACHE_DIR`, else `$XDG_CACHE_HOME/dlwp`, else
`~/.cache/dlwp` (file hashes, `dlwp.record`; compiled native loops, `dlwp.model.native_rnn`)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    if base := os.environ.get("DLWP_CACHE_DIR"):
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "dlwp"
