"""Small rotation helpers (axis-angle, matrices, wxyz quaternions) — pytorch3d has no wheel for current Python.

All functions broadcast over leading dimensions and run on any device.
"""
from __future__ import annotations

import functools

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


def _hamilton_table() -> torch.Tensor:
    """``[16,4]``: row ``4*j + k`` holds the sign pattern with which ``left_j * right_k`` enters the product."""
    table = torch.zeros(4, 4, 4)
    # (output component, left component, right component, sign) of the Hamilton product, wxyz order.
    terms = [(0, 0, 0, 1), (0, 1, 1, -1), (0, 2, 2, -1), (0, 3, 3, -1),
             (1, 0, 1, 1), (1, 1, 0, 1), (1, 2, 3, 1), (1, 3, 2, -1),
             (2, 0, 2, 1), (2, 1, 3, -1), (2, 2, 0, 1), (2, 3, 1, 1),
             (3, 0, 3, 1), (3, 1, 2, 1), (3, 2, 1, -1), (3, 3, 0, 1)]
    for out, left, right, sign in terms:
        table[left, right, out] = sign
    return table.reshape(16, 4)


HAMILTON = _hamilton_table()


@functools.lru_cache(maxsize=None)
def _hamilton_on(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Copied once per device: a host-to-GPU copy on every call would stall the launch queue.
    return HAMILTON.to(device=device, dtype=dtype)


def quat_multiply(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Hamilton product of wxyz quaternions ``[...,4]`` (``left`` applied after ``right``).

    One outer product and one small matmul instead of sixteen elementwise products: fewer kernel launches
    when posing tens of thousands of Gaussians per frame.
    """
    left, right = torch.broadcast_tensors(left, right)
    outer = left.unsqueeze(-1) * right.unsqueeze(-2)  # [...,4,4]
    return outer.flatten(-2) @ _hamilton_on(outer.device, outer.dtype)
