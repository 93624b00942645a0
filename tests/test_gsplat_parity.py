"""gsplat (CUDA) against the pure-PyTorch reference: images and gradients on random scenes.

Run on a GPU machine: ``PYTHONPATH=. python -m pytest -q -m gpu tests/test_gsplat_parity.py``.

Tolerances, and why (measured with ``benchmarks/parity_diagnostics.py`` on an H100, 2026-11-21):
* Almost every pixel agrees to float32 rounding: mean absolute colour difference 3.9e-5 and 5.4e-5, 99th
  percentile <= 1.4e-3, for the two seeds.
* 0.1-0.4% of pixels differ by more than one 8-bit level (max 0.034 colour, 0.039 alpha). They form short
  strips along the last one or two pixel columns of gsplat's 16-px tiles, where gsplat has *less* coverage
  than the reference: its tile assignment drops the edge of a footprint that the per-pixel reference keeps.
  The test bounds that fraction (0.6%) and the size (0.05) rather than hiding it; a convention mismatch
  (low-pass, pixel centre, clamp, ordering) moves most pixels and fails the mean bound at once.
* Gradients sum many per-pixel terms in different orders (gsplat reduces per warp, back to front), so
  they are compared per parameter by relative L2 error (< 2%) and cosine similarity (> 0.999), not
  element by element.
"""
import pytest
import torch

from gaussian_renderer import (Camera, GaussianLayer, rasterize_gsplat, rasterize_reference, render_layers,
                               render_stacked)

pytestmark = pytest.mark.gpu
PARAMETERS = ("means", "quats", "scales", "opacities", "colors")


def random_scene(batch: int, count: int, seed: int, device) -> GaussianLayer:
    """Gaussians on and around a head-sized ellipsoid ~0.55 m in front of the camera, some overlapping."""
    generator = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(batch, count, 3, generator=generator), dim=-1)
    means = direction * torch.tensor([0.09, 0.12, 0.1]) + torch.tensor([0.0, 0.0, 0.55])
    means = means + 0.01 * torch.randn(batch, count, 3, generator=generator)
    tensors = dict(
        means=means,
        quats=torch.randn(batch, count, 4, generator=generator),
        scales=torch.exp(torch.empty(batch, count, 3).uniform_(-6.5, -4.0, generator=generator)),
        opacities=torch.rand(batch, count, generator=generator) * 0.95 + 0.02,
        colors=torch.rand(batch, count, 3, generator=generator))
    return GaussianLayer(**{k: v.to(device).requires_grad_(True) for k, v in tensors.items()})


def detached_copy(layer: GaussianLayer) -> GaussianLayer:
    return GaussianLayer(**{k: getattr(layer, k).detach().clone().requires_grad_(True) for k in PARAMETERS})


