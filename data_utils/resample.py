"""Resampling per-frame code sequences in time: frame-rate conversion and filling missing frames.

Codes are ``[T,D]`` arrays whose columns are either plain values (expression coefficients, camera) or
axis-angle rotations (FLAME global and jaw pose). Plain columns are interpolated linearly; rotation
columns, named by ``rotation_slices``, are interpolated on the rotation manifold (spherical linear
interpolation), which stays correct for large head turns where averaging axis-angle vectors does not.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp


def resampled_length(num_frames: int, src_fps: float, dst_fps: float) -> int:
    """Frames at ``dst_fps`` that fit in ``num_frames`` source frames: ``floor(num_frames * dst / src)``.

    Source frame ``i`` covers ``[i/src, (i+1)/src)``, so the clip lasts ``num_frames/src`` seconds and the
    output keeps every whole output frame of that duration (300 frames at 30 fps -> 250 at 25 fps).
    """
    return int(np.floor(num_frames * dst_fps / src_fps + 1e-6))


def interpolate_codes(codes: np.ndarray, known_times: np.ndarray, query_times: np.ndarray,
                      rotation_slices: tuple[slice, ...] = ()) -> np.ndarray:
    """Sample ``codes`` ``[K,D]`` given at increasing ``known_times`` ``[K]`` at ``query_times`` ``[Q]``.

    Queries outside the known range hold the nearest known frame (no extrapolation).
    """
    codes = np.asarray(codes, dtype=np.float64)
    known_times = np.asarray(known_times, dtype=np.float64)
    query = np.clip(np.asarray(query_times, dtype=np.float64), known_times[0], known_times[-1])
    out = np.empty((len(query), codes.shape[1]), dtype=np.float64)
    for column in range(codes.shape[1]):
        out[:, column] = np.interp(query, known_times, codes[:, column])
    if len(known_times) > 1:
        for rotation in rotation_slices:
            # [K,3] axis-angle -> rotations; slerp between the two known frames around each query.
            slerp = Slerp(known_times, Rotation.from_rotvec(codes[:, rotation]))
            out[:, rotation] = slerp(query).as_rotvec()
    return out.astype(np.float32)


def resample_codes(codes: np.ndarray, src_fps: float, dst_fps: float,
                   rotation_slices: tuple[slice, ...] = ()) -> np.ndarray:
    """``[T,D]`` at ``src_fps`` -> ``[resampled_length(T),D]`` at ``dst_fps``, sampled at ``k/dst_fps``."""
    codes = np.asarray(codes)
    if abs(src_fps - dst_fps) < 1e-9:
        return codes.astype(np.float32, copy=True)
    num_out = resampled_length(len(codes), src_fps, dst_fps)
    return interpolate_codes(codes, np.arange(len(codes)) / src_fps, np.arange(num_out) / dst_fps,
                             rotation_slices)


def fill_missing(codes: np.ndarray, present: np.ndarray, rotation_slices: tuple[slice, ...] = ()) -> np.ndarray:
    """Replace the rows of ``codes`` ``[T,D]`` where ``present`` ``[T]`` is False by interpolating the others.

    Leading and trailing missing rows copy the first/last present row. At least one row must be present.
    """
    present = np.asarray(present, dtype=bool)
    if not present.any():
        raise ValueError("cannot fill missing frames: no frame is present")
    frames = np.arange(len(codes))
    filled = np.asarray(codes, dtype=np.float32).copy()
    if present.all():
        return filled
    filled[~present] = interpolate_codes(filled[present], frames[present], frames[~present], rotation_slices)
    return filled


def missing_runs(present: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, length), ...]`` of the consecutive runs where ``present`` is False."""
    present = np.asarray(present, dtype=bool)
    padded = np.concatenate([[False], ~present, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.nonzero(edges == 1)[0]
    stops = np.nonzero(edges == -1)[0]
    return [(int(a), int(b - a)) for a, b in zip(starts, stops)]
