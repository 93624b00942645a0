"""gsplat's fused CUDA rasteriser behind the same per-layer contract as the reference backend."""
from __future__ import annotations

import functools

import torch

from gaussian_renderer.camera import Camera
from gaussian_renderer.layer import GaussianLayer
from gaussian_renderer.reference import LOW_PASS


@functools.lru_cache(maxsize=None)
def _intrinsics_on(camera: Camera, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Built once per camera and device: a host-to-GPU copy (and sync) per layer per render would stall launches.
    return camera.intrinsics(device, dtype)


@functools.lru_cache(maxsize=None)
def _identity_view_on(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Camera space is the world here; built once, not one torch.eye launch per render (gsplat only reads it).
    return torch.eye(4, device=device, dtype=dtype)


def rasterize_gsplat(layer: GaussianLayer, camera: Camera, *, packed: bool = True, with_depth: bool = True) -> dict:
    """Render one layer with ``gsplat.rasterization`` (CUDA tensors only), no background.

    Returns ``color [B,H,W,C]`` (premultiplied), ``alpha [B,H,W,1]``, ``depth [B,H,W,1]`` (gsplat's
    expected depth, "ED"; absent with ``with_depth=False``) and ``info``: gsplat's meta dict (``means2d``,
    ``radii``, ``gaussian_ids``, ``width``, ``height``, ``n_cameras``, ...) plus ``packed``; pass it to
    ``DefaultStrategy`` with ``packed=info["packed"]``. Packed mode keeps ``gaussian_ids`` local to each
    batch element's N; unpacked mode skips the compaction (one fewer host sync).
    """
    if not layer.means.is_cuda:
        raise RuntimeError("backend='gsplat' needs CUDA tensors; use backend='reference' (or 'auto') on CPU")
    from gsplat import rasterization

    batch = layer.batch_size
    # Camera space is the world here: identity view matrices, one camera per batch element.
    viewmats = _identity_view_on(layer.means.device, layer.means.dtype).expand(batch, 1, 4, 4)
    intrinsics = _intrinsics_on(camera, layer.means.device, layer.means.dtype).expand(batch, 1, 3, 3)
    rendered, alphas, info = rasterization(
        means=layer.means, quats=layer.quats, scales=layer.scales, opacities=layer.opacities,
        colors=layer.colors, viewmats=viewmats, Ks=intrinsics, width=camera.width, height=camera.height,
        near_plane=camera.near_plane, eps2d=LOW_PASS, packed=packed,
        render_mode="RGB+ED" if with_depth else "RGB", rasterize_mode="classic",
    )  # rendered [B,1,H,W,C(+1)], alphas [B,1,H,W,1]
    info = dict(info)
    info["packed"] = packed
    # gsplat counts cameras per batch element (1 here); the loss is averaged over the B frames, so B plays
    # the role of cameras when the strategy rescales means2d gradients (as in the reference backend).
    info["n_cameras"] = batch
    out = {"color": rendered[:, 0, ..., :layer.colors.shape[-1]], "alpha": alphas[:, 0], "info": info}
    if with_depth:
        out["depth"] = rendered[:, 0, ..., -1:]
    return out
