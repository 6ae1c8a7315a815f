"""Wall time of the default test suite: the README's test command, as CI runs it.

    python bench/suite_time.py                                # prints the figure
    python bench/suite_time.py --write docs/PERFORMANCE.md    # also refreshes the generated line there

Prints one line; exits non-zero only when the suite itself fails, never on a slow result.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from markdown_block import write_block  # bench/markdown_block.py

ROOT = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "pytest", "-n", "2"]  # README.md, "Tests"; .ci/run runs the same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, default=None, help="refresh the generated line of this markdown file")
    args = parser.parse_args()
    t0 = time.perf_counter()
    proc = subprocess.run([*COMMAND, "-q", "--durations=6"], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    summary = next((line.strip("= ") for line in reversed(proc.stdout.splitlines()) if " in " in line), "?")
    counts = re.sub(r" in [\d.]+s.*", "", summary)
    slowest = [f"{m[4]} ({float(m[1]):.0f} s)" for line in proc.stdout.splitlines()
               if (m := re.match(r"\s*([\d.]+)s (call|setup|teardown)\s+(\S+::)?(\S+)", line)) and m[3]]  # fmt: skip
    line = (
        f"`python -m pytest -n 2` (the README's command): {counts} in {wall / 60:.1f} minutes on "
        f"{os.cpu_count()} cores (goal < 10 minutes; measured by `python bench/suite_time.py` on "
        f"{time.strftime('%Y-%m-%d')}). Slowest: {', '.join(slowest) or '?'}."
    )
    print(line)
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
        return proc.returncode
    if args.write:
        write_block(args.write, "suite", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
