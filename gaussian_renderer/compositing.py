"""The one alpha-compositing rule: rendered layers front to back, then the background — and the same rule
in a single rasteriser pass (:func:`stack_in_order`)."""
from __future__ import annotations

import torch

from gaussian_renderer.layer import GaussianLayer

DEPTH_MARGIN = 1.01  # each stacked layer starts this factor behind the farthest Gaussian in front of it


def composite(layers: list[dict], background: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Stack rendered layers in the order given (first = front) over ``background``.

    Each layer is a dict with ``color [B,H,W,3]`` premultiplied by its own coverage (what a rasteriser
    accumulates without a background), ``alpha [B,H,W,1]`` and ``depth [B,H,W,1]`` (expected camera z
    of that layer). With ``T_l = prod_{m<l} (1 - alpha_m)`` the light left in front of layer ``l``:

        color = sum_l T_l color_l + T_L background
        alpha = 1 - T_L
        depth = sum_l T_l alpha_l depth_l / max(alpha, 1e-10)

    so a front layer occludes the ones behind it whatever their z (the face hides the mouth interior),
    and ``depth`` is the coverage-weighted depth of what is seen (only when every layer has one).
    ``background`` is ``[B,H,W,3]``, ``[H,W,3]``, ``[3]`` or ``None`` (black).
    """
    if not layers:
        raise ValueError("composite needs at least one layer")
    transmittance = torch.ones_like(layers[0]["alpha"])  # [B,H,W,1]
    color = torch.zeros_like(layers[0]["color"])
    depth_sum = torch.zeros_like(layers[0]["alpha"])
    with_depth = all("depth" in layer for layer in layers)
    for index, layer in enumerate(layers):
        if layer["color"].shape != color.shape or layer["alpha"].shape != transmittance.shape:
            raise ValueError(f"layer {index} is {tuple(layer['color'].shape)}/{tuple(layer['alpha'].shape)}, "
                             f"layer 0 is {tuple(color.shape)}/{tuple(transmittance.shape)}")
        color = color + transmittance * layer["color"]
        if with_depth:
            depth_sum = depth_sum + transmittance * layer["alpha"] * layer["depth"]
        transmittance = transmittance * (1.0 - layer["alpha"])
    if background is not None:
        background = background.to(device=color.device, dtype=color.dtype)
        if background.shape[-1] != color.shape[-1] or background.dim() not in (1, 3, 4):
            raise ValueError(f"background must be [B,H,W,{color.shape[-1]}], [H,W,{color.shape[-1]}] or "
                             f"[{color.shape[-1]}], got {tuple(background.shape)}")
        if background.dim() >= 3 and tuple(background.shape[-3:-1]) != tuple(color.shape[1:3]):
            raise ValueError(f"background is {tuple(background.shape)}, the image is {tuple(color.shape[1:3])}")
        color = color + transmittance * background
    alpha = 1.0 - transmittance
    out = {"color": color, "alpha": alpha}
    if with_depth:
        out["depth"] = depth_sum / alpha.clamp(min=1e-10)
    return out


def to_frames(color: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor | None = None) -> torch.Tensor:
    """One rendered layer ``color [B,H,W,3]`` (premultiplied) and ``alpha [B,H,W,1]`` over ``background`` (as
    in :func:`composite`) straight to uint8 frames ``[B,H,W,3]``: ``round(255 · clamp(color + (1 − alpha) ·
    background, 0, 1))``. Six element-wise kernels where :func:`composite` and the conversion take fourteen:
    at batch 1 a frame's render is bound by launches, not arithmetic."""
    if background is None:
        out = color.clamp(0, 1)
    else:
        background = background.to(device=color.device, dtype=color.dtype)
        out = torch.addcmul(color, alpha - 1, background, value=-1).clamp_(0, 1)  # color + (1 - alpha) * bg
    return out.mul_(255).add_(0.5).to(torch.uint8)


def stack_in_order(layers: list[GaussianLayer], near_plane: float) -> GaussianLayer:
    """One layer that a depth-sorting rasteriser composites like :func:`composite` of the layers rendered
    one by one (first = front), up to the early stop at transmittance 1e-4.

    Each layer after the first is scaled about the camera centre — means and scales times ``k`` per batch
    element — until all of it lies behind everything in front of it. Scaling about the centre of projection
    changes no projected mean (x/z, y/z), no 2D covariance (J scales by 1/k, Sigma by k^2) and no footprint,
    only the depth order, so one pass draws layer 0, then layer 1 through what layer 0 leaves, and so on.
    Gaussians a separate pass would cull at the near plane get opacity 0. Depths of the result are scaled:
    render colour and alpha from it, not depth.
    """
    if not layers:
        raise ValueError("stack_in_order needs at least one layer")
    if len(layers) == 1:
        return layers[0]
    parts = [layers[0]]
    farthest = layers[0].means[..., 2].amax(dim=1, keepdim=True)  # [B,1]
    for layer in layers[1:]:
        depth = layer.means[..., 2]  # [B,N]
        visible = depth > near_plane
        nearest = torch.where(visible, depth, torch.full_like(depth, float("inf"))).amin(dim=1, keepdim=True)
        factor = (DEPTH_MARGIN * farthest / nearest).clamp(min=1.0, max=1e6).nan_to_num(1.0)[..., None]  # [B,1,1]
        parts.append(GaussianLayer(means=layer.means * factor, quats=layer.quats, scales=layer.scales * factor,
                                   opacities=layer.opacities * visible, colors=layer.colors))
        farthest = (depth * factor[..., 0]).amax(dim=1, keepdim=True)
    return GaussianLayer(**{key: torch.cat([getattr(part, key) for part in parts], dim=1)
                            for key in ("means", "quats", "scales", "opacities", "colors")})
