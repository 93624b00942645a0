"""Self-describing, safely loaded checkpoints (DESIGN.md §4).

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts — what
``torch.load(..., weights_only=True)`` accepts, so loading a file someone sent never unpickles code:

    {"kind": "brain" | "body", "format_version": 2, "config": {...}, "step": int, ...weights...}

``kind`` lets every entry point refuse the wrong file with a clear message (a body checkpoint passed as
the brain, or the reverse).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from utils.atomic import atomic_output
from utils.errors import InputError

FORMAT_VERSION = 2  # 2: the speaker-expression parameters and options are named speaker_exp (was visual/exp)


class CheckpointError(InputError):
    """A checkpoint file that is missing, unreadable, or of the wrong kind."""


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike, *, kind: str) -> None:
    """Write ``payload`` (plus ``kind`` and ``format_version``) to ``path`` atomically."""
    payload = {**payload, "kind": kind, "format_version": FORMAT_VERSION}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, *, kind: str, map_location="cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` and check that it is a ``kind`` checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"{path}: not a readable Diff-Listener checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or "kind" not in payload:
        raise CheckpointError(f"{path}: not a Diff-Listener checkpoint (no 'kind' entry)")
    if payload["kind"] != kind:
        raise CheckpointError(f"{path} is a {payload['kind']} checkpoint, but a {kind} checkpoint was expected")
    return payload
