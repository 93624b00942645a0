"""Backend choice and ``render_layers()``: layers of Gaussians + a camera -> composited colour, alpha, depth."""
from __future__ import annotations

import torch

from gaussian_renderer.compositing import composite, stack_in_order, to_frames
from gaussian_renderer.camera import Camera
from gaussian_renderer.layer import GaussianLayer
from gaussian_renderer.gsplat_backend import rasterize_gsplat
from gaussian_renderer.reference import rasterize_reference

BACKENDS = ("auto", "gsplat", "reference")


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"auto"`` -> ``"gsplat"`` for CUDA tensors, ``"reference"`` otherwise; others are checked."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown renderer backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "gsplat" if device.type == "cuda" else "reference"
    return backend


def _checked(layers: list[GaussianLayer] | GaussianLayer) -> list[GaussianLayer]:
    if isinstance(layers, GaussianLayer):
        layers = [layers]
    if not layers:
        raise ValueError("rendering needs at least one GaussianLayer")
    batch, device = layers[0].batch_size, layers[0].means.device
    for index, layer in enumerate(layers):
        if layer.batch_size != batch or layer.means.device != device:
            raise ValueError(f"layer {index} has batch {layer.batch_size} on {layer.means.device}; "
                             f"layer 0 has batch {batch} on {device}")
    return layers


def render_layers(layers: list[GaussianLayer] | GaussianLayer, camera: Camera,
                  background: torch.Tensor | None = None, backend: str = "auto") -> dict:
    """Rasterise each layer, then composite them front to back (in the order given) over ``background``.

    Returns ``color [B,H,W,3]``, ``alpha [B,H,W,1]``, ``depth [B,H,W,1]`` (see :func:`composite`),
    ``layers`` (per-layer dicts of ``color``/``alpha``/``depth``/``info`` before compositing) and
    ``backend`` (the one used). ``background`` is ``[B,H,W,3]``, ``[H,W,3]``, ``[3]`` or ``None`` (black).

        out = render_layers([face, mouth], camera, background=plate, backend="auto")
    """
    layers = _checked(layers)
    chosen = resolve_backend(backend, layers[0].means.device)
    rasterize = rasterize_gsplat if chosen == "gsplat" else rasterize_reference
    rendered = [rasterize(layer, camera) for layer in layers]
    out = composite(rendered, background)
    out["layers"] = rendered
    out["backend"] = chosen
    return out


def render_stacked(layers: list[GaussianLayer] | GaussianLayer, camera: Camera,
                   background: torch.Tensor | None = None, backend: str = "auto", *, packed: bool = False) -> dict:
    """The composite of :func:`render_layers` (front to back over ``background``) in one rasteriser pass over
    :func:`~gaussian_renderer.compositing.stack_in_order` of the layers: half the launches and host syncs of
    two passes, for inference. Returns ``color [B,H,W,3]``, ``alpha [B,H,W,1]`` and ``backend``; no depth or
    per-layer outputs (train with :func:`render_layers`). ``packed`` selects gsplat's packed mode.
    """
    rendered, chosen = _rasterize_stacked(layers, camera, backend, packed)
    layer = {"color": rendered["color"], "alpha": rendered["alpha"]}  # its depth would be of the scaled layers
    return {**composite([layer], background), "backend": chosen}


def render_stacked_frames(layers: list[GaussianLayer] | GaussianLayer, camera: Camera,
                          background: torch.Tensor | None = None, backend: str = "auto", *,
                          packed: bool = False) -> torch.Tensor:
    """:func:`render_stacked`'s colour as uint8 frames ``[B,H,W,3]``, composited and converted in one fused
    step (:func:`~gaussian_renderer.compositing.to_frames`): what synthesis shows, at the fewest launches."""
    rendered, _ = _rasterize_stacked(layers, camera, backend, packed)
    return to_frames(rendered["color"], rendered["alpha"], background)


def _rasterize_stacked(layers, camera: Camera, backend: str, packed: bool) -> tuple[dict, str]:
    layers = _checked(layers)
    chosen = resolve_backend(backend, layers[0].means.device)
    stacked = stack_in_order(layers, camera.near_plane)
    if chosen == "gsplat":
        return rasterize_gsplat(stacked, camera, packed=packed, with_depth=False), chosen
    return rasterize_reference(stacked, camera), chosen
