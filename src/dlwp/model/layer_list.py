"""Networks declared as lists of `{type: ..., <arguments>}` (`SequenceNet`, `BlockNet`): one entry
checked against its builder, so an unknown type or argument fails at start-up naming the valid ones."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from dlwp.errors import ConfigError


def build_entry(spec: dict[str, Any], builders: dict[str, Callable], where: str, *context: Any) -> Any:
    """`builders[spec.type](*context, **arguments)`; `context` are the leading arguments the
    network passes itself (the incoming shape, say), which a config may not set."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in builders:
        raise ConfigError(f"{where}: type {kind!r} is not a layer; choose from {', '.join(builders)}")
    builder = builders[kind]
    params = list(inspect.signature(builder).parameters)[len(context) :]
    unknown = [k for k in spec if k not in params]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise ConfigError(f"{where}: {kind} has no argument {names}; it takes {', '.join(params)}")
    try:
        return builder(*context, **spec)
    except TypeError as err:  # a required argument left out
        raise ConfigError(f"{where}: {kind}: {err}") from err
