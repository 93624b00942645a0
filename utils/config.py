"""Typed configs: a dataclass per entry point, YAML presets, ``key=value`` overrides (DESIGN.md §4).

    cfg = load_config(BrainConfig, "configs/brain_tiny.yaml", ["train.max_steps=200", "model.width=64"])

    add_config_flags(parser, ProcessOptions)          # a flat options dataclass as --name value flags
    options = config_from_flags(ProcessOptions, parser.parse_args(argv))

Nested dataclasses map to nested YAML mappings. Override values are parsed as YAML scalars
(``1e-3``, ``true``, ``[1, 2]``) and coerced to the field's declared type; an unknown key or a value of
the wrong type is an error naming the key, never a silently ignored setting.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from utils.errors import InputError

T = TypeVar("T")


class ConfigError(InputError):
    """A preset or override that does not fit the config's fields."""


def config_to_dict(cfg) -> dict[str, Any]:
    """Dataclass -> plain nested dict (YAML/JSON/``torch.load(weights_only=True)`` safe)."""
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type[T], data: dict[str, Any] | None, *, where: str = "") -> T:
    """Nested dict -> dataclass ``cls``; missing fields keep their defaults, unknown ones are errors."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(where + k for k in unknown)} for {cls.__name__}; "
                          f"known: {', '.join(sorted(fields))}")
    values = {}
    for name, value in data.items():
        values[name] = _coerce(hints[name], value, where + name)
    return cls(**values)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Build ``cls`` from an optional YAML preset, then apply ``key=value`` overrides in order."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        data = loaded
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return config_from_dict(cls, data)


def add_config_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One ``--name value`` flag per field of the flat dataclass ``cls``; read with :func:`config_from_flags`."""
    for item in dataclasses.fields(cls):
        parser.add_argument(f"--{item.name}", default=None, metavar="VALUE", help=f"(default {item.default})")


def config_from_flags(cls: type[T], args: argparse.Namespace) -> T:
    """``cls`` from the flags of :func:`add_config_flags`: given values are read as YAML scalars and checked
    against the field's type like ``key=value`` overrides (``--flag false`` is False, ``--size 1.5`` an
    error); a text field takes the text as it is. Flags not given keep the dataclass defaults."""
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):
        raw = getattr(args, item.name)
        if raw is not None:
            value = raw if hints[item.name] is str else yaml.safe_load(raw)
            values[item.name] = _coerce(hints[item.name], value, f"--{item.name}")
    return cls(**values)


def changed_settings(path: str | Path, settings: dict[str, Any], *, ignore: tuple[str, ...] = ()) -> list[str]:
    """Keys whose value differs from the settings a run recorded at ``path`` as JSON ([] when there is none)."""
    path = Path(path)
    if not path.is_file():
        return []
    previous = json.loads(path.read_text())
    return sorted(key for key in set(previous) | set(settings)
                  if key not in ignore and previous.get(key) != settings.get(key))


def _coerce(annotation, value, key: str):
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} is a section ({annotation.__name__}); got {value!r}")
        return config_from_dict(annotation, value, where=key + ".")
    if origin in (typing.Union, types.UnionType):  # Optional[X] and X | None
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(non_none[0], value, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} expects a list, got {value!r}")
        item_type = args[0] if args else Any
        items = [_coerce(item_type, v, key) for v in value]
        return items if origin is list else tuple(items)
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} expects true/false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key} expects an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)  # YAML reads "1e-3" as a string
                except ValueError:
                    pass
            raise ConfigError(f"{key} expects a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} expects a string, got {value!r}")
        return value
    if typing.get_origin(annotation) is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {args}, got {value!r}")
        return value
    return value