CAMERA = Camera(width=160, height=128, fx=200.0, fy=200.0, cx=80.0, cy=64.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_images_match(seed):
    layer = random_scene(2, 3000, seed, "cuda")
    with torch.no_grad():
        fused = rasterize_gsplat(layer, CAMERA)
        reference = rasterize_reference(layer, CAMERA)
    for key in ("color", "alpha"):
        difference = (fused[key] - reference[key]).abs().amax(-1)  # [B,H,W]
        off_by_a_level = (difference > 1 / 255).float().mean().item()
        assert difference.mean() < 1e-4, (key, difference.mean().item())
        assert off_by_a_level < 6e-3, (key, off_by_a_level)  # tile-edge strips, see the module docstring
        assert difference.max() < 0.05, (key, difference.max().item())
    # Expected depth divides by alpha: where coverage is high, one threshold flip (weight <= 1/255) moves
    # it by at most ~(1/255) x (depth spread ~0.2 m) / 0.5.
    covered = reference["alpha"] > 0.5
    depth_error = (fused["depth"] - reference["depth"]).abs()[covered]
    assert depth_error.mean() < 2e-5 and depth_error.max() < 5e-3, depth_error.max().item()
    assert reference["alpha"].mean() > 0.1  # the scene covers a good part of the image


def test_gradients_match():
    fused_layer = random_scene(2, 2000, 7, "cuda")
    reference_layer = detached_copy(fused_layer)
    generator = torch.Generator(device="cuda").manual_seed(3)
    color_weights = torch.rand(2, CAMERA.height, CAMERA.width, 3, device="cuda", generator=generator)
    depth_weights = torch.rand(2, CAMERA.height, CAMERA.width, 1, device="cuda", generator=generator)
    for layer, rasterize in ((fused_layer, rasterize_gsplat), (reference_layer, rasterize_reference)):
        out = rasterize(layer, CAMERA)
        loss = (out["color"] * color_weights).sum() + (out["alpha"] * out["depth"] * depth_weights).sum()
        loss.backward()
    for name in PARAMETERS:
        fused_grad = getattr(fused_layer, name).grad
        reference_grad = getattr(reference_layer, name).grad
        assert torch.isfinite(fused_grad).all() and torch.isfinite(reference_grad).all(), name
        relative = (fused_grad - reference_grad).norm() / reference_grad.norm()
        cosine = torch.nn.functional.cosine_similarity(fused_grad.flatten(), reference_grad.flatten(), dim=0)
        assert relative < 2e-2 and cosine > 0.999, (name, relative.item(), cosine.item())


def test_auto_picks_gsplat_on_cuda_and_exposes_strategy_info():
    face, mouth = random_scene(2, 500, 1, "cuda"), random_scene(2, 200, 2, "cuda")
    out = render_layers([face, mouth], CAMERA, background=torch.zeros(3, device="cuda"), backend="auto")
    assert out["backend"] == "gsplat"
    assert out["color"].shape == (2, CAMERA.height, CAMERA.width, 3) and out["color"].is_cuda
    info = out["layers"][0]["info"]
    assert info["packed"] and info["gaussian_ids"] is not None and info["n_cameras"] == 2
    info["means2d"].retain_grad()
    out["color"].sum().backward()
    assert info["means2d"].grad is not None and info["means2d"].grad.abs().sum() > 0


def test_reference_runs_on_cuda_like_on_cpu():
    layer = random_scene(1, 800, 4, "cuda")
    with torch.no_grad():
        on_gpu = rasterize_reference(layer, CAMERA)
        cpu_layer = GaussianLayer(**{k: getattr(layer, k).detach().cpu() for k in PARAMETERS})
        on_cpu = rasterize_reference(cpu_layer, CAMERA)
    torch.testing.assert_close(on_gpu["color"].cpu(), on_cpu["color"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("packed", [False, True])
def test_one_stacked_gsplat_pass_matches_the_two_layer_reference_composite(packed):
    # A "mouth" layer nearer the camera than the face but listed behind it: one pass must keep the order.
    face = random_scene(2, 3000, 11, "cuda")
    mouth = random_scene(2, 600, 12, "cuda")
    mouth = GaussianLayer(means=(mouth.means - torch.tensor([0.0, 0.0, 0.55], device="cuda")) * 0.3
                          + torch.tensor([0.0, 0.02, 0.5], device="cuda"),
                          quats=mouth.quats, scales=mouth.scales * 0.3, opacities=mouth.opacities, colors=mouth.colors)
    generator = torch.Generator("cuda").manual_seed(0)
    background = torch.rand(CAMERA.height, CAMERA.width, 3, device="cuda", generator=generator)
    with torch.no_grad():
        single = render_stacked([face, mouth], CAMERA, background=background, backend="gsplat", packed=packed)
        two_gsplat = render_layers([face, mouth], CAMERA, background=background, backend="gsplat")
        reference = render_layers([face, mouth], CAMERA, background=background, backend="reference")
    against_two = (single["color"] - two_gsplat["color"]).abs()
    # The same rasteriser, one pass or two: equal up to float summation order — mean 1.4e-5 and max 0.014 measured
    # on an H200 (2026-12-02; the max is a pixel where a Gaussian's alpha falls on the other side of gsplat's 1/255
    # cut-off); a wrong layer order differs by > 0.1 (below).
    assert against_two.mean() < 5e-5 and against_two.max() < 0.05
    against_reference = (single["color"] - reference["color"]).abs().amax(-1)
    assert against_reference.mean() < 1e-4 and (against_reference > 1 / 255).float().mean() < 6e-3
    swapped = render_layers([mouth, face], CAMERA, background=background, backend="gsplat")
    assert (swapped["color"] - single["color"]).abs().max() > 0.1  # the order is visible in this scene
