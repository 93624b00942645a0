"""Pure-PyTorch EWA splatting: differentiable, runs on any device, the parity oracle for gsplat.

It follows gsplat 1.5.3's default ("classic", pinhole) path step by step:

1. ``Sigma = R diag(s)^2 R^T``; the perspective Jacobian at the centre, with the centre's x/z and y/z clamped
   to 1.3x the field of view as gsplat does, gives ``Sigma2d = J Sigma J^T + 0.3 I`` (the 0.3 px low-pass).
2. Culling: centre depth ``z <= near_plane``, opacity below 1/255, or a footprint that misses the image.
   The footprint is gsplat's opacity-aware box, half-width ``ceil(e * sqrt(Sigma2d_ii))`` with
   ``e = min(3.33, sqrt(2 ln(255 * opacity)))``; it contains every pixel where the Gaussian passes the
   1/255 alpha threshold, so culling by it changes no pixel.
3. Per pixel centre ``p`` (``(j+0.5, i+0.5)``): ``alpha = min(0.999, opacity * exp(-0.5 d^T Sigma2d^-1 d))``
   with ``d = p - mean2d``, skipped below 1/255; Gaussians composited front to back by centre depth,
   ``w_k = alpha_k prod_{j<k}(1 - alpha_j)``; a pixel stops (exclusively) at the Gaussian that would take
   its transmittance to 1e-4 or below.
4. Outputs per image: ``color = sum w_k c_k`` (premultiplied, no background), ``alpha = sum w_k``,
   ``depth = sum w_k z_k / max(alpha, 1e-10)`` (gsplat's "ED": expected camera-space z of what is seen).

gsplat clamps alpha at 0.999 (``RasterizeToPixels3DGSFwd.cu``), not the 0.99 of the original 3DGS code;
parity with the fused backend decides, so 0.999 it is.

Speed: pixels are grouped into 4x4 tiles; each tile evaluates, densely, only the Gaussians whose footprint
touches it, in depth order. Tiles with similar Gaussian counts share one padded batch (``_tile_lists``), at
most ``max_elements`` pixel x slot pairs each, which bounds the largest intermediate at any resolution
(with gradients on, two such tensors per group are kept for the backward). Within a tile the
exponent is a quadratic in tile-local pixel coordinates, so one batched matmul gives every pixel x Gaussian
log-alpha, and :class:`AlphaBlend` blends with a hand-written backward (autograd handles the rest).
"""
from __future__ import annotations

import math

import torch

from gaussian_renderer.camera import Camera
from gaussian_renderer.layer import GaussianLayer, covariance_3d

LOW_PASS = 0.3  # px^2 added to the 2D covariance (gsplat's eps2d)
ALPHA_MAX = 0.999
ALPHA_MIN = 1.0 / 255.0
TRANSMITTANCE_MIN = 1e-4
MAX_EXTEND = 3.33  # footprint half-width in standard deviations (gsplat)
FOV_CLAMP = 1.3  # the Jacobian's x/z, y/z are clamped to 1.3x the half field of view (gsplat)


