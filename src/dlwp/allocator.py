"""Keep freed memory in malloc's heap, so that a CPU training step does not page-fault afresh.

Why: torch allocates every activation and gradient of a training step anew and frees it at the
end of the step. glibc serves blocks above its mmap threshold (adaptive, 128 KB to 32 MB) with a
fresh `mmap` and unmaps them on `free`, so each step writes fresh pages and pays a page fault for
every 4 KB of them: 75,000-85,000 faults per cats_dogs_scratch step at batch 20, a third of the
step on the 2-core VMs measured (`bench/allocator.py`, docs/PERFORMANCE.md). With `mmap` off for
malloc and no trimming, every block comes from the heap, freed blocks stay there, and the next
step reuses them, already mapped (torch's 64-byte-aligned blocks wander through fresh heap for a
few steps before they settle: tests/test_allocator.py). It is a `mallopt` call in the training process (forked loader
workers inherit it); the cost is that the process keeps its peak heap until it exits.
`trainer.keep_freed_memory=false` turns it off; the run record says which applied.
"""

from __future__ import annotations

import os
import sys
from typing import Any

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4  # glibc's malloc.h
_applied = False


def keep_freed_memory() -> bool:
    """Set glibc's malloc to serve every block from its heap and keep freed ones for reuse; False
    where there is no glibc (macOS, musl) or it refuses. Process-wide and irreversible, hence called once by the
    trainer builder, not by library code."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _applied = bool(mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, 1 << 30) and mallopt(M_TOP_PAD, 64 << 20))
    return _applied


def allocator_state() -> dict[str, Any]:
    """What the run record keeps about memory allocation."""
    return {"keep_freed_memory": _applied, "glibc_tunables": os.environ.get("GLIBC_TUNABLES")}
