"""Credentials never leave the process: every file dlwp writes, and what it hands to W&B, is redacted.

Two kinds of secret are recognised: the value of a key whose name is a credential's (`api_key`,
`WANDB_TOKEN`, `password`, ...) and the password inside a URL (`postgresql://user:pw@host/db`, as
an Optuna storage). Redaction replaces the secret with `<redacted>`; a record or checkpoint with a
redacted value still reproduces (no run needs a credential to compute its result).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

REDACTED = "<redacted>"
SECRET_NAME = re.compile(
    r"(^|[_.\-])(api_?key|access_?key|private_?key|secret(_?key)?|token|password|passwd|pwd|credentials?|auth)$",
    re.IGNORECASE,
)
"""A key's last component (after the last `.`) that names a credential: `api_key`, `WANDB_TOKEN`, ..."""
URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*\\?://[^:/@\s\\]*\\?:)(?P<password>[^@/\s]+)(?=@)")
"""The password of `scheme://user:password@host`, also as Hydra writes an override's value
(`postgresql\\://user\\:password@host`)."""


def is_secret_key(key: str) -> bool:
    """Whether a config key or variable name (`+logger.api_key`, `hydra.job.env_set.TOKEN`) holds a credential."""
    return bool(SECRET_NAME.search(key.lstrip("+~").rsplit(".", 1)[-1]))


def redact_text(text: str) -> str:
    """URL passwords in free text replaced (`postgresql://user:<redacted>@host/db`)."""
    return URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)


def redact_argv(argv: Iterable[str]) -> list[str]:
    """A command line with credential-named `key=value` values and URL passwords hidden."""
    out = []
    for arg in argv:
        key, sep, _ = arg.partition("=")
        out.append(f"{key}={REDACTED}" if sep and is_secret_key(key) else redact_text(arg))
    return out


def redact_tree(value: Any, key: str = "") -> Any:
    """A copy of a plain config or record (dicts, lists, scalars) with its secrets replaced."""
    if isinstance(value, dict):
        return {k: redact_tree(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_tree(v, key) for v in value]
    if key and is_secret_key(key) and value is not None and not isinstance(value, (bool, dict, list)):
        return REDACTED
    if isinstance(value, str):  # also a recorded override, `+hydra.job.env_set.API_KEY=...`
        return redact_argv([value])[0]
    return value


def contains_secret(value: Any) -> bool:
    return redact_tree(value) != value


@contextlib.contextmanager
def redacted_sys_argv() -> Iterator[None]:
    """`sys.argv` redacted for the duration: libraries that record the command line (W&B's run
    metadata) see no credentials."""
    saved = list(sys.argv)
    sys.argv = [saved[0], *redact_argv(saved[1:])] if saved else saved
    try:
        yield
    finally:
        sys.argv = saved
