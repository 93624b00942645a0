"""Loading ``.npy`` files and checking per-frame arrays, for every reader of the contract folders.

    flame = check_array(load_npy(path, error=SubjectError), FLAME_DIM, str(path), error=SubjectError)

A refusal names the source and the offending numbers. ``error`` is the reader's own
:class:`utils.errors.InputError` subclass (``CorpusError``, ``SubjectError``, ``EmocaError``, ...), so each
reader reports the contract that was broken without catching and converting another's error.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from utils.errors import InputError


def load_npy(path: str | os.PathLike, source: str | None = None, *,
             error: type[InputError] = InputError) -> np.ndarray:
    """``np.load`` without pickles; a missing or unreadable file raises ``error`` naming ``source`` (default: the path)."""
    path = Path(path)
    source = source or str(path)
    which = "" if source == str(path) else f" {path}"
    if not path.is_file():
        raise error(f"{source}: missing file{which}")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for truncated or foreign files
        raise error(f"{source}: cannot read{which} ({type(exc).__name__}: {exc})") from exc


def check_array(array: np.ndarray, width: int, source: str, *, error: type[InputError] = InputError,
                integers: bool = False) -> np.ndarray:
    """Return ``array`` as float32 ``[T,width]``, or raise ``error`` naming ``source`` and the offending numbers.

    Refused: another rank or width, NaN/Inf, and a non-float dtype unless ``integers`` (e.g. EMOCA's face
    crop in whole pixels).
    """
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] != width:
        raise error(f"{source}: expected shape [T,{width}], got {list(array.shape)}")
    allowed = (np.floating, np.integer) if integers else (np.floating,)
    if not any(np.issubdtype(array.dtype, kind) for kind in allowed):
        kinds = "float or integer" if integers else "float"
        raise error(f"{source}: expected {kinds} values, got dtype {array.dtype}")
    finite = np.isfinite(array)
    if not finite.all():
        bad_rows = np.unique(np.nonzero(~finite)[0])
        raise error(f"{source}: {int((~finite).sum())} NaN/Inf values in {len(bad_rows)} frame(s), "
                    f"first at frame {int(bad_rows[0])}")
    return array.astype(np.float32, copy=False)
