"""The one alpha-compositing rule: rendered layers front to back, then the background."""
from __future__ import annotations

import torch


def composite(layers: list[dict], background: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Stack rendered layers in the order given (first = front) over ``background``.

    Each layer is a dict with ``color [B,H,W,3]`` premultiplied by its own coverage (what a rasteriser
    accumulates without a background), ``alpha [B,H,W,1]`` and ``depth [B,H,W,1]`` (expected camera z
    of that layer). With ``T_l = prod_{m<l} (1 - alpha_m)`` the light left in front of layer ``l``:

        color = sum_l T_l color_l + T_L background
        alpha = 1 - T_L
        depth = sum_l T_l alpha_l depth_l / max(alpha, 1e-10)

    so a front layer occludes the ones behind it whatever their z (the face hides the mouth interior),
    and ``depth`` is the coverage-weighted depth of what is seen. ``background`` is ``[B,H,W,3]``,
    ``[H,W,3]``, ``[3]`` or ``None`` (black).
    """
    if not layers:
        raise ValueError("composite needs at least one layer")
    transmittance = torch.ones_like(layers[0]["alpha"])  # [B,H,W,1]
    color = torch.zeros_like(layers[0]["color"])
    depth_sum = torch.zeros_like(layers[0]["alpha"])
    for index, layer in enumerate(layers):
        if layer["color"].shape != color.shape or layer["alpha"].shape != transmittance.shape:
            raise ValueError(f"layer {index} is {tuple(layer['color'].shape)}/{tuple(layer['alpha'].shape)}, "
                             f"layer 0 is {tuple(color.shape)}/{tuple(transmittance.shape)}")
        color = color + transmittance * layer["color"]
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
    return {"color": color, "alpha": alpha, "depth": depth_sum / alpha.clamp(min=1e-10)}
