"""Body render speed: deformation + rasterisation + compositing, median over CUDA-event-timed iterations.

Usage:
    PYTHONPATH=. python benchmarks/bench_body.py                          # random-init body, 50k Gaussians, 512x512
    PYTHONPATH=. python benchmarks/bench_body.py --model output/body      # a trained model directory
    PYTHONPATH=. python benchmarks/bench_body.py --gaussians 30000 --batch 1 4 16 --iters 200

Prints one row per batch size: median milliseconds per call of ``body(flame)`` (float frames) and of
``body.render_frames`` (uint8, what synthesis consumes), frames per second, and the deformation network's
share (``body.pose`` alone). Without CUDA it runs the reference rasteriser on CPU at a small size
(a smoke test of the script, not a measurement).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark's timers and camera
from bench_rasterizer import camera_for, time_cpu, time_cuda  # noqa: E402
from scene.body import BodyModel, BodyModelConfig, load_body  # noqa: E402
from scene.gaussian_sets import make_gaussian_set  # noqa: E402
from utils.flame import FLAME_DIM, GLOBAL_ROT, JAW  # noqa: E402
from utils.runtime import resolve_device  # noqa: E402


def random_body(gaussians: int, size: int, device: torch.device, seed: int = 0) -> BodyModel:
    """A body of realistic size without training: Gaussians on a head-sized ellipsoid shell plus a neck."""
    generator = torch.Generator().manual_seed(seed)
    mouth_count = gaussians // 10
    face_count = gaussians - mouth_count
    directions = torch.nn.functional.normalize(torch.randn(face_count, 3, generator=generator), dim=1)
    radii = torch.tensor([0.08, 0.11, 0.09]) * (0.9 + 0.1 * torch.rand(face_count, 1, generator=generator))
    face_means = directions * radii + torch.tensor([0.0, -0.07, 0.0])  # head centre above the pivot
    mouth_means = torch.randn(mouth_count, 3, generator=generator) * 0.01 + torch.tensor([0.0, -0.012, -0.065])
    face = make_gaussian_set(face_means, torch.rand(face_count, 3, generator=generator), 0.002, 0.8)
    mouth = make_gaussian_set(mouth_means, torch.rand(mouth_count, 3, generator=generator), 0.002, 0.8)
    body = BodyModel(BodyModelConfig(), camera=camera_for(size), fps=25,
                     background=torch.rand(size, size, 3, generator=generator),
                     mean_translation=torch.tensor([0.0, 0.035, 0.55]), gaussians={"face": face, "mouth": mouth})
    with torch.no_grad():  # a deformation that is not the identity, as after training
        for parameter in body.deform.head.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.01)
    return body.to(device).eval()


def time_call(fn, iters: int, warmup: int, device: torch.device) -> float:
    """Median milliseconds of ``fn()``: CUDA events on GPU, perf_counter on CPU (the rasteriser bench's timers)."""
    timer = time_cuda if device.type == "cuda" else time_cpu
    return timer(fn, warmup, iters)


def motion(batch: int, device: torch.device, seed: int = 1) -> torch.Tensor:
    flame = torch.randn(batch, FLAME_DIM, generator=torch.Generator().manual_seed(seed)) * 0.3
    flame[:, GLOBAL_ROT] *= 0.5
    flame[:, JAW] = flame[:, JAW].abs() * 0.5
    return flame.to(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="trained body model directory (default: a random-init body)")
    parser.add_argument("--gaussians", type=int, default=50000, help="Gaussians of the random-init body")
    parser.add_argument("--size", type=int, default=512, help="image size of the random-init body")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args(argv)
    device = resolve_device("auto")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    else:  # CPU: a smoke test of the script, not a measurement
        args.size, args.gaussians, args.iters, args.warmup = 64, min(args.gaussians, 2000), 3, 1
    body = load_body(args.model, device) if args.model else random_body(args.gaussians, args.size, device)
    counts = body.num_gaussians()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (reference rasteriser)"
    print(f"device: {name} | torch {torch.__version__} | {body.width}x{body.height} | "
          f"Gaussians: {sum(counts.values())} ({counts['face']} face + {counts['mouth']} mouth) | "
          f"{'model ' + args.model if args.model else 'random init'}")
    print(f"{'batch':>5} {'render ms':>10} {'fps':>8} {'uint8 ms':>9} {'uint8 fps':>10} {'deform ms':>10}")
    with torch.no_grad():
        for batch in args.batch:
            flame = motion(batch, device)
            render_ms = time_call(lambda: body(flame), args.iters, args.warmup, device)
            frames_ms = time_call(lambda: body.render_frames(flame), args.iters, args.warmup, device)
            pose_ms = time_call(lambda: body.pose(flame), args.iters, args.warmup, device)
            print(f"{batch:>5} {render_ms:>10.3f} {batch * 1000 / render_ms:>8.1f} {frames_ms:>9.3f} "
                  f"{batch * 1000 / frames_ms:>10.1f} {pose_ms:>10.3f}")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 1024 ** 3:.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
