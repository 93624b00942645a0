"""A synthetic listener subject (DESIGN.md §3.2): a procedural head that FLAME vectors animate.

    python -m data_utils.synthetic_subject --out data/synthetic_subject --frames 300 --size 64 --seed 0
    python -m data_utils.synthetic_subject --out data/subject512 --frames 4500 --size 512 --device cuda

writes ``meta.json``, ``frames/*.png``, ``masks/*.png``, ``flame.npy [N,56]``, ``translation.npy [N,3]`` and
``background.png`` into a temporary folder renamed to ``--out`` when complete. Same arguments on the same
device, same bytes.

No real subject video with FLAME tracking can be downloaded here, so Stage 1 is trained, tested and
benchmarked on this head. It is ray cast analytically (never Gaussian splatted), so the synthetic world
stays independent of the model that learns it.

**The head** (canonical space: metres, OpenCV axes, origin at the head pivot at the top of the neck, the
face looking down -z towards the camera): ellipsoids for the cranium, the jaw/chin, the nose and the ears;
spheres for the eyes; skin, hair, brows, lips, mouth interior, teeth and tongue are procedural textures.
What the FLAME dimensions do follows :mod:`data_utils.synthetic_semantics`:

* ``JAW_OPEN`` rotates the jaw ellipsoid about a hinge below the ears; the lower lip and lower teeth move
  with it, opening a dark mouth with teeth and tongue (lips stay sealed below ~0.03 rad);
* ``SMILE`` pulls the mouth corners up and wider, raises the lower lids and reddens the cheeks;
* ``BROW_RAISE`` lifts the brows; ``EYE_CLOSE`` (0..1) lowers the upper lids;
* the 47 ``SUBTLE_EXP`` dims move six small shape parameters through a fixed projection (cheek width, mouth
  width and height, brow asymmetry, nose length, lip thickness);
* ``global_rot`` rotates the whole head rigidly about the pivot; frame ``i`` then places the pivot at
  ``translation[i]`` (camera space, ~0.55 m in front of the camera).

The neck, torso and wall do not rotate: ``background.png`` is the wall and torso without head and neck,
and each mask (0/255) covers head and neck. Images are supersampled (``--supersample``, default 2x2) so
edges are anti-aliased; masks keep pixels at least half covered.

**The motion** is a listener from the synthetic dyadic world (:mod:`data_utils.synthetic_dyadic`: nods,
mirrored smiles, brow raises, blinks, idle sway), widened so the body sees the whole range it will be
asked to render: talking-like jaw bursts up to 0.35 rad and slow head turns up to ±0.35 rad yaw.

From Python, :func:`render_subject` renders frames and masks for any FLAME array (ground truth for tests
and for checking what a generated listener looks like on this head).
"""
from __future__ import annotations

import sys
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data_utils import synthetic_semantics as sem
from data_utils.signals import smooth_noise
from data_utils.synthetic_dyadic import SyntheticWorld, synthesize_clip
from gaussian_renderer import Camera
from scene.rotation import axis_angle_to_matrix
from scene.subject import frame_name
from utils.atomic import atomic_output, save_json
from utils.cli import check_output_path, cli_main, cli_parser
from utils.errors import UsageError
from utils.flame import FLAME_DIM, FPS, GLOBAL_ROT
from utils.runtime import configure_threads, resolve_device

SHAPE_SEED = 7031  # the fixed projection of the subtle expression dims; every subject shares it
PIVOT = (0.0, 0.035, 0.55)  # mean head pivot in camera space (metres)
FOCAL_PER_PIXEL = 1.5  # fx = fy = 1.5 * size: the head fills ~60% of the frame height
LIGHT = (-0.45, -0.6, -1.0)  # towards the light, camera space: upper left, from the camera side
SUBTLE_PARAMS = ("cheek_width", "mouth_width", "mouth_height", "brow_asymmetry", "nose_length", "lip_thickness")

