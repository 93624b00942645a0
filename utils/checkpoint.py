"""Self-describing, safely loaded checkpoints (DESIGN.md §4), and their slim copies for synthesis.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts — what
``torch.load(..., weights_only=True)`` accepts, so loading a file someone sent never unpickles code:

    {"kind": "brain" | "body", "format_version": 2, "config": {...}, "step": int, ...weights...}

``kind`` lets every entry point refuse the wrong file with a clear message (a body checkpoint passed as
the brain, or the reverse); ``format_version`` refuses a file whose entries this code would misread.

A training run's checkpoint also carries what only ``--resume`` needs (optimiser moments, densification
statistics), several times the size of the weights. ``export`` writes the copy synthesis needs:

    python -m utils.checkpoint export output/brain/checkpoint.pth brain_slim.pth
    python -m utils.checkpoint export output/body/body.pth body_slim.pth

It keeps the config, normaliser, step and weights — for the brain, the EMA weights (what sampling uses)
become ``model`` — and loads in ``ListenerPolicy.from_checkpoint`` / ``scene.body.load_body`` with
identical samples and renders. A slim checkpoint cannot be resumed from. ``export --half`` stores its
learned weights in fp16 (not the normaliser's statistics or the body's geometry): a transport copy of about half
the size (a lent GPU's results come back through a small pipe), loaded as usual — weights return to fp32 — with
samples and renders that differ by fp16 rounding.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

from utils.atomic import atomic_output
from utils.cli import check_output_path, cli_main, cli_parser
from utils.errors import InputError

FORMAT_VERSION = 2  # 2: the speaker-expression parameters and options are named speaker_exp (was visual/exp)

# Per kind: the entries only a resumed training run reads, dropped by export_slim.
TRAINING_ONLY_KEYS = {
    "brain": ("optimizer", "model"),  # the raw weights go too: sampling uses the EMA, stored as "model"
    "body": ("train_state",),  # optimisers, densification statistics, elapsed time
}
# Per kind: entries renamed by export_slim (what the deployed model is called in the slim copy).
DEPLOYED_RENAMES = {"brain": {"ema": "model"}, "body": {}}
# Per kind: the learned weights, what ``export --half`` stores in fp16 (statistics and geometry stay exact).
WEIGHT_KEYS = {"brain": ("model",), "body": ("gaussians", "deform", "mouth_deform")}


class CheckpointError(InputError):
    """A checkpoint file that is missing, unreadable, of the wrong kind or of another format version."""


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike, *, kind: str) -> None:
    """Write ``payload`` (plus ``kind`` and ``format_version``) to ``path`` atomically."""
    payload = {**payload, "kind": kind, "format_version": FORMAT_VERSION}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike, *, kind: str | None, map_location="cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; check that it is a ``kind`` checkpoint (any
    kind when None) of this code's ``FORMAT_VERSION``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"{path}: not a readable Diff-Listener checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or "kind" not in payload:
        raise CheckpointError(f"{path}: not a Diff-Listener checkpoint (no 'kind' entry)")
    if kind is not None and payload["kind"] != kind:
        raise CheckpointError(f"{path} is a {payload['kind']} checkpoint, but a {kind} checkpoint was expected")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format_version {version}, but this code reads format_version "
                              f"{FORMAT_VERSION}; re-train it, or load it with the code version that wrote it")
    return payload


def slim_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` without its training-only entries (:data:`TRAINING_ONLY_KEYS`) for its kind."""
    kind = payload["kind"]
    if kind not in TRAINING_ONLY_KEYS:
        raise CheckpointError(f"cannot export a {kind!r} checkpoint: known kinds are {', '.join(TRAINING_ONLY_KEYS)}")
    renames = DEPLOYED_RENAMES[kind]
    missing = sorted(set(renames) - set(payload))
    if missing:
        raise CheckpointError(f"this {kind} checkpoint has no {', '.join(missing)} entry to export")
    slim = {key: value for key, value in payload.items()
            if key not in TRAINING_ONLY_KEYS[kind] and key not in renames and key not in ("kind", "format_version")}
    slim.update({new: payload[old] for old, new in renames.items()})
    return slim


def half_precision(value: Any) -> Any:
    """``value`` (a tensor, or dicts of them: state dicts, a body's Gaussian sets) with its floating-point tensors
    in fp16."""
    if isinstance(value, dict):
        return {key: half_precision(item) for key, item in value.items()}
    return value.half() if isinstance(value, torch.Tensor) and value.is_floating_point() else value


def export_slim(source: str | os.PathLike, destination: str | os.PathLike, *, half: bool = False) -> dict[str, Any]:
    """Write ``destination``: the slim copy of checkpoint ``source`` (see the module docstring), its weights
    (:data:`WEIGHT_KEYS`) in fp16 with ``half``; returns it."""
    source, destination = Path(source), Path(destination)
    if destination.resolve() == source.resolve():
        raise CheckpointError(f"{destination}: is the input checkpoint; write the slim copy to another file")
    payload = load_checkpoint(source, kind=None)
    slim = slim_payload(payload)
    if half:
        slim.update({key: half_precision(slim[key]) for key in WEIGHT_KEYS[payload["kind"]] if key in slim})
    save_checkpoint(slim, destination, kind=payload["kind"])
    return {**slim, "kind": payload["kind"]}


@cli_main("utils.checkpoint")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("python -m utils.checkpoint", __doc__, epilog=True)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the slim copy of a checkpoint for synthesis")
    export.add_argument("checkpoint", help="a brain checkpoint.pth or a body body.pth")
    export.add_argument("out", help="the slim checkpoint to write")
    export.add_argument("--half", action="store_true", help="store the weights in fp16 (a transport copy)")
    args = parser.parse_args(argv)
    check_output_path("out", args.out)
    slim = export_slim(args.checkpoint, args.out, half=args.half)
    before, after = Path(args.checkpoint).stat().st_size, Path(args.out).stat().st_size
    print(f"wrote {args.out}: slim {slim['kind']} checkpoint of step {slim.get('step', '?')}, "
          f"{' in fp16' if args.half else ''}, {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
