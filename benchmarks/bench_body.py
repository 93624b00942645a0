"""Body render speed, deformation + rasterisation + compositing to uint8 frames: the old two-pass path against the
fast path synthesis uses, median over CUDA-event-timed iterations.

Usage:
    PYTHONPATH=. python benchmarks/bench_body.py                          # random-init body, 60k Gaussians, 512x512
    PYTHONPATH=. python benchmarks/bench_body.py --model output/body      # a trained model directory
    PYTHONPATH=. python benchmarks/bench_body.py --model M --batch 1 4 16 --iters 300 --json out.json

One row per batch size and path:
* ``two-pass`` — what ``render_frames`` did before: ``pose`` eagerly, then each layer through its own gsplat
  call (``render_layers``, RGB + depth, packed) composited over the plate, then uint8;
* ``fast`` — ``BodyModel.render_frames`` as synthesis calls it: the deformation replayed from a CUDA graph, both
  layers in one unpacked RGB gsplat pass in face-then-mouth order, composited over the plate and converted to
  uint8 in one fused step (``render_stacked_frames``; until the sixth session ``render_stacked``, then the
  conversion on its own);
* ``fast packed`` — the same with gsplat's packed mode;
* ``deform eager`` / ``deform graphed`` — the deformation alone (eager ``pose``; the graph replays ``pose`` and
  the stacking).
Also the fast path's largest difference from the two-pass frames (8-bit levels). Without CUDA it runs the
reference rasteriser on CPU at a small size: a smoke test of the script, not a measurement.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark's timers and camera
from bench_rasterizer import camera_for, time_cpu, time_cuda  # noqa: E402
from gaussian_renderer import render_layers, render_stacked_frames  # noqa: E402
from scene.body import BodyModel, BodyModelConfig, load_body  # noqa: E402
from scene.gaussian_sets import make_gaussian_set  # noqa: E402
from utils.atomic import save_json  # noqa: E402
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
        for parameter in [*body.deform.head.parameters(), *body.mouth_deform.head.parameters()]:
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.01)
    return body.to(device).eval()


def motion(batch: int, device: torch.device, seed: int = 1) -> torch.Tensor:
    flame = torch.randn(batch, FLAME_DIM, generator=torch.Generator().manual_seed(seed)) * 0.3
    flame[:, GLOBAL_ROT] *= 0.5
    flame[:, JAW] = flame[:, JAW].abs() * 0.5
    return flame.to(device)


def two_pass_frames(body: BodyModel, flame: torch.Tensor) -> torch.Tensor:
    """The render_frames of before the fast path: eager pose, one gsplat pass per layer, composite, uint8."""
    layers, _ = body.pose(flame)
    color = render_layers(layers, body.camera, background=body.background)["color"]
    return (color.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def packed_frames(body: BodyModel, flame: torch.Tensor) -> torch.Tensor:
    """The fast path with gsplat's packed mode: render_frames but for the packing."""
    return render_stacked_frames(body.stacked_layer(flame), body.camera, background=body.background, packed=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="trained body model directory (default: a random-init body)")
    parser.add_argument("--gaussians", type=int, default=60000, help="Gaussians of the random-init body")
    parser.add_argument("--size", type=int, default=512, help="image size of the random-init body")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    device = resolve_device("auto")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        timer = time_cuda
    else:  # CPU: a smoke test of the script, not a measurement
        args.size, args.gaussians, args.iters, args.warmup = 64, min(args.gaussians, 2000), 3, 1
        timer = time_cpu
    body = load_body(args.model, device) if args.model else random_body(args.gaussians, args.size, device)
    counts = body.num_gaussians()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (reference rasteriser)"
    print(f"device: {name} | torch {torch.__version__} | {body.width}x{body.height} | "
          f"Gaussians: {sum(counts.values())} ({counts['face']} face + {counts['mouth']} mouth) | "
          f"{'model ' + args.model if args.model else 'random init'}")
    print(f"{'batch':>5} {'path':<16} {'ms':>8} {'fps':>9} {'max |fast - two-pass|':>22}")
    rows = []
    with torch.no_grad():
        for batch in args.batch:
            flame = motion(batch, device)
            paths = {"two-pass": lambda: two_pass_frames(body, flame),
                     "fast": lambda: body.render_frames(flame),
                     "fast packed": lambda: packed_frames(body, flame),
                     "deform eager": lambda: body.pose(flame),
                     "deform graphed": lambda: body.stacked_layer(flame)}
            levels = (body.render_frames(flame).int() - two_pass_frames(body, flame).int()).abs().max().item()
            for path, function in paths.items():
                ms = timer(function, args.warmup, args.iters)
                rows.append({"batch": batch, "path": path, "ms": ms, "fps": batch * 1000 / ms})
                print(f"{batch:>5} {path:<16} {ms:>8.3f} {batch * 1000 / ms:>9.1f} "
                      f"{levels if path == 'fast' else '':>22}")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 1024 ** 3:.2f} GB")
    if args.json:
        save_json(args.json, {"device": name, "gaussians": counts, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