# Canonical geometry (metres, pivot at the origin, y down, face towards -z).
CRANIUM = ((0.0, -0.075, 0.005), (0.078, 0.1, 0.09))  # centre, radii
JAW = ((0.0, 0.005, -0.033), (0.042, 0.042, 0.05))
JAW_HINGE = (0.0, -0.055, 0.0)
NOSE = ((0.0, -0.058, -0.083), (0.011, 0.021, 0.016))
EARS = (((-0.079, -0.07, 0.012), (0.01, 0.026, 0.016)), ((0.079, -0.07, 0.012), (0.01, 0.026, 0.016)))
EYES = ((-0.033, -0.085, -0.066), (0.033, -0.085, -0.066))
EYE_RADIUS = 0.0125
MOUTH_Y = -0.017  # the lips' seam at rest
MOUTH_HALF_WIDTH = 0.024
LIP_SEAL = 0.0025  # the jaw must drop this far at the lips before the mouth opens
HEAD_BOUND = ((0.0, -0.06, 0.0), (0.1, 0.135, 0.115))  # centre, radii: holds all of the above at any pose
NECK_RADII = (0.058, 0.052)  # x, z of the static neck cylinder
TORSO = ((0.0, 0.145, 0.045), (0.22, 0.11, 0.12))  # relative to the mean pivot, camera axes

SKIN = (0.87, 0.68, 0.56)
HAIR = (0.22, 0.14, 0.09)
BROW = (0.25, 0.16, 0.11)
LIP = (0.72, 0.33, 0.33)
MOUTH_INSIDE = (0.22, 0.05, 0.06)
TEETH = (0.93, 0.91, 0.86)
TONGUE = (0.62, 0.22, 0.26)
SCLERA = (0.95, 0.95, 0.93)
IRIS = (0.28, 0.42, 0.55)
PUPIL = (0.04, 0.04, 0.05)
SHIRT = (0.24, 0.37, 0.58)
WALL = (0.78, 0.76, 0.71)

# Object labels of the ray caster; 0 is "nothing hit".
CRANIUM_ID, JAW_ID, NOSE_ID, EAR_LEFT_ID, EAR_RIGHT_ID, EYE_LEFT_ID, EYE_RIGHT_ID, NECK_ID = range(1, 9)


def subject_camera(size: int) -> Camera:
    """The square pinhole camera of a ``size`` x ``size`` synthetic subject."""
    focal = FOCAL_PER_PIXEL * size
    return Camera(width=size, height=size, fx=focal, fy=focal, cx=size / 2, cy=size / 2)


def subtle_projection() -> np.ndarray:
    """``[47, 6]``: subtle expression dims -> the six shape parameters of :data:`SUBTLE_PARAMS`."""
    rng = np.random.default_rng(SHAPE_SEED)
    count = sem.SUBTLE_EXP.stop - sem.SUBTLE_EXP.start
    return rng.standard_normal((count, len(SUBTLE_PARAMS))) * (2.0 / np.sqrt(count))


# --- motion ------------------------------------------------------------------------------------------

