"""Shared plumbing of the data-preparation commands: options dataclasses as flags, settings records, JSON."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from utils.atomic import atomic_output


def add_options(parser: argparse.ArgumentParser, options_class) -> None:
    """One ``--name value`` flag per field of the dataclass ``options_class``, typed by its default."""
    for item in dataclasses.fields(options_class):
        parser.add_argument(f"--{item.name}", type=type(item.default), default=item.default,
                            help=f"(default {item.default})")


def options_from_args(options_class, args: argparse.Namespace):
    return options_class(**{item.name: getattr(args, item.name) for item in dataclasses.fields(options_class)})


def write_json(path: str | Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")


def changed_settings(path: Path, settings: dict, *, ignore: tuple[str, ...] = ()) -> list[str]:
    """Keys whose value differs from the settings recorded at ``path`` by an earlier run ([] when none)."""
    if not path.is_file():
        return []
    previous = json.loads(path.read_text())
    return sorted(key for key in set(previous) | set(settings)
                  if key not in ignore and previous.get(key) != settings.get(key))
