"""``BodyModel``: canonical Gaussians + FLAME deformation + jaw + rigid head pose + neck blend, over a plate.

    from scene.body import load_body
    body = load_body("output/body_subject", device="cuda")      # model dir (holds body.pth) or the file
    frames = body.render_frames(flame)                          # [B,56] -> uint8 [B,H,W,3] (the fast path)
    out = body(flame, translation)                              # float color/alpha/depth + offsets (training)

How frame ``i`` is posed (DESIGN.md §3.2): canonical head space has the head pivot at the origin and OpenCV
axes. Expression and jaw (``utils.flame.deformation_code``) drive per-Gaussian offsets of position, rotation,
log-scale and (``model.appearance``) opacity and colour — the face and the inside of the mouth each through
their own deformation network. Then each Gaussian turns about the jaw pivot by its learned share of the
FLAME jaw rotation (``model.jaw``: the lower lip, chin, lower teeth and tongue follow the jaw as in FLAME's
skinning), the global rotation turns the head rigidly about the pivot and ``translation_i`` (or the
subject's mean translation) places the pivot in camera space.

Two layers, face in front of the mouth interior, composited in that order whatever their depth (the face
occludes the mouth unless it turns transparent where the lips part). Training renders them one by one
(``render_layers``: per-layer alpha for the mouth-mask losses, per-layer ``info`` for densification);
:meth:`BodyModel.render_frames` renders them in one rasteriser pass (``render_stacked_frames``, the same
composite) and, on CUDA, replays the whole deformation from a CUDA graph per batch size.

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

from gaussian_renderer import Camera, GaussianLayer, render_layers, render_stacked_frames, stack_in_order
from scene.deform import DeformConfig, FlameDeformNet
from scene.gaussian_sets import (GAUSSIAN_KEYS, GaussianInitConfig, backproject, gaussian_set_from_tensors,
                                 init_face_set, init_mouth_set)
from scene.rotation import axis_angle_split, axis_angle_to_quat, quat_multiply, rotate_about_axis
from scene.subject import Subject, SubjectError, frame_name
from utils.checkpoint import CheckpointError, load_checkpoint
from utils.config import config_from_dict, config_to_dict
from utils.flame import FLAME_DIM, GLOBAL_ROT, JAW, deformation_code

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
class JawConfig:
    enabled: bool = True  # turn Gaussians about the pivot by their learned share of the FLAME jaw rotation
    # The hinge, canonical metres (learned from here): below and in front of the ears, FLAME-like.
    pivot: list[float] = field(default_factory=lambda: [0.0, -0.055, 0.0])


def _mouth_deform_config() -> DeformConfig:
    # The inside of the mouth is a few centimetres across: a small box with fine planes, a small MLP.
    return DeformConfig(plane_resolution=32, plane_channels=8, bound=0.05, code_width=32, hidden=32, hidden_layers=1)


@dataclass
class BodyModelConfig:
    init: GaussianInitConfig = field(default_factory=GaussianInitConfig)
    deform: DeformConfig = field(default_factory=DeformConfig)  # the face layer's deformation
    mouth_deform: DeformConfig = field(default_factory=_mouth_deform_config)  # centred at init.mouth_center
    appearance: bool = True  # the deformations also offset opacity and colour (e.g. lips thin out, teeth show)
    # With appearance: the decoded colour is a target each Gaussian's colour moves towards by a decoded share
    # (tanh: 0 at the start, the identity), not a logit offset, and the appearance outputs get a part linear
    # in the code (scene.deform). A closing lid turns sclera, iris and pupil into skin alike: one spatially
    # smooth target and share, where logit offsets would have to differ Gaussian by Gaussian (sclera down,
    # pupil up) finer than the tri-plane's cells. Bodies saved before it load with False.
    appearance_blend: bool = True
    jaw: JawConfig = field(default_factory=JawConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)


class BodyModel(nn.Module):
    def __init__(self, cfg: BodyModelConfig, *, camera: Camera, fps: int, background: torch.Tensor,
                 mean_translation: torch.Tensor, gaussians: dict[str, nn.ParameterDict]):
        super().__init__()
        self.cfg = cfg
        self.camera = camera
        self.fps = int(fps)
        self.gaussians = nn.ModuleDict({name: gaussians[name] for name in LAYERS})
        appearance = {"appearance": cfg.appearance, "appearance_blend": cfg.appearance_blend}
        self.deform = FlameDeformNet(cfg.deform, **appearance)
        self.mouth_deform = FlameDeformNet(cfg.mouth_deform, centre=cfg.init.mouth_center, **appearance)
        self.jaw_pivot = nn.Parameter(torch.tensor(cfg.jaw.pivot, dtype=torch.float32).reshape(3))
        self.register_buffer("background", background.float())  # [H,W,3] in [0,1]
        self.register_buffer("mean_translation", mean_translation.float().reshape(3))  # [3] metres
        self._frozen_canonical: dict[str, torch.Tensor] | None = None  # see canonical()
        self._pose_graphs: dict[tuple[int, bool], CapturedPose] = {}  # see stacked_layer()

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

    def deformation_parameters(self) -> list[nn.Parameter]:
        """What the ``deform`` training group updates: both deformation networks and the jaw pivot."""
        return [*self.deform.parameters(), *self.mouth_deform.parameters(), self.jaw_pivot]

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
        """Face then mouth tensors concatenated (``[N,...]``), the rigid ``weight [N,1]``, the jaw shares
        ``jaw_share [N,1]``, each deformation's per-Gaussian features (``spatial_face [N_face,hidden]``,
        ``spatial_mouth [N_mouth,hidden']``) and the activated ``opacity_values [N]`` and ``rgb [N,3]``.

        None of these depend on the frame, so while the body is frozen (eval mode and no autograd, as in
        synthesis) they are computed once and kept; ``train()``, ``eval()`` and ``to()`` drop the copy.
        """
        frozen = not self.training and not torch.is_grad_enabled()
        if frozen and self._frozen_canonical is not None:
            return self._frozen_canonical
        canonical = {key: torch.cat([self.gaussians[name][key] for name in LAYERS]) for key in GAUSSIAN_KEYS}
        canonical["weight"] = self.rigid_weight(canonical["means"])
        canonical["jaw_share"] = torch.sigmoid(canonical["jaw"])[:, None]
        canonical["spatial_face"] = self.deform.spatial(self.gaussians["face"]["means"])
        canonical["spatial_mouth"] = self.mouth_deform.spatial(self.gaussians["mouth"]["means"])
        canonical["opacity_values"] = torch.sigmoid(canonical["opacities"])  # [N] in [0,1]
        canonical["rgb"] = torch.sigmoid(canonical["colors"])  # [N,3] in [0,1]
        if frozen:
            self._frozen_canonical = canonical
        return canonical

    def train(self, mode: bool = True) -> "BodyModel":
        self._frozen_canonical = None
        self._pose_graphs = {}
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._frozen_canonical = None
        self._pose_graphs = {}
        return super()._apply(fn, *args, **kwargs)

    def _offsets(self, canonical: dict[str, torch.Tensor], flame: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both deformation networks' offsets, face then mouth along N: each ``[B,N,k]`` (opacities ``[B,N]``)."""
        code = deformation_code(flame)
        face = self.deform.offsets(canonical["spatial_face"], code)
        mouth = self.mouth_deform.offsets(canonical["spatial_mouth"], code)
        return {key: torch.cat([face[key], mouth[key]], dim=1) for key in face}

    def _turn_jaw(self, means: torch.Tensor, quats: torch.Tensor, share: torch.Tensor, jaw: torch.Tensor):
        """Turn ``means [B,N,3]``/``quats [B,N,4]`` about the jaw pivot by ``share [N,1]`` of ``jaw [B,3]``."""
        axis, angle = axis_angle_split(jaw)  # [B,3], [B,1]
        axis = axis.unsqueeze(1)  # [B,1,3]
        gaussian_angle = angle.unsqueeze(1) * share  # [B,N,1]
        means = rotate_about_axis(means - self.jaw_pivot, axis, gaussian_angle) + self.jaw_pivot
        return means, quat_multiply(axis_angle_to_quat(axis, gaussian_angle), quats)

    def pose(self, flame: torch.Tensor, translation: torch.Tensor | None = None
             ) -> tuple[list[GaussianLayer], dict[str, torch.Tensor]]:
        """``flame [B,56]``, ``translation [B,3]`` -> camera-space layers (front to back) and raw offsets."""
        translation = self._check_inputs(flame, translation)
        batch = flame.shape[0]
        counts = [self.gaussians[name]["means"].shape[0] for name in LAYERS]
        canonical = self.canonical()
        offsets = self._offsets(canonical, flame)  # each [B,N,k]
        weight = canonical["weight"]  # [N,1]
        means = canonical["means"] + weight * offsets["means"]  # [B,N,3]
        quats = canonical["quats"] + weight * offsets["quats"]  # [B,N,4]
        log_scales = canonical["scales"] + weight * offsets["scales"]  # [B,N,3]
        if self.cfg.jaw.enabled:  # the rigid weight keeps the torso off the jaw whatever the learned shares
            means, quats = self._turn_jaw(means, quats, canonical["jaw_share"] * weight, flame[:, JAW])

        axis, angle = axis_angle_split(flame[:, GLOBAL_ROT])  # [B,3], [B,1]
        axis = axis.unsqueeze(1)  # [B,1,3]
        gaussian_angle = angle.unsqueeze(1) * weight  # [B,N,1]: the neck turns by a fraction of the angle
        means = rotate_about_axis(means, axis, gaussian_angle)
        shift = translation - self.mean_translation  # [B,3]
        means = means + self.mean_translation + weight * shift.unsqueeze(1)
        quats = quat_multiply(axis_angle_to_quat(axis, gaussian_angle), quats)

        scales = torch.exp(log_scales)
        if self.cfg.appearance:
            opacities = torch.sigmoid(canonical["opacities"] + weight[:, 0] * offsets["opacities"])  # [B,N]
            if self.cfg.appearance_blend:
                share = torch.tanh(weight * offsets["colour_share"])  # [B,N,1]; below 0 it moves away
                target = torch.sigmoid(offsets["colors"])  # [B,N,3]
                colors = (canonical["rgb"] + share * (target - canonical["rgb"])).clamp(0, 1)
            else:
                colors = torch.sigmoid(canonical["colors"] + weight * offsets["colors"])  # [B,N,3]
        else:
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
        """``flame [B,56]`` (+ ``translation [B,3]``) -> uint8 frames ``[B,H,W,3]`` on the body's device.

        The fast path, and what synthesis and the live session call: both layers in one rasteriser pass in
        face-then-mouth order, composited over the plate and converted to uint8 in one fused step
        (:func:`gaussian_renderer.render_stacked_frames`, the composite of ``forward``) and, for a frozen body
        on CUDA, the deformation replayed from a CUDA graph captured once per batch size.
        """
        stacked = self.stacked_layer(flame, translation)
        return render_stacked_frames(stacked, self.camera, background=self.background, backend=backend)

    def stacked_layer(self, flame: torch.Tensor, translation: torch.Tensor | None = None) -> GaussianLayer:
        """:meth:`pose`'s layers stacked for one rasteriser pass (``stack_in_order``), replayed from a CUDA
        graph when the body is frozen on CUDA (batch <= 16)."""
        self._check_inputs(flame, translation)
        graphed = (self.device.type == "cuda" and not self.training and not torch.is_grad_enabled()
                   and flame.shape[0] <= MAX_GRAPHED_BATCH)
        if not graphed:
            return stack_in_order(self.pose(flame, translation)[0], self.camera.near_plane)
        key = (flame.shape[0], translation is not None)
        if key not in self._pose_graphs:
            self._pose_graphs[key] = CapturedPose(self, *key)
        return self._pose_graphs[key](flame, translation)

    @torch.no_grad()
    def export_gaussians(self, flame: torch.Tensor | None = None,
                         translation: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Face then mouth Gaussians in PLY terms (``scene.ply``): canonical head space when ``flame`` is
        None, else posed in camera space by one ``flame [56]`` (and ``translation [3]``)."""
        canonical = self.canonical()
        if flame is None:
            return {"means": canonical["means"], "log_scales": canonical["scales"], "quats": canonical["quats"],
                    "opacity_logits": canonical["opacities"], "colors": canonical["rgb"]}
        layers, _ = self.pose(flame.reshape(1, -1), None if translation is None else translation.reshape(1, 3))
        posed = {key: torch.cat([getattr(layer, key)[0] for layer in layers])
                 for key in ("means", "scales", "quats", "opacities", "colors")}
        return {"means": posed["means"], "log_scales": torch.log(posed["scales"]), "quats": posed["quats"],
                "opacity_logits": torch.logit(posed["opacities"], eps=1e-6), "colors": posed["colors"]}

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
            "mouth_deform": {key: value.detach().cpu() for key, value in self.mouth_deform.state_dict().items()},
            "jaw_pivot": self.jaw_pivot.detach().cpu(),
        }

    @classmethod
    def from_payload(cls, payload: dict, device: str | torch.device = "cpu") -> "BodyModel":
        # A body saved before model.appearance_blend decodes logit offsets: its config lacks the key.
        cfg = config_from_dict(BodyModelConfig, {"appearance_blend": False, **payload["config"]["model"]})
        model = cls(cfg, camera=Camera.from_meta(payload["subject"]), fps=payload["subject"]["fps"],
                    background=payload["background"].float() / 255.0,
                    mean_translation=payload["mean_translation"],
                    gaussians={name: gaussian_set_from_tensors(payload["gaussians"][name]) for name in LAYERS})
        model.deform.load_state_dict(payload["deform"])
        model.mouth_deform.load_state_dict(payload["mouth_deform"])
        with torch.no_grad():
            model.jaw_pivot.copy_(payload["jaw_pivot"])
        return model.to(device)


MAX_GRAPHED_BATCH = 16  # larger batches run eagerly: a graph keeps its [B,N,hidden] intermediates alive, and
# at 16+ frames a render is bound by the GPU, not by launches


class CapturedPose:
    """:meth:`BodyModel.pose` and ``stack_in_order`` of a frozen CUDA body for one batch size, in a CUDA graph.

    A call copies ``flame [B,56]`` (and ``translation [B,3]``) into the graph's static inputs and replays it:
    one launch instead of the deformation's ~80 kernels. It returns the graph's static output layer, which the
    next call overwrites, so use it (rasterise) before calling again.
    """

    def __init__(self, body: "BodyModel", batch: int, with_translation: bool):
        self.flame = torch.zeros(batch, FLAME_DIM, device=body.device)
        self.translation = body.mean_translation.expand(batch, 3).clone() if with_translation else None
        side = torch.cuda.Stream(body.device)
        side.wait_stream(torch.cuda.current_stream(body.device))
        near_plane = body.camera.near_plane
        with torch.cuda.stream(side):  # warm up (and fill the canonical cache) outside the capture
            for _ in range(2):
                stack_in_order(body.pose(self.flame, self.translation)[0], near_plane)
        torch.cuda.current_stream(body.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.layer = stack_in_order(body.pose(self.flame, self.translation)[0], near_plane)

    def __call__(self, flame: torch.Tensor, translation: torch.Tensor | None) -> GaussianLayer:
        self.flame.copy_(flame)
        if translation is not None:
            self.translation.copy_(translation)
        self.graph.replay()
        return self.layer


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
    if "model_config" in payload:  # the layout before the jaw skinning and the mouth's own deformation
        raise CheckpointError(f"{path}: a body of the earlier layout (no jaw skinning, one deformation network); "
                              f"re-train it with this version")
    try:
        model = BodyModel.from_payload(payload, device)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: body checkpoint is incomplete or inconsistent ({exc})") from exc
    model.eval()
    return model
