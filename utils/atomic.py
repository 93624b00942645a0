"""Outputs appear complete or not at all.

Every file or directory the project writes (checkpoints, videos, processed data) is first written under a
temporary name beside its destination and renamed when complete, so an interrupted run or a refused input
never leaves a partial output that a later step would mistake for a finished one.

The temporary name says who writes it: ``out.tmp-<host>-<pid>-<token>.mp4``. An error or Ctrl-C deletes it
(and :func:`sigterm_as_interrupt` makes SIGTERM do the same); a writer killed outright (SIGKILL, power
loss) cannot, so every :func:`atomic_output` first removes the temporaries of its own destination whose
writer was on this host and is no longer running. A live writer's temporary is never touched, nor one
from another host (its process cannot be checked from here). A reused PID only makes a temporary look
alive, so the error is always on the side of keeping it.
"""
from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import shutil
import signal
import socket
import time
import uuid
from pathlib import Path

# Temporaries of the naming before <host>-<pid> (``out.tmp-1a2b3c4d.mp4``) name no writer: they are
# removed once nothing has touched them for this long.
LEGACY_TEMP_MAX_AGE_S = 3600.0


def _host_tag() -> str:
    """This machine's name reduced to ``[A-Za-z0-9_]`` (the temporary name splits on ``-`` and ``.``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def temporary_path(final: Path) -> Path:
    """``dir/stem.tmp-<host>-<pid>-<token><suffix>`` beside ``final`` (suffix kept for ffmpeg, imageio)."""
    return final.with_name(f"{final.stem}.tmp-{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{final.suffix}")


def _temporary_pattern(final: Path) -> re.Pattern:
    return re.compile(rf"{re.escape(final.stem)}\.tmp-(?:(?P<host>\w+)-(?P<pid>\d+)-)?[0-9a-f]{{8}}"
                      rf"{re.escape(final.suffix)}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of ``path`` left by dead writers on this host (see the module docstring).

    Returns what was removed. Called by :func:`atomic_output` before it creates its own temporary.
    """
    final = Path(path)
    if not final.parent.is_dir():
        return []
    pattern, host, removed = _temporary_pattern(final), _host_tag(), []
    for candidate in final.parent.glob(f"{glob.escape(final.stem)}.tmp-*"):
        match = pattern.fullmatch(candidate.name)
        if match is None:
            continue
        if match["pid"] is None:  # legacy name: judge by age
            with contextlib.suppress(FileNotFoundError):
                if time.time() - candidate.lstat().st_mtime > LEGACY_TEMP_MAX_AGE_S:
                    _remove(candidate)
                    removed.append(candidate)
            continue
        if match["host"] == host and not _process_alive(int(match["pid"])):
            _remove(candidate)
            removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, directory: bool = False):
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it.

    The temporary name keeps the suffix (``out.tmp-<host>-<pid>-1a2b3c4d.mp4``) so tools that infer a
    format from the extension (ffmpeg, imageio) still work. Stale temporaries of ``path`` (dead writers)
    are removed first. With ``directory=True`` an empty directory is created and an existing destination
    directory is replaced.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = temporary_path(final)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if directory and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised like Ctrl-C's ``KeyboardInterrupt`` so the same clean-up runs."""


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Inside the block, SIGTERM raises :class:`Terminated` in the main thread (the default handler would
    end the process at once and leave every temporary behind). Restores the previous handler on exit."""
    def raise_terminated(signum, frame):
        raise Terminated(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def save_npy(path: str | os.PathLike, array) -> None:
    """``np.save`` through :func:`atomic_output`."""
    import numpy as np

    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def save_json(path: str | os.PathLike, data) -> None:
    """Indented JSON through :func:`atomic_output`. NaN and infinities become ``null`` (JSON has neither)
    and numpy scalars plain numbers, so an undefined metric or a ``np.float32`` never makes the file unreadable."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(_plain(data), indent=2) + "\n")


def _plain(value):
    import numpy as np

    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
