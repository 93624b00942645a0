"""Canonical Gaussian sets and their initialisation from one masked frame (no FLAME mesh needed).

A set is an ``nn.ParameterDict`` of per-Gaussian tensors in the layout gsplat's densification strategies
expect, so ``DefaultStrategy`` can clone, split and prune it directly:

    means      [N,3]  canonical head space, metres, head pivot at the origin (OpenCV axes: y down, z forward)
    scales     [N,3]  log of the standard deviations
    quats      [N,4]  wxyz, not necessarily normalised
    opacities  [N]    logit
    colors     [N,3]  logit of RGB in [0,1]
    jaw        [N]    logit of the Gaussian's share of the jaw rotation (0: skull, 1: jaw; see scene.body)

Initialisation (no FLAME meshes are available): pixels inside the first training frame's head+neck mask
are back-projected onto a surface of revolution about the vertical axis through the head pivot — each
mask row is a circular slice as wide as the row, centred at the pivot's depth, which is exact for a sphere
or a cylinder and close for a head and neck — and the far side of each slice gets a share of the points
too, so a turned head has something to show. Points are then taken into canonical space by undoing that
frame's rigid pose, and coloured from the frame. The inside-mouth set is two grey ellipsoids behind the
lips (FLAME-like head proportions), laid out like a mouth: one fixed to the skull (the upper teeth and the
cavity the opening lips uncover), one on the jaw (the lower teeth and the tongue) sitting above the lips'
seam, behind the upper lip, so that the jaw turns it down into the opening. Jaw shares start at 1 on the
lower lip and chin (below the lips' seam, in front, above the chin) and on the mouth's jaw part, 0
elsewhere, and are learned from there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from scene.rotation import axis_angle_split, rotate_about_axis

GAUSSIAN_KEYS = ("means", "scales", "quats", "opacities", "colors", "jaw")
MOUTH_COLOR = (0.5, 0.5, 0.5)  # mid-grey (colour logit 0): as quick to become white teeth as the dark cavity


@dataclass
class GaussianInitConfig:
    face_count: int = 20000  # initial Gaussians of the face/head/neck set
    mouth_count: int = 2000  # initial Gaussians inside the mouth
    back_fraction: float = 0.2  # share of face Gaussians placed on the far side of the head
    opacity: float = 0.3  # initial opacity: low, so overlapping neighbours do not smear edges at the start
    assumed_depth: float = 0.6  # metres: the pivot's depth when the subject has no translation.npy
    # The inside of the mouth, canonical metres (pivot at the top of the neck, y down, face towards -z), in two
    # ellipsoids. The skull's part — the upper teeth and the cavity that the opening lips uncover — spans from
    # the lips' seam down to where the lower lip goes at the widest jaw; the mouth deformation's box is centred
    # on it. The jaw's part — the lower teeth and the tongue — sits above the seam, behind the upper lip, where
    # the jaw rotation brings it down into the opening (as the lower teeth rise behind the upper lip at rest).
    mouth_center: list[float] = field(default_factory=lambda: [0.0, -0.005, -0.062])
    mouth_radii: list[float] = field(default_factory=lambda: [0.02, 0.013, 0.015])
    jaw_mouth_center: list[float] = field(default_factory=lambda: [0.0, -0.026, -0.068])
    jaw_mouth_radii: list[float] = field(default_factory=lambda: [0.02, 0.009, 0.01])
    jaw_mouth_fraction: float = 0.5  # share of mouth_count in the jaw's part
    # Where the jaw shares start at 1 (canonical metres): below the lips' seam, in front of jaw_front_z and
    # above the bottom of the chin.
    lip_seam_y: float = -0.015
    jaw_front_z: float = -0.03
    chin_y: float = 0.055


def inverse_sigmoid(value):
    value = torch.as_tensor(value, dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
    return torch.log(value / (1 - value))


def make_gaussian_set(means: torch.Tensor, colors: torch.Tensor, scale: float | torch.Tensor,
                      opacity: float, jaw_share: torch.Tensor | None = None) -> nn.ParameterDict:
    """Isotropic Gaussians at ``means [N,3]`` with ``colors [N,3]`` in [0,1], standard deviation ``scale``
    (metres: one for all, or ``[N,1]``) and ``jaw_share [N]`` in [0,1] (default: none of them on the jaw)."""
    count = means.shape[0]
    jaw_share = torch.zeros(count) if jaw_share is None else jaw_share
    log_scale = torch.log(torch.as_tensor(scale, dtype=torch.float32)).expand(count, 1).repeat(1, 3)
    quats = torch.zeros(count, 4)
    quats[:, 0] = 1
    return nn.ParameterDict({
        "means": nn.Parameter(means.float().contiguous()),
        "scales": nn.Parameter(log_scale.contiguous()),
        "quats": nn.Parameter(quats),
        "opacities": nn.Parameter(inverse_sigmoid(torch.full((count,), opacity))),
        "colors": nn.Parameter(inverse_sigmoid(colors.float()).contiguous()),
        "jaw": nn.Parameter(inverse_sigmoid(jaw_share.float()).contiguous()),
    })


def gaussian_set_from_tensors(tensors: dict[str, torch.Tensor]) -> nn.ParameterDict:
    """Rebuild a set from saved tensors (any N), checking that the keys and shapes agree."""
    missing = [key for key in GAUSSIAN_KEYS if key not in tensors]
    if missing:
        raise ValueError(f"Gaussian set lacks {', '.join(missing)}")
    count = tensors["means"].shape[0]
    for key in GAUSSIAN_KEYS:
        if tensors[key].shape[0] != count:
            raise ValueError(f"Gaussian set: {key} has {tensors[key].shape[0]} rows, means has {count}")
    return nn.ParameterDict({key: nn.Parameter(tensors[key].float().clone()) for key in GAUSSIAN_KEYS})


def initial_jaw_share(cfg: GaussianInitConfig, means: torch.Tensor) -> torch.Tensor:
    """``[N,3]`` canonical means -> ``[N]`` in [0,1]: ~1 on the lower lip and chin, ~0 elsewhere (smooth)."""
    x, y, z = means.unbind(-1)
    return (torch.sigmoid((y - cfg.lip_seam_y) / 0.003) * torch.sigmoid((cfg.jaw_front_z - z) / 0.01)
            * torch.sigmoid((cfg.chin_y - y) / 0.008))


def backproject(u: np.ndarray, v: np.ndarray, depth: np.ndarray, intrinsics: dict[str, float]) -> np.ndarray:
    """Pixel centres ``(u, v)`` at camera-space ``depth`` -> points ``[N,3]`` (OpenCV pinhole at the origin)."""
    x = (u - intrinsics["cx"]) / intrinsics["fx"] * depth
    y = (v - intrinsics["cy"]) / intrinsics["fy"] * depth
    return np.stack([x, y, depth], axis=-1)


def to_canonical(points: np.ndarray, global_rot: np.ndarray, translation: np.ndarray) -> torch.Tensor:
    """Undo a frame's rigid pose: ``R^T (p - t)`` for camera-space ``points [N,3]``."""
    axis, angle = axis_angle_split(torch.as_tensor(global_rot, dtype=torch.float32))
    centred = torch.as_tensor(points - translation, dtype=torch.float32)
    return rotate_about_axis(centred, axis, -angle)


