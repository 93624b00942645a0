"""Small rotation helpers (axis-angle, matrices, wxyz quaternions) — pytorch3d has no wheel for current Python.

All functions broadcast over leading dimensions and run on any device.
"""
from __future__ import annotations

import torch

_EPS = 1e-8


def axis_angle_split(axis_angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[...,3]`` axis-angle -> unit axis ``[...,3]`` and angle ``[...,1]`` (any axis when the angle is 0)."""
    angle = axis_angle.norm(dim=-1, keepdim=True)
    axis = axis_angle / angle.clamp_min(_EPS)
    return axis, angle


def rotate_about_axis(points: torch.Tensor, axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: rotate ``points [...,3]`` by ``angle [...,1]`` about unit ``axis [...,3]``.

    Written without matrices so a per-point angle (the neck blend) costs a few multiply-adds per point.
    """
    cross = torch.cross(axis.expand_as(points), points, dim=-1)
    dot = (axis * points).sum(-1, keepdim=True)
    cos, sin = torch.cos(angle), torch.sin(angle)
    return points * cos + cross * sin + axis * dot * (1 - cos)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """``[...,3]`` -> ``[...,3,3]`` rotation matrices."""
    axis, angle = axis_angle_split(axis_angle)
    basis = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    basis = basis.expand(*axis_angle.shape[:-1], 3, 3)
    # Rotating the basis vectors gives the matrix's columns.
    columns = rotate_about_axis(basis.transpose(-1, -2), axis.unsqueeze(-2), angle.unsqueeze(-2))
    return columns.transpose(-1, -2)


def axis_angle_to_quat(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Unit ``axis [...,3]`` and ``angle [...,1]`` -> wxyz quaternion ``[...,4]``."""
    half = angle / 2
    return torch.cat([torch.cos(half), axis * torch.sin(half)], dim=-1)


def quat_multiply(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Hamilton product of wxyz quaternions ``[...,4]`` (``left`` applied after ``right``)."""
    lw, lx, ly, lz = left.unbind(-1)
    rw, rx, ry, rz = right.unbind(-1)
    return torch.stack([
        lw * rw - lx * rx - ly * ry - lz * rz,
        lw * rx + lx * rw + ly * rz - lz * ry,
        lw * ry - lx * rz + ly * rw + lz * rx,
        lw * rz + lx * ry - ly * rx + lz * rw,
    ], dim=-1)