def synthetic_listener_motion(frames: int, seed: int) -> dict[str, np.ndarray]:
    """A smooth listener-like ``flame [frames,56]`` and ``translation [frames,3]``; same seed, same arrays."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    rng = np.random.default_rng([seed, 1])
    # The dyadic world scales its idle motion per clip, so it is drawn over at least a minute and cut.
    listener = synthesize_clip(SyntheticWorld(), max(frames, 60 * FPS), seed, clip_index=1)["listener"][:frames]
    listener = listener.astype(np.float64)

    smooth = partial(smooth_noise, rng, frames)  # smooth(sigma_s): low-pass noise [frames], unit std

    # Talking-like jaw bursts: a slow envelope gating a faster syllable rhythm.
    envelope = np.clip(smooth(1.5) - 0.4, 0, None)
    syllables = np.clip(smooth(0.2), 0, None)
    jaw = listener[:, sem.JAW_OPEN] + 0.12 * envelope * syllables
    # Soft limits (tanh) keep the motion smooth where it approaches the semantic ranges.
    jaw_max, yaw_max = sem.JAW_OPEN_RANGE_RAD[1], sem.YAW_RANGE_RAD[1]
    listener[:, sem.JAW_OPEN] = jaw_max * np.tanh(np.clip(jaw, 0, None) / jaw_max)
    listener[:, sem.HEAD_YAW] = yaw_max * np.tanh((listener[:, sem.HEAD_YAW] + 0.13 * smooth(3.0)) / yaw_max)
    listener[:, sem.SMILE] = np.clip(listener[:, sem.SMILE], *sem.SMILE_RANGE)
    listener[:, sem.BROW_RAISE] = np.clip(listener[:, sem.BROW_RAISE], *sem.BROW_RANGE)
    listener[:, sem.EYE_CLOSE] = np.clip(listener[:, sem.EYE_CLOSE], 0.0, 1.0)
    sway = np.stack([0.003 * smooth(3.0), 0.002 * smooth(3.0), 0.004 * smooth(4.0)], 1)
    return {"flame": listener.astype(np.float32), "translation": (np.asarray(PIVOT) + sway).astype(np.float32)}


# --- ray casting -------------------------------------------------------------------------------------

def _ellipsoid_hit(origin, direction, centre, radii):
    """Nearest positive ray parameter of each ray with an ellipsoid and the unit normal there.

    ``origin``/``direction`` broadcast to ``[...,3]``; ``centre``/``radii`` broadcast too. Returns
    ``t [...]`` (``inf`` where missed; with ``direction.z == 1`` it is camera depth) and ``normal [...,3]``.
    Dot products are written per component: reductions over a last axis of 3 are slow on CPU.
    """
    local_origin = (origin - centre) / radii
    local_direction = direction / radii
    ox, oy, oz = local_origin.unbind(-1)
    dx, dy, dz = local_direction.unbind(-1)
    a = dx * dx + dy * dy + dz * dz
    b = ox * dx + oy * dy + oz * dz
    c = ox * ox + oy * oy + oz * oz - 1.0
    discriminant = b * b - a * c
    t = (-b - torch.sqrt(discriminant.clamp(min=0))) / a
    t = torch.where((discriminant > 0) & (t > 0), t, torch.full_like(t, float("inf")))
    on_sphere = local_origin + torch.nan_to_num(t, posinf=0.0)[..., None] * local_direction
    normal = torch.nn.functional.normalize(on_sphere / radii, dim=-1)
    return t, normal


def _rotation_x(angle: torch.Tensor) -> torch.Tensor:
    """``[F]`` angles -> ``[F,3,3]`` rotations about the x axis (positive opens the jaw: chin down, back)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], -1).reshape(angle.shape + (3, 3))