def init_face_set(cfg: GaussianInitConfig, frame: np.ndarray, mask: np.ndarray, intrinsics: dict[str, float],
                  global_rot: np.ndarray, translation: np.ndarray, rng: np.random.Generator) -> nn.ParameterDict:
    """Back-project masked pixels onto a surface of revolution about the vertical axis through the pivot.

    Each mask row is read as a horizontal slice of the head or neck: a circle whose diameter is the row's
    masked width, centred at the pivot's depth (exact for a sphere or a cylinder, close for a head). A
    share ``back_fraction`` of the points goes on the far side. Colours come from ``frame``.
    """
    rows, cols = np.nonzero(mask > 127)
    if len(rows) == 0:
        raise ValueError("the initialisation frame's mask is empty")
    left = np.full(mask.shape[0], np.inf)
    right = np.full(mask.shape[0], -np.inf)
    np.minimum.at(left, rows, cols)
    np.maximum.at(right, rows, cols + 1)
    pick = rng.integers(0, len(rows), cfg.face_count)
    row, col = rows[pick], cols[pick]
    u = col + rng.random(cfg.face_count)  # jitter inside the pixel
    v = row + rng.random(cfg.face_count)
    colors = torch.as_tensor(frame[row, col] / 255.0, dtype=torch.float32)
    centre = (left[row] + right[row]) / 2
    half_width = np.maximum((right[row] - left[row]) / 2, 0.5)  # pixels
    across = np.clip((u - centre) / half_width, -1, 1)
    pivot_depth = float(translation[2])
    radius = half_width / intrinsics["fx"] * pivot_depth  # metres
    side = np.where(rng.random(cfg.face_count) < cfg.back_fraction, 1.0, -1.0)  # -1: towards the camera
    depth = pivot_depth + side * radius * np.sqrt(1 - across ** 2)
    points = backproject(u, v, depth, intrinsics)
    # One Gaussian per ~(area / count) of mask: its radius roughly the spacing between neighbours.
    spacing = math.sqrt(len(rows) / cfg.face_count) / intrinsics["fx"] * pivot_depth
    means = to_canonical(points, global_rot, translation)
    return make_gaussian_set(means, colors, max(spacing, 1e-4), cfg.opacity, initial_jaw_share(cfg, means))


def ellipsoid_points(center: list[float], radii: list[float], count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` points ``[count,3]`` uniformly inside the axis-aligned ellipsoid."""
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True) + 1e-9
    return np.asarray(center) + directions * np.asarray(radii) * rng.random((count, 1)) ** (1 / 3)


def init_mouth_set(cfg: GaussianInitConfig, rng: np.random.Generator) -> nn.ParameterDict:
    """``cfg.mouth_count`` grey Gaussians (canonical space): the skull's part at ``cfg.mouth_center`` (jaw share
    0), then ``jaw_mouth_fraction`` of them, the jaw's part, at ``cfg.jaw_mouth_center`` (jaw share 1)."""
    jaw_count = int(round(cfg.mouth_count * cfg.jaw_mouth_fraction))
    parts = [(cfg.mouth_center, cfg.mouth_radii, cfg.mouth_count - jaw_count, 0.0),
             (cfg.jaw_mouth_center, cfg.jaw_mouth_radii, jaw_count, 1.0)]
    points = np.concatenate([ellipsoid_points(center, radii, count, rng) for center, radii, count, _ in parts])
    # Each part's Gaussians about as wide as their spacing: [mouth_count,1] standard deviations in metres.
    scale = torch.cat([torch.full((count, 1), float(np.mean(radii)) / max(1.0, count ** (1 / 3)))
                       for _, radii, count, _ in parts])
    jaw_share = torch.cat([torch.full((count,), share) for *_, count, share in parts])
    colors = torch.tensor(MOUTH_COLOR).expand(cfg.mouth_count, 3)
    return make_gaussian_set(torch.as_tensor(points, dtype=torch.float32), colors, scale, cfg.opacity, jaw_share)
