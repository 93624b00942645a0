"""Gaussians to and from the standard 3DGS PLY layout that common splat viewers open (numpy only).

One binary little-endian ``vertex`` element with float32 properties, in this order:

    x y z  nx ny nz  f_dc_0 f_dc_1 f_dc_2  opacity  scale_0 scale_1 scale_2  rot_0 rot_1 rot_2 rot_3

``f_dc`` is the degree-0 spherical-harmonic coefficient (``rgb = 0.5 + C0 * f_dc``), ``opacity`` a logit,
``scale`` the log of the standard deviations and ``rot`` a wxyz quaternion; normals are written as zeros.
"""
from __future__ import annotations

import os

import numpy as np

from utils.atomic import atomic_output
from utils.errors import InputError

SH_C0 = 0.28209479177387814  # the constant degree-0 spherical harmonic
PROPERTIES = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
              "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")


class PlyError(InputError):
    """A PLY file that is not a Gaussian splat in the layout above."""


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


def read_gaussians_ply(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a file written by :func:`write_gaussians_ply` (or any 3DGS PLY with these properties)."""
    with open(path, "rb") as handle:
        data = handle.read()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise PlyError(f"{path}: not a PLY file")
    header = data[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise PlyError(f"{path}: only binary little-endian PLY is supported")
    count = next((int(line.split()[2]) for line in header if line.startswith("element vertex")), None)
    names = [line.split()[2] for line in header if line.startswith("property float")]
    if count is None or any(line.startswith("property") and not line.startswith("property float")
                            for line in header):
        raise PlyError(f"{path}: expected one vertex element of float properties")
    missing = [name for name in PROPERTIES if name not in names]
    if missing:
        raise PlyError(f"{path}: missing Gaussian properties {', '.join(missing)}")
    body = data[end + len(b"end_header\n"):]
    if len(body) < count * len(names) * 4:
        raise PlyError(f"{path}: truncated ({len(body)} bytes for {count} vertices)")
    table = np.frombuffer(body, dtype="<f4", count=count * len(names)).reshape(count, len(names))
    column = {name: table[:, i] for i, name in enumerate(names)}

    def stack(*keys):
        return np.stack([column[k] for k in keys], axis=1).astype(np.float32)

    return {"means": stack("x", "y", "z"),
            "log_scales": stack("scale_0", "scale_1", "scale_2"),
            "quats": stack("rot_0", "rot_1", "rot_2", "rot_3"),
            "opacity_logits": column["opacity"].astype(np.float32),
            "colors": 0.5 + SH_C0 * stack("f_dc_0", "f_dc_1", "f_dc_2")}
