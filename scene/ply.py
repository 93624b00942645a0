"""Gaussians to the standard 3DGS PLY layout that common splat viewers open (numpy only).

One binary little-endian ``vertex`` element with float32 properties, in this order:

    x y z  nx ny nz  f_dc_0 f_dc_1 f_dc_2  opacity  scale_0 scale_1 scale_2  rot_0 rot_1 rot_2 rot_3

``f_dc`` is the degree-0 spherical-harmonic coefficient (``rgb = 0.5 + C0 * f_dc``), ``opacity`` a logit,
``scale`` the log of the standard deviations and ``rot`` a wxyz quaternion; normals are written as zeros.
"""
from __future__ import annotations

import os

import numpy as np

from utils.atomic import atomic_output

SH_C0 = 0.28209479177387814  # the constant degree-0 spherical harmonic
PROPERTIES = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
              "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")


def write_gaussians_ply(path: str | os.PathLike, *, means, log_scales, quats, opacity_logits, colors) -> None:
    """Write ``N`` Gaussians: ``means [N,3]``, ``log_scales [N,3]``, ``quats [N,4]`` (wxyz),
    ``opacity_logits [N]``, ``colors [N,3]`` RGB in [0,1]. Arrays may be numpy or CPU torch tensors."""
    means = np.asarray(means, np.float32)
    count = len(means)
    columns = [means, np.zeros((count, 3), np.float32), (np.asarray(colors, np.float32) - 0.5) / SH_C0,
               np.asarray(opacity_logits, np.float32).reshape(count, 1), np.asarray(log_scales, np.float32),
               np.asarray(quats, np.float32)]
    table = np.concatenate(columns, axis=1)
    if table.shape != (count, len(PROPERTIES)):
        raise ValueError(f"Gaussian arrays do not line up: got a table of shape {table.shape}")
    header = "\n".join(["ply", "format binary_little_endian 1.0", f"element vertex {count}",
                        *(f"property float {name}" for name in PROPERTIES), "end_header"]) + "\n"
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(header.encode("ascii"))
            handle.write(table.astype("<f4").tobytes())
