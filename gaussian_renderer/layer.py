"""What the renderer draws: a batched ``GaussianLayer`` in camera space, and its covariance math."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F


@dataclasses.dataclass
class GaussianLayer:
    """One set of 3D Gaussians per batch element, in camera space. ``B`` frames, ``N`` Gaussians.

    means      [B,N,3]  centres (metres; x right, y down, z forward)
    quats      [B,N,4]  orientation as a quaternion ``(w, x, y, z)``; need not be normalised
    scales     [B,N,3]  standard deviations along the rotated axes (linear, not log)
    opacities  [B,N]    peak opacity in [0,1]
    colors     [B,N,3]  RGB in [0,1] (any channel count works; 3 is what ``render_layers`` composites)
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
