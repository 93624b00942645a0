"""Where gsplat and the reference rasteriser disagree: error quantiles and the worst pixels.

    PYTHONPATH=. python benchmarks/parity_diagnostics.py        # CUDA machine

Renders the parity test's random scenes with both backends and prints, per output, the mean, the 99th and
99.9th percentiles and the max of the absolute difference, how many pixels exceed one 8-bit level (1/255),
and for the worst pixels their position (also modulo gsplat's 16-px tiles), the reference alpha there and
how many Gaussians' footprints (the reference's boxes) cover them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from gaussian_renderer import rasterize_gsplat, rasterize_reference  # noqa: E402
from gaussian_renderer.reference import project_gaussians  # noqa: E402
from test_gsplat_parity import CAMERA, random_scene  # noqa: E402


def main() -> int:
    for seed in (0, 1):
        layer = random_scene(2, 3000, seed, "cuda")
        with torch.no_grad():
            fused = rasterize_gsplat(layer, CAMERA)
            reference = rasterize_reference(layer, CAMERA)
            projected = project_gaussians(layer, CAMERA)
        for key in ("color", "alpha"):
            difference = (fused[key] - reference[key]).abs().amax(-1)  # [B,H,W]
            flat = difference.flatten()
            q99, q999 = torch.quantile(flat, torch.tensor([0.99, 0.999], device=flat.device)).tolist()
            over = int((flat > 1 / 255).sum())
            print(f"seed {seed} {key:5s}: mean {flat.mean():.2e} p99 {q99:.2e} p99.9 {q999:.2e} max {flat.max():.3e} "
                  f"pixels > 1/255: {over} of {flat.numel()} ({100 * over / flat.numel():.3f}%)")
        difference = (fused["color"] - reference["color"]).abs().amax(-1)
        worst = torch.topk(difference.flatten(), 8).indices
        height, width = CAMERA.height, CAMERA.width
        for index in worst.tolist():
            b, rest = divmod(index, height * width)
            y, x = divmod(rest, width)
            centre = torch.tensor([x + 0.5, y + 0.5], device="cuda")
            reach = (projected["means2d"][b] - centre).abs()
            covering = int(((reach <= projected["radii"][b].float()).all(-1)).sum())
            print(f"   b{b} x{x:3d} y{y:3d} (tile offset {x % 16:2d},{y % 16:2d}) diff {difference[b, y, x]:.3e} "
                  f"ref alpha {reference['alpha'][b, y, x, 0]:.4f} fused alpha {fused['alpha'][b, y, x, 0]:.4f} "
                  f"covering {covering}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
