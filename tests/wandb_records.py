"""Read what W&B wrote offline: the records of a `run-*.wandb` file (LevelDB log format of protobufs).

wandb 0.31 ships no Python reader for these files, so tests decode them here to assert on what
was really logged (config, history, summary, run metadata), not on a mock.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B log"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block trailer padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            payload = chunk
        elif kind == FIRST:
            pending = chunk
            continue
        elif kind == MIDDLE:
            pending += chunk
            continue
        elif kind == LAST:
            payload, pending = pending + chunk, b""
        else:
            break
        record = pb.Record()
        record.ParseFromString(payload)
        yield record


def _items(items) -> dict:
    return {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}


def summarize(path: Path) -> dict:
    """{"run": {group, tags, name}, "config": {...}, "history": [{...}], "summary": {...}, "exit": code}."""
    out: dict = {"run": {}, "config": {}, "history": [], "summary": {}, "exit": None, "artifacts": []}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["run"] = {"group": rec.run.run_group, "tags": list(rec.run.tags), "name": rec.run.display_name}
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "history":
            out["history"].append(_items(rec.history.item))
        elif kind == "summary":
            out["summary"].update(_items(rec.summary.update))
        elif kind == "exit":
            out["exit"] = rec.exit.exit_code
        elif kind == "artifact":
            out["artifacts"].append(rec.artifact.type)
    return out