def project_gaussians(layer: GaussianLayer, camera: Camera) -> dict[str, torch.Tensor]:
    """EWA projection of a layer into the image.

    Returns ``means2d [B,N,2]`` (pixels), ``conics [B,N,3]`` (upper triangle a, b, c of ``Sigma2d^-1``),
    ``depths [B,N]`` (camera z), ``radii [B,N,2]`` (int32 footprint half-widths, 0 = culled) and
    ``opacities [B,N]``.
    """
    means, dtype = layer.means, layer.means.dtype
    x, y, z = means.unbind(-1)  # each [B,N]
    # Keep the Jacobian finite for culled Gaussians behind the camera; they are masked out below.
    safe_z = torch.where(z > camera.near_plane, z, torch.ones_like(z))
    tan_half_x = 0.5 * camera.width / camera.fx
    tan_half_y = 0.5 * camera.height / camera.fy
    lim_x_pos = (camera.width - camera.cx) / camera.fx + (FOV_CLAMP - 1.0) * tan_half_x
    lim_x_neg = camera.cx / camera.fx + (FOV_CLAMP - 1.0) * tan_half_x
    lim_y_pos = (camera.height - camera.cy) / camera.fy + (FOV_CLAMP - 1.0) * tan_half_y
    lim_y_neg = camera.cy / camera.fy + (FOV_CLAMP - 1.0) * tan_half_y
    x_over_z = torch.clamp(x / safe_z, -lim_x_neg, lim_x_pos)
    y_over_z = torch.clamp(y / safe_z, -lim_y_neg, lim_y_pos)

    zeros = torch.zeros_like(z)
    jacobian = torch.stack([
        camera.fx / safe_z, zeros, -camera.fx * x_over_z / safe_z,
        zeros, camera.fy / safe_z, -camera.fy * y_over_z / safe_z,
    ], -1).reshape(z.shape + (2, 3))  # [B,N,2,3]
    cov2d = jacobian @ covariance_3d(layer.quats, layer.scales) @ jacobian.transpose(-1, -2)  # [B,N,2,2]
    cov_xx = cov2d[..., 0, 0] + LOW_PASS
    cov_yy = cov2d[..., 1, 1] + LOW_PASS
    cov_xy = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    det = cov_xx * cov_yy - cov_xy * cov_xy
    safe_det = det.clamp(min=1e-10)
    conics = torch.stack([cov_yy / safe_det, -cov_xy / safe_det, cov_xx / safe_det], -1)  # [B,N,3]
    means2d = torch.stack([camera.fx * x / safe_z + camera.cx, camera.fy * y / safe_z + camera.cy], -1)

    with torch.no_grad():
        opacity = layer.opacities.detach()
        extend = torch.sqrt(2.0 * torch.log((opacity / ALPHA_MIN).clamp(min=1.0))).clamp(max=MAX_EXTEND)
        radii = torch.stack([torch.ceil(extend * cov_xx.sqrt()), torch.ceil(extend * cov_yy.sqrt())], -1)
        centre = means2d.detach()
        visible = ((z > camera.near_plane) & (det > 0) & (opacity >= ALPHA_MIN)
                   & (centre[..., 0] + radii[..., 0] > 0) & (centre[..., 0] - radii[..., 0] < camera.width)
                   & (centre[..., 1] + radii[..., 1] > 0) & (centre[..., 1] - radii[..., 1] < camera.height))
        radii = torch.where(visible[..., None], radii, torch.zeros_like(radii)).to(torch.int32)
    return {"means2d": means2d, "conics": conics, "depths": z.to(dtype), "radii": radii,
            "opacities": layer.opacities}


