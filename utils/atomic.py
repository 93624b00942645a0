"""Outputs appear complete or not at all.

Every file or directory the project writes (checkpoints, videos, processed data) is first written under a
temporary name beside its destination and renamed when complete, so an interrupted run or a refused input
never leaves a partial output that a later step would mistake for a finished one.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, directory: bool = False):
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it.

    The temporary name keeps the suffix (``out.tmp-1a2b.mp4``) so tools that infer a format from the
    extension (ffmpeg, imageio) still work. With ``directory=True`` an empty directory is created and
    an existing destination directory is replaced.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.stem}.tmp-{uuid.uuid4().hex[:8]}{final.suffix}")
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if directory and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


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
