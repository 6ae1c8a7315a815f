"""Type-check `_target_` config nodes against the constructor they name.

The constructor's signature *is* the schema (as in LightningCLI): a network or data module declares
its options once, as typed `__init__` arguments, and a typo or a wrong type in its config fails at
start-up with the key's full name and the valid keys.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import importlib
import inspect
import types
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dlwp.errors import ConfigError


def locate(path: str) -> Any:
    """Import `pkg.module.Name`, with an error that names the bad path."""
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"_target_ '{path}' cannot be imported: {err}") from err


_SUPPORTED = (int, float, bool, str)


def _omegaconf_type(annotation: Any) -> Any:
    """Map a Python annotation to one OmegaConf can enforce; anything richer is left unchecked."""
    if annotation in _SUPPORTED or dataclasses.is_dataclass(annotation):
        return annotation  # a dataclass is a nested schema: its keys and types are checked too
    if typing.get_origin(annotation) is typing.Literal:
        return str if all(isinstance(a, str) for a in typing.get_args(annotation)) else Any
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and _omegaconf_type(inner[0]) is not Any:
            return _omegaconf_type(inner[0]) | None
        return Any
    if origin in (list, tuple, collections.abc.Sequence):
        inner = _omegaconf_type(args[0]) if args else Any
        return list[inner] if inner in _SUPPORTED or dataclasses.is_dataclass(inner) else list[Any]
    if origin in (dict, collections.abc.Mapping) and len(args) == 2 and args[0] is str:
        inner = _omegaconf_type(args[1])
        return dict[str, inner] if inner in _SUPPORTED or dataclasses.is_dataclass(inner) else dict[str, Any]
    return Any


def _init_params(cls: type) -> list[tuple[inspect.Parameter, Any]]:
    """`__init__` parameters with their annotations, following `**kwargs` up the class tree."""
    params: dict[str, tuple[inspect.Parameter, Any]] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        hints = typing.get_type_hints(init)
        forwards = False
        for name, param in inspect.signature(init).parameters.items():
            if param.kind is param.VAR_KEYWORD:
                forwards = True
            elif name != "self" and param.kind is not param.VAR_POSITIONAL:
                params.setdefault(name, (param, hints.get(name, Any)))
        if not forwards:
            break
    return list(params.values())


def _nested_dataclass(annotation: Any) -> type | None:
    """The dataclass of an `X` or `X | None` annotation, else None."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0] if dataclasses.is_dataclass(args[0]) else None
    return None


def signature_schema(cls: type, injected: tuple[str, ...] = ()) -> type:
    """A dataclass mirroring `cls.__init__`: same names, enforceable types, same defaults.

    `injected` arguments are passed by dlwp at build time (e.g. the run's `seed`), not configured.
    """
    fields = []
    for param, annotation in _init_params(cls):
        if param.name in injected:
            continue
        ftype = _omegaconf_type(annotation)
        nested = _nested_dataclass(annotation)
        if param.default is inspect.Parameter.empty:
            field = dataclasses.field(default="???")
        elif param.default is None and nested is not None:  # None: the nested schema's defaults
            field = dataclasses.field(default_factory=nested)
        elif isinstance(param.default, (list, dict, tuple)):
            default = list(param.default) if isinstance(param.default, tuple) else param.default
            field = dataclasses.field(default_factory=lambda d=default: d)
        else:
            field = dataclasses.field(default=param.default)
        fields.append((param.name, ftype, field))
    return dataclasses.make_dataclass(f"{cls.__name__}Config", fields)


def literal_violations(cls: type, node: DictConfig, key: str) -> list[str]:
    """OmegaConf cannot enforce `Literal[...]`; check those values here."""
    errors = []
    for param, annotation in _init_params(cls):
        if typing.get_origin(annotation) is typing.Literal and param.name in node:
            allowed = typing.get_args(annotation)
            if node[param.name] not in allowed:
                errors.append(f"'{key}.{param.name}' must be one of {list(allowed)}, got {node[param.name]!r}")
    return errors


def check_target(
    node: DictConfig, key: str, injected: tuple[str, ...] = (), also_valid: tuple[str, ...] = ()
) -> DictConfig:
    """Validate a `_target_` node; return it typed, with the constructor's defaults filled in.

    `also_valid`: keys of the node that are checked elsewhere (they are suggested for typos).
    """
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"'{key}' must be a mapping with a `_target_` naming a class")
    cls = locate(node._target_)
    schema = OmegaConf.structured(signature_schema(cls, injected))
    try:  # check the values as they will be used, with interpolations resolved in context
        given = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    except OmegaConfBaseException as err:
        raise ConfigError(f"'{key}': {str(err).splitlines()[0]}") from err
    del given["_target_"]
    unknown = [k for k in given if k not in schema.keys()]  # noqa: SIM118 (`in` skips ??? values)
    if unknown:
        valid = list(schema.keys()) + list(also_valid)
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), valid, n=1)
            hints.append(f"'{key}.{k}'" + (f" (did you mean '{key}.{close[0]}'?)" if close else ""))
        raise ConfigError(f"unknown key {', '.join(hints)} for {node._target_}; valid keys: {', '.join(valid)}")
    try:
        merged = OmegaConf.merge(schema, given)
    except OmegaConfBaseException as err:
        bad = getattr(err, "full_key", "") or ""
        raise ConfigError(f"'{key}.{bad}': {str(err).splitlines()[0]} (in {node._target_})") from err
    errors = literal_violations(cls, merged, key)
    if errors:
        raise ConfigError("; ".join(errors))
    missing = OmegaConf.missing_keys(merged)
    if missing:
        raise ConfigError(f"{node._target_} needs {', '.join(f'{key}.{m}' for m in sorted(missing))}")
    # Return the constructor's defaults filled in, but the user's values as written, so that
    # interpolations such as ${paths.data_dir} stay portable in the stored config.
    defaults = OmegaConf.create({"_target_": node._target_, **OmegaConf.to_container(merged)})
    return OmegaConf.merge(defaults, node)