def rasterize_reference(layer: GaussianLayer, camera: Camera, *, tile_size: int = 4) -> dict:
    """Render one layer without a background.

    Returns ``color [B,H,W,C]`` (premultiplied), ``alpha [B,H,W,1]``, ``depth [B,H,W,1]`` and ``info``
    (``means2d [B,N,2]`` with ``retain_grad`` when it requires grad, ``radii [B,N,2]``, ``depths``,
    ``width``, ``height``, ``n_cameras``, ``gaussian_ids=None``, ``packed=False``): the fields gsplat's
    ``DefaultStrategy`` reads, with the batch in the role of cameras.
    """
    projected = project_gaussians(layer, camera)
    means2d = projected["means2d"]
    if means2d.requires_grad:
        means2d.retain_grad()
    batch, count = means2d.shape[:2]
    channels = layer.colors.shape[-1]
    tiles_x, tiles_y = math.ceil(camera.width / tile_size), math.ceil(camera.height / tile_size)
    num_tiles = tiles_x * tiles_y

    tile_lists = _tile_lists(projected, tile_size, tiles_x, tiles_y)
    # Tile-local pixel-centre features [P,6]: (u^2, v^2, uv, u, v, 1) about the tile centre.
    local = torch.arange(tile_size, device=means2d.device, dtype=means2d.dtype) + 0.5 - 0.5 * tile_size
    v, u = torch.meshgrid(local, local, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    pixel_features = torch.stack([u * u, v * v, u * v, u, v, torch.ones_like(u)], -1)  # [P,6]

    # Per Gaussian (flattened over the batch), gathered once per tile group:
    # [mean2d x, y | conic a, b, c | log opacity | colour C | depth]  -> [B*N, 7+C]
    log_opacity = torch.log(layer.opacities.clamp(min=1e-12))[..., None]
    per_gaussian = torch.cat([means2d, projected["conics"], log_opacity, layer.colors,
                              projected["depths"][..., None]], -1).reshape(batch * count, 7 + channels)
    tile_index = torch.arange(num_tiles, device=means2d.device)
    tile_centre = (torch.stack([tile_index % tiles_x, tile_index // tiles_x], -1).to(means2d.dtype) * tile_size
                   + 0.5 * tile_size)  # [T,2]

    # Every (tile, slot) of every group at once: [S] flat slots, so the per-slot algebra below is a fixed
    # number of autograd ops however many groups there are.
    slot_ids = torch.cat([ids.reshape(-1) for _, ids, _ in tile_lists]) if tile_lists else \
        torch.zeros(0, dtype=torch.long, device=means2d.device)
    slot_valid = torch.cat([valid.reshape(-1) for _, _, valid in tile_lists]) if tile_lists else \
        torch.zeros(0, dtype=torch.bool, device=means2d.device)
    slot_tile = torch.cat([(items % num_tiles)[:, None].expand_as(ids).reshape(-1) for items, ids, _ in tile_lists]) \
        if tile_lists else torch.zeros(0, dtype=torch.long, device=means2d.device)
    gathered = per_gaussian[slot_ids]  # [S,7+C]
    offset = gathered[:, 0:2] - tile_centre[slot_tile]  # Gaussian centre - tile centre, [S,2]
    mx, my = offset[:, 0], offset[:, 1]
    a, b, c = gathered[:, 2], gathered[:, 3], gathered[:, 4]
    # log alpha at tile pixel (u,v) = log(o) - sigma(u - mx, v - my), expanded as a quadratic in (u,v) so
    # one batched matmul per group evaluates every pixel x Gaussian pair of its tiles.
    constant = gathered[:, 5] - (0.5 * a * mx * mx + 0.5 * c * my * my + b * mx * my)
    constant = torch.where(slot_valid, constant, torch.full_like(constant, -1e4))
    coefficients = torch.stack([-0.5 * a, -0.5 * c, -b, a * mx + b * my, c * my + b * mx, constant], 1)  # [S,6]
    carried = gathered[:, 6:]  # colour and depth, [S,C+1]

    done_items, done_values, begin = [], [], 0
    for items, ids, _ in tile_lists:
        # items [I] = b*T + tile; ids [I,K] flat Gaussian ids front to back.
        end = begin + ids.numel()
        group_coefficients = coefficients[begin:end].reshape(ids.shape + (6,)).transpose(1, 2)  # [I,6,K]
        group_carried = carried[begin:end].reshape(ids.shape + (channels + 1,))  # [I,K,C+1]
        done_items.append(items)
        done_values.append(AlphaBlend.apply(pixel_features @ group_coefficients, group_carried))  # [I,P,C+2]
        begin = end

    outputs = torch.zeros(batch * num_tiles, tile_size * tile_size, channels + 2,
                          device=means2d.device, dtype=means2d.dtype)
    if done_items:  # tiles no Gaussian touches stay empty
        outputs = outputs.index_copy(0, torch.cat(done_items), torch.cat(done_values))
    image = outputs.reshape(batch, tiles_y, tiles_x, tile_size, tile_size, channels + 2)
    image = image.permute(0, 1, 3, 2, 4, 5).reshape(batch, tiles_y * tile_size, tiles_x * tile_size, channels + 2)
    image = image[:, :camera.height, :camera.width]
    alpha_image = image[..., channels + 1:]
    depth = image[..., channels:channels + 1] / alpha_image.clamp(min=1e-10)
    info = {"means2d": means2d, "radii": projected["radii"], "depths": projected["depths"],
            "conics": projected["conics"], "width": camera.width, "height": camera.height,
            "n_cameras": batch, "gaussian_ids": None, "packed": False}
    return {"color": image[..., :channels], "alpha": alpha_image, "depth": depth, "info": info}


class AlphaBlend(torch.autograd.Function):
    """Front-to-back blending of one tile group, with a hand-written backward.

    ``log_alpha [I,P,K]`` (log of opacity x Gaussian falloff per pixel and depth-sorted slot) and
    ``features [I,K,F]`` -> ``[I,P,F+1]``: ``sum_k w_k features_k`` and the coverage ``sum_k w_k``, with
    ``w_k = alpha_k T_k``, ``alpha = min(0.999, exp(log_alpha))`` (dropped below 1/255) and the pixel
    stopping before the Gaussian that would take ``T`` to 1e-4. The backward is gsplat's: with
    ``G_k = dL/dw_k``, ``dL/dalpha_k = T_k G_k - (sum_{j>k} w_j G_j) / (1 - alpha_k)``; it needs two saved
    ``[I,P,K]`` tensors and no flips, where autograd through ``cumsum`` keeps a dozen.
    """

    @staticmethod
    def forward(ctx, log_alpha: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        # In-place where possible: these [I,P,K] tensors dominate time and memory.
        alpha = log_alpha.exp()
        differentiable = (alpha >= ALPHA_MIN) & (alpha <= ALPHA_MAX)  # the clamp has no gradient
        alpha.clamp_(max=ALPHA_MAX).masked_fill_(alpha < ALPHA_MIN, 0.0)
        log_transmit = torch.log1p(-alpha)
        log_after = torch.cumsum(log_transmit, -1)  # log T after each Gaussian
        alive = log_after > math.log(TRANSMITTANCE_MIN)  # a prefix: the pixel has not stopped yet
        alpha.mul_(alive)  # Gaussians after the stop are absent
        transmit = log_after.sub_(log_transmit).exp_()  # T_k, before Gaussian k
        with_coverage = torch.cat([features, torch.ones_like(features[..., :1])], -1)  # [I,K,F+1]
        ctx.save_for_backward(alpha, transmit, with_coverage, differentiable.logical_and_(alive))
        return (alpha * transmit) @ with_coverage

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        alpha, transmit, with_coverage, differentiable = ctx.saved_tensors
        weights = alpha * transmit
        grad_weights = grad_output @ with_coverage.transpose(-1, -2)  # dL/dw_k, [I,P,K]
        grad_features = (weights.transpose(-1, -2) @ grad_output)[..., :-1]  # [I,K,F]
        weighted = weights.mul_(grad_weights)
        behind = torch.cumsum(weighted, -1).neg_().add_(weighted.sum(-1, keepdim=True))  # sum over j > k
        grad_alpha = grad_weights.mul_(transmit).sub_(behind.div_(1 - alpha))
        return grad_alpha.mul_(alpha).mul_(differentiable), grad_features


def _reaches_tile(centre, conic, opacity, tile_col, tile_row, tile_size: int) -> torch.Tensor:
    """Per (Gaussian, tile) pair: can ``opacity * exp(-sigma)`` reach 1/255 at a pixel centre of the tile?

    ``sigma(d) = 0.5 (a dx^2 + 2 b dx dy + c dy^2)`` is convex, so its minimum over the rectangle spanned by
    the tile's pixel centres is 0 when the Gaussian's centre lies inside, and otherwise lies on an edge,
    where it is a 1D quadratic minimised in closed form. All inputs are ``[M,...]`` pair tensors.
    """
    a, b, c = conic.unbind(-1)
    low_x = tile_col.to(centre.dtype) * tile_size + 0.5 - centre[:, 0]  # rectangle relative to the centre
    low_y = tile_row.to(centre.dtype) * tile_size + 0.5 - centre[:, 1]
    high_x, high_y = low_x + (tile_size - 1), low_y + (tile_size - 1)

    def sigma(dx, dy):
        return 0.5 * (a * dx * dx + 2 * b * dx * dy + c * dy * dy)

    inside = (low_x <= 0) & (high_x >= 0) & (low_y <= 0) & (high_y >= 0)
    lowest = torch.full_like(a, float("inf"))
    for edge_x in (low_x, high_x):  # vertical edges: best dy = -b dx / c, clamped to the edge
        lowest = torch.minimum(lowest, sigma(edge_x, torch.minimum(torch.maximum(-b * edge_x / c, low_y), high_y)))
    for edge_y in (low_y, high_y):  # horizontal edges: best dx = -b dy / a
        lowest = torch.minimum(lowest, sigma(torch.minimum(torch.maximum(-b * edge_y / a, low_x), high_x), edge_y))
    # A small margin keeps rounding from dropping a pair that a pixel does reach.
    return inside | (lowest <= torch.log(opacity / ALPHA_MIN) + 1e-3)


@torch.no_grad()
def _tile_lists(projected: dict, tile_size: int, tiles_x: int, tiles_y: int, *,
                max_elements: int = 1 << 21, waste: float = 0.5):
    """Which Gaussians each tile evaluates, front to back, grouped into padded work lists.

    A Gaussian touches tiles ``[floor((m - r)/t), ceil((m + r)/t))`` per axis (gsplat's rule). Returns a
    list of ``(items [I], slot_ids [I,K], slot_valid [I,K])``: ``items`` are ``b*T + tile``, ``slot_ids``
    flat ``b*N + n`` Gaussian ids in depth order. Tiles with similar counts share a group (a group's
    smallest count is at least ``waste`` times its largest) so padding stays small, and a group holds at
    most ``max_elements`` pixel x slot pairs.
    """
    means2d, radii, depths = projected["means2d"].detach(), projected["radii"], projected["depths"].detach()
    batch, count = depths.shape
    device = depths.device
    num_tiles = tiles_x * tiles_y
    pixels = tile_size * tile_size
    order = torch.argsort(depths, dim=1, stable=True)  # [B,N] front to back
    flat_order = (order + torch.arange(batch, device=device)[:, None] * count).reshape(-1)  # [B*N]
    centre = means2d.reshape(-1, 2)[flat_order]
    radius = radii.reshape(-1, 2)[flat_order].to(centre.dtype)
    limits = torch.tensor([tiles_x, tiles_y], device=device)
    low = torch.floor((centre - radius) / tile_size).long().clamp(min=0)
    high = torch.minimum(torch.ceil((centre + radius) / tile_size).long(), limits)
    span = (high - low).clamp(min=0) * (radius > 0).all(-1, keepdim=True)  # [B*N,2]
    tiles_per_gaussian = span[:, 0] * span[:, 1]
    total = int(tiles_per_gaussian.sum())
    if total == 0:
        return []
    # Enumerate (Gaussian, tile) pairs; Gaussians are already in batch-then-depth order.
    pair_gaussian = torch.repeat_interleave(torch.arange(batch * count, device=device), tiles_per_gaussian)
    first_pair = torch.cumsum(tiles_per_gaussian, 0) - tiles_per_gaussian
    within = torch.arange(total, device=device) - first_pair[pair_gaussian]
    width = span[pair_gaussian, 0]
    tile_col = low[pair_gaussian, 0] + within % width
    tile_row = low[pair_gaussian, 1] + within // width
    # Drop pairs where the Gaussian stays below the 1/255 alpha threshold at every pixel centre of the tile
    # (the box is loose for round and much looser for elongated footprints): changes no pixel.
    conic = projected["conics"].detach().reshape(-1, 3)[flat_order]
    opacity = projected["opacities"].detach().reshape(-1)[flat_order]
    reaches = _reaches_tile(centre[pair_gaussian], conic[pair_gaussian], opacity[pair_gaussian],
                            tile_col, tile_row, tile_size)
    pair_gaussian, tile_col, tile_row = pair_gaussian[reaches], tile_col[reaches], tile_row[reaches]
    total = len(pair_gaussian)
    if total == 0:
        return []
    pair_batch = pair_gaussian // count
    pair_item = pair_batch * num_tiles + tile_row * tiles_x + tile_col
    by_item = torch.argsort(pair_item, stable=True)  # keeps depth order inside each tile
    sorted_gaussian = flat_order[pair_gaussian[by_item]]
    per_item = torch.bincount(pair_item, minlength=batch * num_tiles)
    item_start = torch.cumsum(per_item, 0) - per_item

    busy_items = torch.argsort(per_item, descending=True)
    busy_items = busy_items[per_item[busy_items] > 0]
    counts = per_item[busy_items].tolist()
    groups, begin = [], 0
    while begin < len(counts):
        slots = counts[begin]
        end = begin + 1
        while (end < len(counts) and counts[end] >= waste * slots
               and (end + 1 - begin) * pixels * slots <= max_elements):
            end += 1
        items = busy_items[begin:end]
        slot = torch.arange(slots, device=device)
        slot_valid = slot < per_item[items, None]
        source = (item_start[items, None] + slot).clamp(max=total - 1)
        groups.append((items, sorted_gaussian[source], slot_valid))
        begin = end
    return groups
