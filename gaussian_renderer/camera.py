"""Where the renderer draws from: a pinhole ``Camera`` at the origin of camera space.

Everything is in camera space (OpenCV: x right, y down, z forward, camera at the origin), so the renderer
never needs a view matrix; the body places its head in camera space before rendering (DESIGN.md §3.2).
"""
from __future__ import annotations

import dataclasses
import math

import torch


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
