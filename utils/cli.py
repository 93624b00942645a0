"""What every command line shares: one error rule and output checks made before any work (DESIGN.md §4).

    @cli_main("brain.sample")
    def main(argv: list[str] | None = None) -> int:
        parser = cli_parser("brain.sample", __doc__)
        ...
        args = parser.parse_args(argv)
        check_output_path("--out", args.out)   # refused now, not after an hour of sampling
        ...

A user or input error — any :class:`utils.errors.InputError` (the project's own error classes all derive
from it) or an ``OSError`` (a file that cannot be read or written) — prints one line
``<program>: error: <message>`` to stderr and exits 2, as argparse does for a bad flag. Anything else is a
bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Callable

from utils.errors import InputError, UsageError

USER_ERRORS = (InputError, OSError)
EXIT_USER_ERROR = 2


def error_line(program: str, exc: BaseException) -> str:
    """``<program>: error: <message>`` on one line (ffmpeg logs and the like span several)."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return f"{program}: error: {message}"


def cli_main(program: str) -> Callable:
    """Decorate a ``main(argv) -> int``: user errors become one line on stderr and exit code 2."""
    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapper(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except USER_ERRORS as exc:
                print(error_line(program, exc), file=sys.stderr)
                return EXIT_USER_ERROR
        return wrapper
    return decorate


def cli_parser(program: str, doc: str, *, epilog: bool = False) -> argparse.ArgumentParser:
    """The parser a CLI starts from: ``program`` as its name (argparse's own errors carry it too), the first
    paragraph of the module docstring ``doc`` as the description and, with ``epilog``, the whole docstring
    after the options."""
    return argparse.ArgumentParser(prog=program, description=doc.split("\n\n")[0], epilog=doc if epilog else None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def check_output_path(flag: str, path: str | os.PathLike, *, directory: bool = False) -> Path:
    """Refuse an output that cannot be written, before any work is done; return it as a ``Path``.

    Refused: a path below a regular file, a folder where a file is to be written (or a file where a
    folder is), and a location that is not writable. ``flag`` names the argument in the message.
    """
    path = Path(path)
    existing = next(parent for parent in path.parents if parent.exists() or parent == parent.parent)
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is a file, so nothing can be written below it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {existing} is not writable")
    if directory and path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; a folder is written here")
    if not directory and path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; a file is written here")
    return path
