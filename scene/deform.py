"""The FLAME deformation field: tri-plane features at each canonical Gaussian × an expression+jaw embedding.

    net = FlameDeformNet(DeformConfig())
    spatial = net.spatial(canonical_means)          # [N,3] metres, canonical head space -> [N,hidden]
    offsets = net.offsets(spatial, deformation_code)  # [B,53] = utils.flame.deformation_code(flame)
    offsets["means"]   # [B,N,3] position offsets (canonical space)
    offsets["quats"]   # [B,N,4] additive wxyz rotation offsets
    offsets["scales"]  # [B,N,3] log-scale offsets
    offsets["opacities"], offsets["colors"]  # [B,N], [B,N,3] logits (appearance=True): per-Gaussian
                                             # appearance decoded with the code (lips thin out, teeth show)
    offsets["colour_share"]  # [B,N,1] (appearance_blend=True): how far the colour moves to offsets["colors"]

Cost: the first MLP layer is split into a spatial part (computed once per call for all N Gaussians, independent
of the frame) and a code part (once per frame); they are broadcast-added, so a batch of B frames costs one
``[B,N,hidden]`` pass through the remaining layers — no per-Gaussian or per-layer Python loop. Global rotation
never enters the network: it is applied rigidly by :mod:`scene.body`.

With ``appearance_blend`` the appearance outputs also get a part linear in the code, like FLAME's blendshapes:
each code dimension has a basis ``[hidden,5]`` read by the per-Gaussian features, so frame b adds
``spatial @ (Σ_j code[b,j]·basis_j)``. The MLP alone, its last layer starting at zero, barely learns an
appearance that follows one code dimension in a small region (a blink); the basis gets that gradient directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from utils.flame import DEFORMATION_DIM

GEOMETRY_OFFSETS = {"means": 3, "quats": 4, "scales": 3}
APPEARANCE_OFFSETS = {"opacities": 1, "colors": 3}
BLEND_SHARE = {"colour_share": 1}
# The three axis-aligned planes of the tri-plane: (xy, xz, yz) as coordinate index pairs.
PLANE_AXES = ((0, 1), (0, 2), (1, 2))


@dataclass
class DeformConfig:
    plane_resolution: int = 64  # R: each plane is [C,R,R]
    plane_channels: int = 16  # C features per plane
    bound: float = 0.25  # metres: the canonical box (the net's centre ± bound) mapped onto the planes
    code_width: int = 32  # expression+jaw embedding width
    hidden: int = 64  # MLP width
    hidden_layers: int = 2  # hidden layers after the fused first layer


class TriPlane(nn.Module):
    """Three dense feature planes sampled bilinearly with ``grid_sample``; features are concatenated."""

    def __init__(self, resolution: int, channels: int, bound: float, centre: list[float]):
        super().__init__()
        self.bound = bound
        self.register_buffer("centre", torch.tensor(centre, dtype=torch.float32).reshape(3), persistent=False)
        self.planes = nn.Parameter(0.1 * torch.randn(len(PLANE_AXES), channels, resolution, resolution))

    @property
    def out_dim(self) -> int:
        return self.planes.shape[0] * self.planes.shape[1]

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """``points [N,3]`` -> features ``[N,3C]``; points outside the box read the border features."""
        normalized = ((points - self.centre) / self.bound).clamp(-1, 1)
        grid = torch.stack([normalized[:, list(axes)] for axes in PLANE_AXES])  # [3,N,2]
        sampled = F.grid_sample(self.planes, grid.unsqueeze(1), mode="bilinear", align_corners=True)  # [3,C,1,N]
        return sampled.squeeze(2).permute(2, 0, 1).reshape(points.shape[0], -1)  # [N,3C]


class FlameDeformNet(nn.Module):
    """``centre`` (canonical metres) is the middle of the tri-plane box; with ``appearance`` the net also
    decodes opacity and colour logits; with ``appearance_blend`` also the share of the way to that colour, and
    the appearance outputs get the code-linear basis above."""

    def __init__(self, cfg: DeformConfig, *, centre=(0.0, 0.0, 0.0), appearance: bool = False,
                 appearance_blend: bool = False):
        super().__init__()
        self.cfg = cfg
        self.triplane = TriPlane(cfg.plane_resolution, cfg.plane_channels, cfg.bound, list(centre))
        blend = appearance and appearance_blend
        self.offset_dims = {**GEOMETRY_OFFSETS, **(APPEARANCE_OFFSETS if appearance else {}),
                            **(BLEND_SHARE if blend else {})}
        self.geometry_width = sum(GEOMETRY_OFFSETS.values())  # the head's first columns; appearance follows
        self.code_embed = nn.Sequential(nn.Linear(DEFORMATION_DIM, cfg.code_width), nn.SiLU())
        self.spatial_in = nn.Linear(self.triplane.out_dim, cfg.hidden)
        self.code_in = nn.Linear(cfg.code_width, cfg.hidden, bias=False)
        layers: list[nn.Module] = []
        for _ in range(cfg.hidden_layers):
            layers += [nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden)]
        self.trunk = nn.Sequential(*layers, nn.SiLU())
        self.head = nn.Linear(cfg.hidden, sum(self.offset_dims.values()))
        # Start from the identity deformation: the canonical head is fitted first, offsets grow from zero.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        appearance_width = sum(self.offset_dims.values()) - self.geometry_width
        # [53, hidden, 5]: per code dimension, the appearance offsets read from the per-Gaussian features
        self.appearance_basis = (nn.Parameter(torch.zeros(DEFORMATION_DIM, cfg.hidden, appearance_width))
                                 if blend else None)

    def spatial(self, canonical_means: torch.Tensor) -> torch.Tensor:
        """The per-Gaussian half of the first layer, ``[N,3]`` -> ``[N,hidden]`` (independent of the frame)."""
        return self.spatial_in(self.triplane(canonical_means))

    def offsets(self, spatial: torch.Tensor, code: torch.Tensor) -> dict[str, torch.Tensor]:
        """``spatial [N,hidden]`` (from :meth:`spatial`) and ``code [B,53]`` -> offsets ``[B,N,k]``."""
        if code.ndim != 2 or code.shape[1] != DEFORMATION_DIM:
            raise ValueError(f"deformation code must be [B,{DEFORMATION_DIM}], got {tuple(code.shape)}")
        per_frame = self.code_in(self.code_embed(code))  # [B,H]
        hidden = self.trunk(spatial.unsqueeze(0) + per_frame.unsqueeze(1))  # [B,N,H]
        out = self.head(hidden)  # [B,N,sum(offset_dims)]: 10, 14 or 15
        if self.appearance_basis is not None:
            frame_basis = torch.einsum("bj,jho->bho", code, self.appearance_basis)  # [B,H,5]
            linear = torch.einsum("nh,bho->bno", spatial, frame_basis)  # [B,N,5]
            out = torch.cat([out[..., :self.geometry_width], out[..., self.geometry_width:] + linear], dim=-1)
        offsets = dict(zip(self.offset_dims, out.split(list(self.offset_dims.values()), dim=-1)))
        if "opacities" in offsets:
            offsets["opacities"] = offsets["opacities"][..., 0]  # [B,N], like the opacities themselves
        return offsets
