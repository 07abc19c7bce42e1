"""Typed configuration: dataclasses built from nested dicts, with dotted CLI overrides.

Unknown keys are errors (a typo must never be silently ignored); values are parsed as YAML
scalars so ``--set finetune.lr=5e-5`` gives a float and ``--set model.norm_first=false`` a bool.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

import yaml

from mirformer.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict | None, *, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, recursing into dataclass-typed fields."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(where + k for k in unknown)}; known: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        nested = [t for t in options if dataclasses.is_dataclass(t)]  # ``X`` or ``X | None``
        if nested and isinstance(value, dict):
            value = from_dict(nested[0], value, where=f"{where}{name}.")
        else:
            value = _coerce(hint, value, where + name)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad config for {where or cls.__name__}: {exc}") from None


def _coerce(hint, value, key: str):
    """Check a scalar against its annotation; ints pass as floats, numeric strings as numbers."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    scalars = [t for t in options if t in (bool, int, float, str)]
    if not scalars or any(type(value) is t for t in scalars):
        return value
    if not isinstance(value, bool):  # "1e-4" is a string to YAML 1.1; 3 is a valid float
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is not None and float in scalars:
            return number
        if number is not None and int in scalars and number.is_integer():
            return int(number)
        if str in scalars and isinstance(value, (int, float)):  # precision=16, ref=1.0
            return str(value)
    raise ConfigError(f"config key {key} must be {' or '.join(t.__name__ for t in scalars)}, got {value!r}")


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def merge(base: dict, diff: dict) -> dict:
    """Recursively merge ``diff`` into a copy of ``base`` (presets are diffs of a base)."""
    out = dict(base)
    for k, v in diff.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_overrides(items: list[str]) -> dict:
    """``["a.b=3", "c=x"]`` -> ``{"a": {"b": 3}, "c": "x"}``."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return out


def sections(node, cls: type, path: str = ""):
    """Every ``cls`` instance in a dataclass tree, with its dotted path (``("patchifier.mel", MelConfig(...))``)."""
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        key = f"{path}{f.name}"
        if isinstance(value, cls):
            yield key, value
        elif dataclasses.is_dataclass(value):
            yield from sections(value, cls, f"{key}.")


def touched(overrides: dict, path: str) -> bool:
    """Whether a diff of nested dicts sets anything at or below the dotted ``path``."""
    node = overrides
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
