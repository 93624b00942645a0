"""``BodyModel``: canonical Gaussians + FLAME deformation + rigid head pose + neck blend, rendered over a plate.

    from scene.body import load_body
    body = load_body("output/body_subject", device="cuda")      # model dir (holds body.pth) or the file
    frames = body.render_frames(flame)                          # [B,56] -> uint8 [B,H,W,3]
    out = body(flame, translation)                              # float color/alpha/depth + offsets (training)

How frame ``i`` is posed (DESIGN.md §3.2): canonical head space has the head pivot at the origin and OpenCV
axes. Expression and jaw (``utils.flame.deformation_code``) drive per-Gaussian offsets of position, rotation
and log-scale; then the global rotation turns the head rigidly about the pivot and ``translation_i`` (or the
subject's mean translation) places the pivot in camera space.

Neck and torso: every Gaussian carries a *rigid weight* ``w`` in [0,1], a smooth function of its canonical
height: 1 on the head, fading to 0 from the chin down to the base of the neck. A Gaussian is rotated by
``w·angle`` about the rotation axis, translated by ``mean + w·(t_i − mean)``, and deformed by ``w·offsets``.
So the head turns, anything below the neck (torso Gaussians, or the static background plate) stays put, and
the neck twists continuously between them instead of tearing at a seam. The fade band is ``NeckConfig``
(canonical heights below the pivot).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gaussian_renderer import Camera, GaussianLayer, render_layers
from scene.deform import DeformConfig, FlameDeformNet
from scene.gaussian_sets import (GAUSSIAN_KEYS, GaussianInitConfig, backproject, gaussian_set_from_tensors,
                             init_face_set, init_mouth_set)
from scene.rotation import axis_angle_split, axis_angle_to_quat, quat_multiply, rotate_about_axis
from scene.subject import Subject, SubjectError, frame_name
from utils.checkpoint import CheckpointError, load_checkpoint
from utils.config import config_from_dict, config_to_dict
from utils.flame import FLAME_DIM, GLOBAL_ROT, deformation_code

LAYERS = ("face", "mouth")  # front to back: the face occludes the inside of the mouth
CHECKPOINT_NAME = "body.pth"


@dataclass
class NeckConfig:
    # Canonical heights in metres below the head pivot (y grows downwards; FLAME's pivot and the synthetic
    # subject's sit at the top of the neck). Above blend_start the head moves fully rigidly; below blend_end
    # nothing follows it (the lower neck and torso stay put); in between the rigid weight fades smoothly.
    blend_start: float = 0.05  # just under the chin
    blend_end: float = 0.11  # the lower neck


@dataclass
class BodyModelConfig:
    init: GaussianInitConfig = field(default_factory=GaussianInitConfig)
    deform: DeformConfig = field(default_factory=DeformConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)


class BodyModel(nn.Module):
    def __init__(self, cfg: BodyModelConfig, *, camera: Camera, fps: int, background: torch.Tensor,
                 mean_translation: torch.Tensor, gaussians: dict[str, nn.ParameterDict]):
        super().__init__()
        self.cfg = cfg
        self.camera = camera
        self.fps = int(fps)
        self.gaussians = nn.ModuleDict({name: gaussians[name] for name in LAYERS})
        self.deform = FlameDeformNet(cfg.deform)
        self.register_buffer("background", background.float())  # [H,W,3] in [0,1]
        self.register_buffer("mean_translation", mean_translation.float().reshape(3))  # [3] metres
        self._frozen_canonical: dict[str, torch.Tensor] | None = None  # see canonical()

    @property
    def height(self) -> int:
        return self.camera.height

    @property
    def width(self) -> int:
        return self.camera.width

    @property
    def device(self) -> torch.device:
        return self.background.device

    def num_gaussians(self) -> dict[str, int]:
        return {name: int(self.gaussians[name]["means"].shape[0]) for name in LAYERS}

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def from_subject(cls, cfg: BodyModelConfig, subject: Subject, *, init_frame: int | None = None,
                     seed: int = 0) -> "BodyModel":
        """Initialise from a subject: camera, plate, mean translation and Gaussians from one masked frame."""
        index = subject.train_ids[0] if init_frame is None else init_frame
        if subject.translation is not None:
            translations = subject.translation[subject.train_ids]
            mean_translation = translations.mean(0)
            frame_translation = subject.translation[index]
        else:
            mean_translation = frame_translation = _pivot_from_mask(subject, index, cfg.init.assumed_depth)
        rng = np.random.default_rng(seed)
        gaussians = {
            "face": init_face_set(cfg.init, subject.frame(index), subject.mask(index), subject.intrinsics,
                                  subject.flame[index, GLOBAL_ROT], frame_translation, rng),
            "mouth": init_mouth_set(cfg.init, rng),
        }
        camera = Camera.from_meta(subject.meta)
        return cls(cfg, camera=camera, fps=subject.fps,
                   background=torch.as_tensor(subject.background() / 255.0, dtype=torch.float32),
                   mean_translation=torch.as_tensor(mean_translation, dtype=torch.float32),
                   gaussians=gaussians)

    # --- posing and rendering -----------------------------------------------------------------------
    def rigid_weight(self, canonical_means: torch.Tensor) -> torch.Tensor:
        """``[N,3]`` -> ``[N,1]``: 1 on the head, smoothly 0 below the neck (y grows downwards)."""
        start, end = self.cfg.neck.blend_start, self.cfg.neck.blend_end
        t = ((canonical_means[:, 1:2] - start) / max(end - start, 1e-6)).clamp(0, 1)
        return 1 - t * t * (3 - 2 * t)  # smoothstep: no kink where the fade begins or ends

    def _check_inputs(self, flame: torch.Tensor, translation: torch.Tensor | None) -> torch.Tensor:
        if flame.ndim != 2 or flame.shape[1] != FLAME_DIM:
            raise ValueError(f"flame must be [B,{FLAME_DIM}], got {tuple(flame.shape)}")
        if translation is None:
            return self.mean_translation.expand(flame.shape[0], 3)
        if translation.shape != (flame.shape[0], 3):
            raise ValueError(f"translation must be [B,3] = [{flame.shape[0]},3], got {tuple(translation.shape)}")
        return translation

    def canonical(self) -> dict[str, torch.Tensor]:
        """Face then mouth tensors concatenated (``[N,...]``), the rigid ``weight [N,1]`` and the deformation's
        per-Gaussian features ``spatial [N,hidden]``.

        None of these depend on the frame, so while the body is frozen (eval mode and no autograd, as in
        synthesis) they are computed once and kept; ``train()``, ``eval()`` and ``to()`` drop the copy.
        """
        frozen = not self.training and not torch.is_grad_enabled()
        if frozen and self._frozen_canonical is not None:
            return self._frozen_canonical
        canonical = {key: torch.cat([self.gaussians[name][key] for name in LAYERS]) for key in GAUSSIAN_KEYS}
        canonical["weight"] = self.rigid_weight(canonical["means"])
        canonical["spatial"] = self.deform.spatial(canonical["means"])
        canonical["opacity_values"] = torch.sigmoid(canonical["opacities"])  # [N] in [0,1]
        canonical["rgb"] = torch.sigmoid(canonical["colors"])  # [N,3] in [0,1]
        if frozen:
            self._frozen_canonical = canonical
        return canonical

    def train(self, mode: bool = True) -> "BodyModel":
        self._frozen_canonical = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._frozen_canonical = None
        return super()._apply(fn, *args, **kwargs)

    def pose(self, flame: torch.Tensor, translation: torch.Tensor | None = None
             ) -> tuple[list[GaussianLayer], dict[str, torch.Tensor]]:
        """``flame [B,56]``, ``translation [B,3]`` -> camera-space layers (front to back) and raw offsets."""
        translation = self._check_inputs(flame, translation)
        batch = flame.shape[0]
        counts = [self.gaussians[name]["means"].shape[0] for name in LAYERS]
        canonical = self.canonical()
        offsets = self.deform.offsets(canonical["spatial"], deformation_code(flame))  # each [B,N,k]
        weight = canonical["weight"]  # [N,1]
        means = canonical["means"] + weight * offsets["means"]  # [B,N,3]
        quats = canonical["quats"] + weight * offsets["quats"]  # [B,N,4]
        log_scales = canonical["scales"] + weight * offsets["scales"]  # [B,N,3]

        axis, angle = axis_angle_split(flame[:, GLOBAL_ROT])  # [B,3], [B,1]
        axis = axis.unsqueeze(1)  # [B,1,3]
        gaussian_angle = angle.unsqueeze(1) * weight  # [B,N,1]: the neck turns by a fraction of the angle
        means = rotate_about_axis(means, axis, gaussian_angle)
        shift = translation - self.mean_translation  # [B,3]
        means = means + self.mean_translation + weight * shift.unsqueeze(1)
        quats = quat_multiply(axis_angle_to_quat(axis, gaussian_angle), quats)

        scales = torch.exp(log_scales)
        opacities = canonical["opacity_values"].expand(batch, -1)  # [B,N]
        colors = canonical["rgb"].expand(batch, -1, -1)  # [B,N,3]
        layers = [GaussianLayer(means=m, quats=q, scales=s, opacities=o, colors=c)
                  for m, q, s, o, c in zip(*(t.split(counts, dim=1)
                                             for t in (means, quats, scales, opacities, colors)))]
        return layers, offsets

    def forward(self, flame: torch.Tensor, translation: torch.Tensor | None = None, *,
                backend: str = "auto") -> dict:
        """The differentiable render: ``color [B,H,W,3]``, ``alpha``/``depth [B,H,W,1]``, per-layer ``layers``
        (with the rasteriser's ``info`` for densification) and the deformation's ``offsets``."""
        layers, offsets = self.pose(flame, translation)
        out = render_layers(layers, self.camera, background=self.background, backend=backend)
        out["offsets"] = offsets
        return out

    @torch.no_grad()
    def render_frames(self, flame: torch.Tensor, translation: torch.Tensor | None = None, *,
                      backend: str = "auto") -> torch.Tensor:
        """``flame [B,56]`` (+ ``translation [B,3]``) -> uint8 frames ``[B,H,W,3]`` on the body's device."""
        color = self(flame, translation, backend=backend)["color"]
        return (color.clamp(0, 1) * 255 + 0.5).to(torch.uint8)

    @torch.no_grad()
    def export_gaussians(self, flame: torch.Tensor | None = None,
                         translation: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Face then mouth Gaussians in PLY terms (``scene.ply``): canonical head space when ``flame`` is
        None, else posed in camera space by one ``flame [56]`` (and ``translation [3]``)."""
        canonical = self.canonical()
        if flame is None:
            means, log_scales, quats = canonical["means"], canonical["scales"], canonical["quats"]
        else:
            layers, _ = self.pose(flame.reshape(1, -1), None if translation is None else translation.reshape(1, 3))
            means, scales, quats = (torch.cat([getattr(layer, key)[0] for layer in layers])
                                    for key in ("means", "scales", "quats"))
            log_scales = torch.log(scales)
        return {"means": means, "log_scales": log_scales, "quats": quats,
                "opacity_logits": canonical["opacities"], "colors": canonical["rgb"]}

    # --- checkpoints --------------------------------------------------------------------------------
    def to_payload(self) -> dict:
        """Everything needed to rebuild the model, as ``weights_only``-loadable values. The model's config is
        ``config["model"]``: a training checkpoint stores its whole config there, the model's section once."""
        camera = self.camera
        return {
            "config": {"model": config_to_dict(self.cfg)},
            "subject": {"width": camera.width, "height": camera.height, "fx": camera.fx, "fy": camera.fy,
                        "cx": camera.cx, "cy": camera.cy, "fps": self.fps},
            "background": (self.background.detach().cpu() * 255 + 0.5).clamp(0, 255).to(torch.uint8),
            "mean_translation": self.mean_translation.detach().cpu(),
            "gaussians": {name: {key: self.gaussians[name][key].detach().cpu() for key in GAUSSIAN_KEYS}
                          for name in LAYERS},
            "deform": {key: value.detach().cpu() for key, value in self.deform.state_dict().items()},
        }

    @classmethod
    def from_payload(cls, payload: dict, device: str | torch.device = "cpu") -> "BodyModel":
        cfg = config_from_dict(BodyModelConfig, payload["config"]["model"])
        model = cls(cfg, camera=Camera.from_meta(payload["subject"]), fps=payload["subject"]["fps"],
                    background=payload["background"].float() / 255.0,
                    mean_translation=payload["mean_translation"],
                    gaussians={name: gaussian_set_from_tensors(payload["gaussians"][name]) for name in LAYERS})
        model.deform.load_state_dict(payload["deform"])
        return model.to(device)


def _pivot_from_mask(subject: Subject, index: int, depth: float) -> np.ndarray:
    """Without translation.npy: the pivot sits under the mask's centre, 3/4 of the way down, at ``depth``."""
    rows, cols = np.nonzero(subject.mask(index) > 127)
    if len(rows) == 0:
        raise SubjectError(f"{subject.root / 'masks' / frame_name(index)}: empty mask, cannot place the head")
    u = (cols.min() + cols.max() + 1) / 2
    v = rows.min() + 0.75 * (rows.max() + 1 - rows.min())
    return backproject(np.array([u]), np.array([v]), np.array([depth]), subject.intrinsics)[0].astype(np.float32)


def checkpoint_path(model_dir_or_file: str | Path) -> Path:
    path = Path(model_dir_or_file)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def load_body(model_dir_or_file: str | Path, device: str | torch.device = "cpu") -> BodyModel:
    """Load a trained body from a model directory (``<dir>/body.pth``) or the checkpoint file itself.

    Raises :class:`utils.checkpoint.CheckpointError` for a missing file or a checkpoint of another kind.
    """
    path = checkpoint_path(model_dir_or_file)
    payload = load_checkpoint(path, kind="body")
    try:
        model = BodyModel.from_payload(payload, device)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: body checkpoint is incomplete or inconsistent ({exc})") from exc
    model.eval()
    return model