def _mix(base: torch.Tensor, colour, where: torch.Tensor, amount: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Blend ``colour`` into ``base [...,3]`` where the boolean mask ``where [...]`` holds."""
    colour = torch.as_tensor(colour, dtype=base.dtype, device=base.device)
    weight = where.to(base.dtype) * amount
    return base + weight[..., None] * (colour - base)


class _Scene:
    """Pixel rays and everything static (wall, torso, neck) for one camera, supersampling and device."""

    def __init__(self, camera: Camera, supersample: int, device: torch.device):
        self.camera, self.supersample, self.device = camera, supersample, device
        height, width = camera.height * supersample, camera.width * supersample
        rows = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / supersample
        cols = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / supersample
        y, x = torch.meshgrid((rows - camera.cy) / camera.fy, (cols - camera.cx) / camera.fx, indexing="ij")
        self.directions = torch.stack([x, y, torch.ones_like(x)], -1).reshape(-1, 3)  # [P,3], z = 1
        self.light = torch.nn.functional.normalize(torch.tensor(LIGHT, device=device), dim=0)
        self.pivot = torch.tensor(PIVOT, device=device)
        self.neck_t, neck_normal = self._neck()
        self.neck_colour = self._shade(torch.tensor(SKIN, device=device).expand_as(neck_normal) * 0.9,
                                       neck_normal)  # [P,3]
        self.plate = self._plate()  # [P,3]

    def background(self) -> np.ndarray:
        """The plate at image resolution: uint8 ``[H,W,3]``, what ``background.png`` holds."""
        return _to_uint8(_downsample(self.plate[None], self.camera, self.supersample))[0]

    def _shade(self, albedo: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        return albedo * (0.45 + 0.55 * (normal * self.light).sum(-1, keepdim=True).clamp(min=0))

    def _neck(self):
        """The static neck: a vertical elliptic cylinder from under the head down into the torso."""
        centre = self.pivot + torch.tensor([0.0, 0.0, 0.015], device=self.device)
        radii = torch.tensor([NECK_RADII[0], 1.0, NECK_RADII[1]], device=self.device)
        flat = torch.tensor([1.0, 0.0, 1.0], device=self.device)
        t, normal = _ellipsoid_hit(torch.zeros(3, device=self.device), self.directions * flat, centre * flat, radii)
        y = t * self.directions[:, 1]
        inside = (y > self.pivot[1] - 0.02) & (y < self.pivot[1] + 0.25)
        return torch.where(inside, t, torch.full_like(t, float("inf"))), normal

    def _plate(self) -> torch.Tensor:
        """Wall and torso, no head or neck: what ``background.png`` holds."""
        camera = self.camera
        u = self.directions[:, 0] * camera.fx / camera.width + camera.cx / camera.width  # 0..1 across
        v = self.directions[:, 1] * camera.fy / camera.height + camera.cy / camera.height
        tiles = ((torch.floor(u * 5) + torch.floor(v * 5)) % 2) * 0.04
        wall = torch.tensor(WALL, device=self.device) * (0.82 + 0.18 * (1 - v)[:, None] + tiles[:, None])
        centre = self.pivot + torch.tensor(TORSO[0], device=self.device)
        t, normal = _ellipsoid_hit(torch.zeros(3, device=self.device), self.directions, centre,
                                   torch.tensor(TORSO[1], device=self.device))
        stripes = 0.92 + 0.08 * torch.sin(t * self.directions[:, 1] * 220.0)
        shirt = self._shade(torch.tensor(SHIRT, device=self.device) * stripes[:, None], normal)
        return torch.where(torch.isfinite(t)[:, None], shirt, wall).clamp(0, 1)

    def ray_cast(self, flame: torch.Tensor, translation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``flame [F,56]``, ``translation [F,3]`` -> colour ``[F,P,3]`` and foreground ``[F,P]`` (bool)."""
        frames = len(flame)
        rotation = axis_angle_to_matrix(flame[:, GLOBAL_ROT])  # [F,3,3] canonical -> camera
        frame_of, ray_of = self._head_rays(rotation, translation)
        # Per-frame parameters, gathered once per ray: [F, 10 + 9 + 3].
        subtle = flame[:, sem.SUBTLE_EXP] @ torch.as_tensor(subtle_projection(), dtype=flame.dtype,
                                                             device=self.device)
        named = flame[:, [sem.SMILE, sem.BROW_RAISE, sem.EYE_CLOSE, sem.JAW_OPEN]]
        origin = -(translation[:, None, :] @ rotation)[:, 0]  # R^T (0 - t): the camera in head space
        table = torch.cat([named, subtle.clamp(-3, 3), rotation.reshape(frames, 9), origin], 1)[frame_of]
        ray_rotation = table[:, 10:19].reshape(-1, 3, 3)
        direction = _times_matrix(self.directions[ray_of], ray_rotation)  # R^T d, canonical
        head = self._head(table[:, :10], table[:, 19:22], direction, ray_rotation)

        image = self.plate[None].repeat(frames, 1, 1)  # [F,P,3]
        neck_t = self.neck_t[None].expand(frames, -1)
        foreground = torch.isfinite(neck_t).clone()
        image[foreground] = self.neck_colour[None].expand(frames, -1, -1)[foreground]
        in_front = torch.isfinite(head["t"]) & (head["t"] < neck_t[frame_of, ray_of])
        image[frame_of[in_front], ray_of[in_front]] = head["colour"][in_front]
        foreground[frame_of[in_front], ray_of[in_front]] = True
        return image.clamp(0, 1), foreground

    def _head_rays(self, rotation: torch.Tensor, translation: torch.Tensor):
        """``(frame, ray)`` index pairs of the rays that cross each frame's head bounding ellipsoid.

        Only these (about a third of the image) are ray cast against the head. In camera space a ray
        ``s d`` meets the posed ellipsoid iff ``d^T Q d >= 0`` for a per-frame symmetric ``Q [F,3,3]``, so
        the test over all rays and frames is one matrix product.
        """
        centre, radii = (torch.tensor(v, device=self.device) for v in HEAD_BOUND)
        scaled = rotation.transpose(-1, -2) / radii[:, None]  # A = diag(1/r) R^T: d -> unit-sphere units
        offset = -(translation[:, None, :] @ rotation)[:, 0] - centre  # the camera in bound-centred space
        g = offset / radii  # [F,3]
        a = (scaled.transpose(-1, -2) @ g[..., None])[..., 0]  # A^T g, [F,3]
        quadric = a[:, :, None] * a[:, None, :] - ((g * g).sum(-1) - 1)[:, None, None] * (
            scaled.transpose(-1, -2) @ scaled)  # [F,3,3]
        dx, dy = self.directions[:, 0], self.directions[:, 1]
        features = torch.stack([dx * dx, dy * dy, torch.ones_like(dx), 2 * dx * dy, 2 * dx, 2 * dy], -1)
        coefficients = quadric.reshape(-1, 9)[:, [0, 4, 8, 1, 2, 5]]  # [F,6]
        return torch.nonzero((coefficients @ features.T) >= 0, as_tuple=True)  # [F,P] -> index pairs

    def _head(self, params, origin, direction, rotation) -> dict[str, torch.Tensor]:
        """Ray cast and shade the head for ``M`` rays, each with its own frame's parameters.

        ``params [M,10]`` (smile, brow raise, eye close, jaw, then :data:`SUBTLE_PARAMS`), ``origin [M,3]``
        and ``direction [M,3]`` in canonical space, ``rotation [M,3,3]`` canonical -> camera. Returns
        ``t [M]`` (camera depth, ``inf`` where the head is missed) and shaded ``colour [M,3]``.
        """
        device = self.device
        vec = lambda v: torch.tensor(v, device=device)  # noqa: E731
        smile, brow_raise, eye_close, jaw_open = params[:, :4].unbind(-1)
        cheek, mouth_width, mouth_height, brow_asym, nose_length, lip_thick = params[:, 4:].unbind(-1)
        ones = torch.ones_like(cheek)

        best_t = torch.full_like(cheek, float("inf"))
        best_label = torch.zeros_like(cheek, dtype=torch.long)
        best_normal = torch.zeros_like(origin)

        def keep_nearest(label, t, normal):
            nearer = t < best_t
            best_t.copy_(torch.where(nearer, t, best_t))
            best_label.copy_(torch.where(nearer, torch.full_like(best_label, label), best_label))
            best_normal.copy_(torch.where(nearer[:, None], normal, best_normal))

        keep_nearest(CRANIUM_ID, *_ellipsoid_hit(origin, direction, vec(CRANIUM[0]),
                                                 vec(CRANIUM[1]) * torch.stack([1 + 0.03 * cheek, ones, ones], -1)))
        # The jaw: rays taken into the jaw's rest frame (rotated back about the hinge).
        hinge = vec(JAW_HINGE)
        jaw_rotation = _rotation_x(jaw_open)  # [M,3,3] rest jaw -> posed jaw
        to_jaw = lambda v: _times_matrix(v, jaw_rotation)  # noqa: E731  R^T v
        jaw_t, jaw_normal = _ellipsoid_hit(to_jaw(origin - hinge) + hinge, to_jaw(direction), vec(JAW[0]),
                                           vec(JAW[1]))
        keep_nearest(JAW_ID, jaw_t, _times_matrix(jaw_normal, jaw_rotation.transpose(-1, -2)))
        nose_scale = torch.stack([ones, 1 + 0.08 * nose_length, 1 + 0.08 * nose_length], -1)
        keep_nearest(NOSE_ID, *_ellipsoid_hit(origin, direction, vec(NOSE[0]), vec(NOSE[1]) * nose_scale))
        for label, (centre, radii) in zip((EAR_LEFT_ID, EAR_RIGHT_ID), EARS):
            keep_nearest(label, *_ellipsoid_hit(origin, direction, vec(centre), vec(radii)))
        for label, centre in zip((EYE_LEFT_ID, EYE_RIGHT_ID), EYES):
            keep_nearest(label, *_ellipsoid_hit(origin, direction, vec(centre), vec((EYE_RADIUS,) * 3)))

        labels, normal = best_label, best_normal
        point = origin + torch.nan_to_num(best_t, posinf=0.0)[:, None] * direction  # [M,3] canonical
        jaw_y = (to_jaw(point - hinge) + hinge)[:, 1]  # the point's height in the jaw's rest frame
        x, y, z = point.unbind(-1)

        skin_texture = 1 + 0.03 * torch.sin(90 * x) * torch.sin(70 * y)
        colour = vec(SKIN) * skin_texture[:, None]
        on_face = (labels == CRANIUM_ID) | (labels == JAW_ID)
        # Hair: above a curved hairline and over the back of the head.
        hairline = -0.138 + 4.0 * x * x
        colour = _mix(colour, HAIR, (labels == CRANIUM_ID) & ((y < hairline) | ((z > 0.0) & (y < -0.02))))
        # Cheeks redden with a smile.
        for side in (-1.0, 1.0):
            blob = torch.exp(-((x - side * 0.045) ** 2 + (y + 0.04) ** 2) / (2 * 0.012 ** 2))
            colour = _mix(colour, (0.9, 0.45, 0.45), on_face & (z < -0.03), 0.18 * blob * smile.clamp(min=0))
        # Brows: arched bands above the eyes; BROW_RAISE lifts them, one subtle dim tilts them apart.
        for side, eye in zip((-1.0, 1.0), EYES):
            dx = x - eye[0]
            centre_y = -0.108 - 0.008 * brow_raise - side * 0.002 * brow_asym + 6.0 * dx * dx
            band = (y - centre_y).abs() < 0.0028 * (1 - (dx / 0.021) ** 2).clamp(min=0).sqrt()
            colour = _mix(colour, BROW, (labels == CRANIUM_ID) & (z < -0.03) & (dx.abs() < 0.021) & band)
        colour = _mouth(colour, on_face & (z < -0.02), x, y, jaw_y, smile, mouth_width, mouth_height, lip_thick)
        colour = _eyes(colour, labels, point, eye_close, smile)
        colour = _mix(colour, (0.45, 0.3, 0.27), (labels == NOSE_ID) & (normal[:, 1] > 0.55), 0.6)  # nostrils
        colour = _mix(colour, (0.85, 0.55, 0.5), (labels == EAR_LEFT_ID) | (labels == EAR_RIGHT_ID), 0.3)
        camera_normal = _times_matrix(normal, rotation.transpose(-1, -2))
        return {"t": best_t, "colour": self._shade(colour, camera_normal)}


def _times_matrix(rows: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Row vector times matrix per ray, ``[M,3] x [M,3,3] -> [M,3]`` (``v^T R``, i.e. ``R^T v``).

    Written out elementwise: a batch of a million 3x3 products is far slower through ``bmm`` on CPU.
    """
    x, y, z = rows[:, :, None].unbind(1)  # each [M,1]
    return x * matrices[:, 0] + y * matrices[:, 1] + z * matrices[:, 2]


def _mouth(colour, on_face, x, y, jaw_y, smile, mouth_width, mouth_height, lip_thick):
    """Lips, and between them, once the jaw drops, the mouth interior with teeth and tongue (all ``[M]``).

    The upper lip lives in head coordinates; the lower lip and lower teeth follow the jaw (``jaw_y`` is the
    height in the jaw's rest frame), blended back to the head towards the corners so they stay closed.
    """
    half_width = MOUTH_HALF_WIDTH * (1 + 0.12 * smile.clamp(min=0) + 0.08 * mouth_width)
    across = (x / half_width).clamp(-1, 1)
    inside_width = x.abs() < half_width
    seam = MOUTH_Y + 0.0015 * mouth_height - 0.006 * smile * across * across
    taper = (1 - across * across).clamp(min=0).sqrt()
    thickness = (1 + 0.2 * lip_thick) * taper
    follow = 1 - across * across  # 1 mid-mouth: the lower lip follows the jaw; 0 at the corners
    lower_y = y + follow * (jaw_y - y)
    upper_lip = inside_width & (y > seam - 0.006 * thickness) & (y <= seam)
    opening = inside_width & (y > seam) & (lower_y < seam - LIP_SEAL)
    lower_lip = (inside_width & ~opening & (y > seam)
                 & (lower_y >= seam - LIP_SEAL) & (lower_y < seam - LIP_SEAL + 0.0075 * thickness))
    upper_teeth = opening & (y < seam + 0.005 * taper)
    lower_teeth = opening & (lower_y > seam - LIP_SEAL - 0.004 * taper)
    tongue = opening & ~lower_teeth & (lower_y > seam - LIP_SEAL - 0.012)
    colour = _mix(colour, LIP, on_face & (upper_lip | lower_lip))
    colour = _mix(colour, MOUTH_INSIDE, on_face & opening)
    colour = _mix(colour, TONGUE, on_face & tongue)
    return _mix(colour, TEETH, on_face & (upper_teeth | lower_teeth))


def _eyes(colour, labels, point, eye_close, smile):
    """Sclera, iris and pupil on each eyeball; lids close from above, a smile lifts the lower lids."""
    close = eye_close.clamp(0, 1)
    lower_lid = EYE_RADIUS * (0.55 - 0.12 * smile.clamp(min=0))
    upper_lid = EYE_RADIUS * -0.45 + close * (lower_lid + 0.45 * EYE_RADIUS)
    for label, centre in zip((EYE_LEFT_ID, EYE_RIGHT_ID), EYES):
        on_eye = labels == label
        local = point - torch.tensor(centre, device=point.device)
        facing = -local[:, 2] / EYE_RADIUS  # cosine to straight ahead
        colour = _mix(colour, SCLERA, on_eye)
        colour = _mix(colour, IRIS, on_eye & (facing > 0.93))
        colour = _mix(colour, PUPIL, on_eye & (facing > 0.985))
        lid = on_eye & ((local[:, 1] < upper_lid) | (local[:, 1] > lower_lid))
        lash = on_eye & ~lid & (local[:, 1] < upper_lid + 0.1 * EYE_RADIUS)
        colour = _mix(colour, [0.92 * c for c in SKIN], lid)
        colour = _mix(colour, (0.1, 0.07, 0.06), lash)
    return colour


def _downsample(image: torch.Tensor, camera: Camera, supersample: int) -> torch.Tensor:
    """``[F, P_ss, C]`` -> ``[F, H, W, C]`` by averaging each pixel's ``supersample^2`` samples."""
    frames, channels = image.shape[0], image.shape[-1]
    image = image.reshape(frames, camera.height, supersample, camera.width, supersample, channels)
    return image.mean(dim=(2, 4))


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image * 255 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()


def _check_motion(flame, translation, device) -> tuple[torch.Tensor, torch.Tensor]:
    flame = torch.as_tensor(np.asarray(flame, dtype=np.float32), device=device)
    if flame.dim() != 2 or flame.shape[1] != FLAME_DIM:
        raise ValueError(f"flame must be [F,{FLAME_DIM}], got {tuple(flame.shape)}")
    if translation is None:
        translation = np.tile(np.asarray(PIVOT, np.float32), (len(flame), 1))
    translation = torch.as_tensor(np.asarray(translation, dtype=np.float32), device=device)
    if translation.shape != (len(flame), 3):
        raise ValueError(f"translation must be [{len(flame)},3], got {tuple(translation.shape)}")
    return flame, translation


def _render_chunks(scene: _Scene, flame: torch.Tensor, translation: torch.Tensor, chunk_rays: int):
    """Yield ``(start, frames uint8 [f,H,W,3], masks uint8 [f,H,W])`` over chunks of frames."""
    camera, supersample = scene.camera, scene.supersample
    frames_per_chunk = max(1, chunk_rays // scene.directions.shape[0])
    for start in range(0, len(flame), frames_per_chunk):
        stop = start + frames_per_chunk
        colour, foreground = scene.ray_cast(flame[start:stop], translation[start:stop])
        coverage = _downsample(foreground[..., None].float(), camera, supersample)[..., 0]
        masks = np.where((coverage >= 0.5).cpu().numpy(), 255, 0).astype(np.uint8)
        yield start, _to_uint8(_downsample(colour, camera, supersample)), masks


def render_subject(flame, translation=None, *, size: int = 64, camera: Camera | None = None,
                   supersample: int = 2, device: str | torch.device = "cpu",
                   chunk_rays: int = 1 << 22) -> dict[str, np.ndarray]:
    """Render the synthetic head for any FLAME array.

    ``flame`` ``[F,56]`` (numpy or torch), ``translation`` ``[F,3]`` or ``None`` (the mean pivot
    :data:`PIVOT`), on ``subject_camera(size)`` unless ``camera`` is given. Returns uint8 numpy
    ``frames [F,H,W,3]``, ``masks [F,H,W]`` (0/255, head + neck) and ``background [H,W,3]``.
    ``chunk_rays`` bounds the rays ray cast at once (memory).
    """
    device = torch.device(device)
    camera = camera or subject_camera(size)
    flame, translation = _check_motion(flame, translation, device)
    scene = _Scene(camera, supersample, device)
    frames = np.zeros((len(flame), camera.height, camera.width, 3), np.uint8)
    masks = np.zeros((len(flame), camera.height, camera.width), np.uint8)
    for start, frame_chunk, mask_chunk in _render_chunks(scene, flame, translation, chunk_rays):
        frames[start:start + len(frame_chunk)] = frame_chunk
        masks[start:start + len(mask_chunk)] = mask_chunk
    return {"frames": frames, "masks": masks, "background": scene.background()}


# --- writing -----------------------------------------------------------------------------------------

def _write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, compress_level=1)  # fast: these folders are written, then read


def write_synthetic_subject(out: str | Path, frames: int = 300, size: int = 64, seed: int = 0, *,
                            device: str | None = "cpu", supersample: int = 2, workers: int = 4,
                            chunk_rays: int = 1 << 22, progress: bool = False) -> Path:
    """Write a §3.2 subject folder of ``frames`` frames at ``size`` x ``size`` to ``out`` atomically."""
    if frames < 2:
        raise UsageError(f"--frames must be at least 2 (a train and a val frame), got {frames}")
    if size < 16:
        raise UsageError(f"--size must be at least 16 pixels, got {size}")
    if supersample < 1:
        raise UsageError(f"--supersample must be at least 1, got {supersample}")
    if Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    device = resolve_device(device)
    camera = subject_camera(size)
    motion = synthetic_listener_motion(frames, seed)
    flame, translation = _check_motion(motion["flame"], motion["translation"], device)
    scene = _Scene(camera, supersample, device)
    chunks = _render_chunks(scene, flame, translation, chunk_rays)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=frames, desc=f"synthetic subject {size}x{size}", unit="frame")
    # Pillow releases the GIL while it deflates, so threads encode PNGs in parallel.
    workers = max(1, workers)
    with atomic_output(out, directory=True) as tmp, ThreadPoolExecutor(max_workers=workers) as pool:
        (tmp / "frames").mkdir()
        (tmp / "masks").mkdir()
        meta = {"fps": FPS, "width": size, "height": size, "fx": camera.fx, "fy": camera.fy,
                "cx": camera.cx, "cy": camera.cy, "generator": "data_utils.synthetic_subject", "seed": seed,
                "supersample": supersample}
        save_json(tmp / "meta.json", meta)
        np.save(tmp / "flame.npy", motion["flame"])
        np.save(tmp / "translation.npy", motion["translation"])
        pending = deque([pool.submit(_write_png, tmp / "background.png", scene.background())])
        for start, frame_chunk, mask_chunk in chunks:
            for offset, (frame, mask) in enumerate(zip(frame_chunk, mask_chunk)):
                name = frame_name(start + offset)
                pending.append(pool.submit(_write_png, tmp / "frames" / name, frame))
                pending.append(pool.submit(_write_png, tmp / "masks" / name, mask))
                # Keep every worker busy while rendering goes on, but bound the images held in memory.
                while len(pending) > 4 * workers:
                    pending.popleft().result()
            if bar is not None:
                bar.update(len(frame_chunk))
        while pending:
            pending.popleft().result()
    if bar is not None:
        bar.close()
    return Path(out)


@cli_main("data_utils.synthetic_subject")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("data_utils.synthetic_subject", __doc__)
    parser.add_argument("--out", required=True, help="subject folder to write (replaced when complete)")
    parser.add_argument("--frames", type=int, default=300, help="number of frames at 25 fps")
    parser.add_argument("--size", type=int, default=64, help="image width and height in pixels")
    parser.add_argument("--seed", type=int, default=0, help="drives the motion; same seed, same files")
    parser.add_argument("--device", default="cpu", help="torch device for ray casting: cpu, cuda, auto")
    parser.add_argument("--supersample", type=int, default=2, help="samples per pixel along each axis")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="threads writing PNG files")
    args = parser.parse_args(argv)
    configure_threads()
    check_output_path("--out", args.out, directory=True)
    path = write_synthetic_subject(args.out, args.frames, args.size, args.seed, device=args.device,
                                   supersample=args.supersample, workers=args.workers, progress=True)
    print(f"wrote {args.frames} frames of {args.size}x{args.size} to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
