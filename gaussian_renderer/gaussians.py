"""What the renderer draws and from where: a pinhole ``Camera`` and a batched ``GaussianLayer``.

Everything is in camera space (OpenCV: x right, y down, z forward, camera at the origin), so the renderer
never needs a view matrix; the body places its head in camera space before rendering (DESIGN.md §3.2).
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F


@dataclasses.dataclass(frozen=True)
class Camera:
    """OpenCV pinhole intrinsics of a ``width`` x ``height`` image, camera at the origin looking down +z.

    A pixel ``(row i, column j)`` covers ``[j, j+1) x [i, i+1)`` and is sampled at its centre
    ``(j + 0.5, i + 0.5)``; a point ``(x, y, z)`` projects to ``(fx*x/z + cx, fy*y/z + cy)`` (gsplat's
    convention). Gaussians whose centre is closer than ``near_plane`` (metres) are culled.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    near_plane: float = 0.01

    def __post_init__(self):
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"Camera needs a positive image size, got {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"Camera needs positive focal lengths, got fx={self.fx}, fy={self.fy}")
        if not all(math.isfinite(v) for v in (self.fx, self.fy, self.cx, self.cy)):
            raise ValueError(f"Camera intrinsics must be finite, got {self}")

    @classmethod
    def from_meta(cls, meta: dict) -> "Camera":
        """Build from a subject's ``meta.json`` dict (``width``, ``height``, ``fx``, ``fy``, ``cx``, ``cy``)."""
        missing = [k for k in ("width", "height", "fx", "fy", "cx", "cy") if k not in meta]
        if missing:
            raise ValueError(f"camera metadata lacks {', '.join(missing)}")
        return cls(width=int(meta["width"]), height=int(meta["height"]), fx=float(meta["fx"]),
                   fy=float(meta["fy"]), cx=float(meta["cx"]), cy=float(meta["cy"]))

    def intrinsics(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """The 3x3 matrix ``K`` ``[3,3]``."""
        return torch.tensor([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]],
                            device=device, dtype=dtype)

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """Camera-space points ``[...,3]`` -> pixel coordinates ``[...,2]`` (no culling)."""
        z = points[..., 2]
        return torch.stack([self.fx * points[..., 0] / z + self.cx, self.fy * points[..., 1] / z + self.cy], -1)


@dataclasses.dataclass
class GaussianLayer:
    """One set of 3D Gaussians per batch element, in camera space. ``B`` frames, ``N`` Gaussians.

    means      [B,N,3]  centres (metres; x right, y down, z forward)
    quats      [B,N,4]  orientation as a quaternion ``(w, x, y, z)``; need not be normalised
    scales     [B,N,3]  standard deviations along the rotated axes (linear, not log)
    opacities  [B,N]    peak opacity in [0,1]
    colors     [B,N,3]  RGB in [0,1] (any channel count works; 3 is what ``render`` composites)
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor

    def __post_init__(self):
        if self.means.dim() != 3 or self.means.shape[-1] != 3:
            raise ValueError(f"GaussianLayer.means must be [B,N,3], got {tuple(self.means.shape)}")
        batch, count = self.means.shape[:2]
        expected = {"quats": (batch, count, 4), "scales": (batch, count, 3), "opacities": (batch, count)}
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"GaussianLayer.{name} must be {list(shape)} to match means "
                                 f"{list(self.means.shape)}, got {list(got)}")
        if self.colors.dim() != 3 or tuple(self.colors.shape[:2]) != (batch, count):
            raise ValueError(f"GaussianLayer.colors must be [B,N,C] with B,N = {batch},{count}, "
                             f"got {list(self.colors.shape)}")
        for name in ("quats", "scales", "opacities", "colors"):
            if getattr(self, name).device != self.means.device:
                raise ValueError(f"GaussianLayer.{name} is on {getattr(self, name).device}, "
                                 f"means on {self.means.device}")

    @property
    def batch_size(self) -> int:
        return self.means.shape[0]

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[1]


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(w,x,y,z)`` ``[...,4]`` (normalised here) -> rotation matrices ``[...,3,3]``."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, -1).reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``Sigma = R diag(s)^2 R^T`` ``[...,3,3]`` from quaternions ``[...,4]`` and scales ``[...,3]``."""
    rot_scale = quat_to_rotmat(quats) * scales[..., None, :]  # R @ diag(s)
    return rot_scale @ rot_scale.transpose(-1, -2)
