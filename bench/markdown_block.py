"""The one way the benchmarks write their figures into the docs: a generated block between
`<!-- NAME:begin -->` and `<!-- NAME:end -->`, replaced whole, so docs never hold stale hand-typed
copies of a benchmark's output."""

from __future__ import annotations

import re
from pathlib import Path


def write_block(doc: Path, name: str, body: str) -> None:
    """Replace the text between the `name` markers of `doc` with `body` (the markers stay)."""
    text = doc.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.S)
    new, n = pattern.subn(lambda _: f"{begin}\n{body.rstrip()}\n{end}", text)
    if not n:
        raise SystemExit(f"{doc} has no {begin} ... {end} block to write into")
    doc.write_text(new)


def block_rows(doc: Path, name: str) -> dict[str, str]:
    """The table rows (`| key | ...`) of a generated block, by their first cell: what a benchmark
    run over some of its tasks keeps of the others."""
    text = doc.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text:
        return {}
    body = text.split(begin, 1)[1].split(end, 1)[0]
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells and cells[0] not in ("task", "") and not cells[0].startswith("---"):
            rows[cells[0]] = line
    return rows
