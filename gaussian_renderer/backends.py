"""Backend choice and ``render_layers()``: layers of Gaussians + a camera -> composited colour, alpha, depth."""
from __future__ import annotations

import torch

from gaussian_renderer.compositing import composite
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


def render_layers(layers: list[GaussianLayer] | GaussianLayer, camera: Camera,
           background: torch.Tensor | None = None, backend: str = "auto") -> dict:
    """Rasterise each layer, then composite them front to back (in the order given) over ``background``.

    Returns ``color [B,H,W,3]``, ``alpha [B,H,W,1]``, ``depth [B,H,W,1]`` (see :func:`composite`),
    ``layers`` (per-layer dicts of ``color``/``alpha``/``depth``/``info`` before compositing) and
    ``backend`` (the one used). ``background`` is ``[B,H,W,3]``, ``[H,W,3]``, ``[3]`` or ``None`` (black).

        out = render_layers([face, mouth], camera, background=plate, backend="auto")
    """
    if isinstance(layers, GaussianLayer):
        layers = [layers]
    if not layers:
        raise ValueError("render_layers needs at least one GaussianLayer")
    batch, device = layers[0].batch_size, layers[0].means.device
    for index, layer in enumerate(layers):
        if layer.batch_size != batch or layer.means.device != device:
            raise ValueError(f"layer {index} has batch {layer.batch_size} on {layer.means.device}; "
                             f"layer 0 has batch {batch} on {device}")
    chosen = resolve_backend(backend, device)
    rasterize = rasterize_gsplat if chosen == "gsplat" else rasterize_reference
    rendered = [rasterize(layer, camera) for layer in layers]
    out = composite(rendered, background)
    out["layers"] = rendered
    out["backend"] = chosen
    return out
