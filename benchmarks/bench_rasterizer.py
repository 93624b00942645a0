"""Rasteriser speed: gsplat (CUDA) at 512x512 and the PyTorch reference (CPU) at 64x64, through ``render_layers()``.

Usage (repo root):
    PYTHONPATH=. python benchmarks/bench_rasterizer.py                       # GPU machine: both tables
    PYTHONPATH=. python benchmarks/bench_rasterizer.py --skip_gsplat         # CPU only: the reference
    PYTHONPATH=. python benchmarks/bench_rasterizer.py --counts 10000 --batches 1 --repeats 20

Scenes are head-like: ``N`` Gaussians on and around a head-sized ellipsoid ~0.55 m in front of a camera
with ``f = 1.5 x size``, scaled so that the surface is covered about once whatever ``N`` is (what a trained
body looks like). Each measurement renders one layer composited over a background (``render_layers()``, so the
compositing is included); forward is timed under ``no_grad``, forward+backward with a loss on colour,
alpha and depth and gradients for all five Gaussian parameters. GPU times are medians of CUDA-event
timings after warm-up; CPU times are medians of wall-clock timings.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from gaussian_renderer import Camera, GaussianLayer, render_layers  # noqa: E402

HEAD_RADII = (0.09, 0.12, 0.1)
HEAD_DEPTH = 0.55
HEAD_AREA = 0.12  # m^2, the ellipsoid's surface


def head_like_layer(batch: int, count: int, seed: int, device, requires_grad: bool) -> GaussianLayer:
    generator = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(batch, count, 3, generator=generator), dim=-1)
    means = direction * torch.tensor(HEAD_RADII) + torch.tensor([0.0, 0.0, HEAD_DEPTH])
    footprint = 0.5 * (HEAD_AREA / count) ** 0.5  # std that tiles the surface about once
    scales = footprint * torch.exp(0.3 * torch.randn(batch, count, 3, generator=generator))
    scales[..., 2] *= 0.3  # flattish along one axis, as trained splats are
    tensors = dict(means=means, quats=torch.randn(batch, count, 4, generator=generator), scales=scales,
                   opacities=torch.rand(batch, count, generator=generator) * 0.7 + 0.3,
                   colors=torch.rand(batch, count, 3, generator=generator))
    return GaussianLayer(**{k: v.to(device).requires_grad_(requires_grad) for k, v in tensors.items()})


def camera_for(size: int) -> Camera:
    return Camera(width=size, height=size, fx=1.5 * size, fy=1.5 * size, cx=size / 2, cy=size / 2)


def time_cuda(function, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        function()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def time_cpu(function, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def measure(backend: str, size: int, batch: int, count: int, warmup: int, repeats: int) -> tuple[float, float]:
    """Median milliseconds of (forward, forward+backward) for one configuration."""
    device = "cuda" if backend == "gsplat" else "cpu"
    camera = camera_for(size)
    layer = head_like_layer(batch, count, seed=0, device=device, requires_grad=True)
    background = torch.full((3,), 0.5, device=device)
    timer = time_cuda if device == "cuda" else time_cpu

    def forward():
        with torch.no_grad():
            render_layers(layer, camera, background=background, backend=backend)

    def forward_backward():
        out = render_layers(layer, camera, background=background, backend=backend)
        (out["color"].mean() + out["alpha"].mean() + out["depth"].mean()).backward()
        for name in ("means", "quats", "scales", "opacities", "colors"):
            getattr(layer, name).grad = None

    return timer(forward, warmup, repeats), timer(forward_backward, warmup, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--size", type=int, default=512, help="gsplat image size")
    parser.add_argument("--reference_counts", type=int, nargs="+", default=[2_000, 4_000])
    parser.add_argument("--reference_batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--reference_size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--skip_gsplat", action="store_true")
    parser.add_argument("--skip_reference", action="store_true")
    args = parser.parse_args(argv)

    rows = []
    if not args.skip_gsplat:
        if not torch.cuda.is_available():
            print("error: gsplat needs CUDA; pass --skip_gsplat on a CPU machine", file=sys.stderr)
            return 2
        device_name = torch.cuda.get_device_name()
        for batch in args.batches:
            for count in args.counts:
                forward, both = measure("gsplat", args.size, batch, count, args.warmup, args.repeats)
                rows.append(("gsplat", device_name, args.size, batch, count, forward, both))
    if not args.skip_reference:
        cpu_name = f"CPU x{torch.get_num_threads()} threads ({platform.processor() or platform.machine()})"
        for batch in args.reference_batches:
            for count in args.reference_counts:
                forward, both = measure("reference", args.reference_size, batch, count,
                                        min(args.warmup, 3), min(args.repeats, 10))
                rows.append(("reference", cpu_name, args.reference_size, batch, count, forward, both))

    print(f"torch {torch.__version__}")
    header = f"{'backend':<10} {'device':<34} {'size':>5} {'batch':>5} {'N':>7} {'fwd ms':>8} " \
             f"{'fwd+bwd ms':>10} {'frames/s fwd':>12}"
    print(header)
    print("-" * len(header))
    for backend, device, size, batch, count, forward, both in rows:
        print(f"{backend:<10} {device[:34]:<34} {size:>5} {batch:>5} {count:>7} {forward:>8.3f} {both:>10.3f} "
              f"{1000 * batch / forward:>12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
