"""dlwp.allocator: freed blocks stay mapped, so a repeated step stops page-faulting (a subprocess:
the setting is process-wide and cannot be undone)."""

import json
import subprocess
import sys

import pytest

CHILD = r"""
import json, resource, sys
import torch
if sys.argv[1] == "keep":
    from dlwp.allocator import keep_freed_memory
    assert keep_freed_memory()
faults = []
for _ in range(14):  # one training-step-like cycle: a 64 MB activation, written, then freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(16 << 20)
    del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(faults))
"""


def faults_per_cycle(mode: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_stops_the_page_faults_of_repeated_allocations():
    default, kept = faults_per_cycle("default"), faults_per_cycle("keep")
    pages = (64 << 20) // 4096
    assert min(default[-3:]) > pages // 2  # glibc maps a fresh 64 MB block every time
    # torch's 64-byte-aligned blocks creep through fresh heap for ~9 cycles, then settle
    assert max(kept[-3:]) < pages // 100


def test_the_run_record_says_whether_freed_memory_is_kept(tmp_path):
    from dlwp.allocator import allocator_state, keep_freed_memory

    applied = keep_freed_memory()
    assert allocator_state()["keep_freed_memory"] is applied
    assert applied is sys.platform.startswith("linux")
