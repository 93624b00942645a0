"""Where a body render spends its time, fast path against the old two-pass path.

    PYTHONPATH=. python benchmarks/profile_body_render.py --model <trained body dir> [--batch 1]   # CUDA machine

Prints median milliseconds (CUDA events) of: the whole fast ``render_frames``; the deformation eager
(``pose``) and replayed from its CUDA graph (``stacked_layer``: pose + stacking); the single gsplat pass over the
stacked layer, unpacked and packed; each layer's own gsplat pass (the old path); compositing; then the
``torch.profiler`` table of ten fast renders (top ops by CUDA time) and the GPU kernel time per render,
against which the measured render time shows how much is launch and host-sync overhead.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_body import motion  # noqa: E402
from bench_rasterizer import time_cuda  # noqa: E402
from gaussian_renderer import GaussianLayer, composite, rasterize_gsplat  # noqa: E402
from scene.body import load_body  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="trained body model directory")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args(argv)
    device = torch.device("cuda")
    body = load_body(args.model, device)
    flame = motion(args.batch, device)
    torch.set_grad_enabled(False)
    layers, _ = body.pose(flame)
    graphed = body.stacked_layer(flame)  # the graph's own output, overwritten by the next replay: copy it
    stacked = GaussianLayer(**{key: getattr(graphed, key).clone()
                               for key in ("means", "quats", "scales", "opacities", "colors")})
    rows = [("render_frames (fast path, all)", lambda: body.render_frames(flame)),
            ("pose, eager", lambda: body.pose(flame)),
            ("pose + stacking, CUDA graph", lambda: body.stacked_layer(flame)),
            (f"gsplat stacked pass ({stacked.means.shape[1]} G, unpacked RGB)",
             lambda: rasterize_gsplat(stacked, body.camera, packed=False, with_depth=False)),
            ("gsplat stacked pass (packed RGB)", lambda: rasterize_gsplat(stacked, body.camera, with_depth=False))]
    for name, layer in zip(("face", "mouth"), layers):
        rows.append((f"old path: gsplat {name} ({layer.means.shape[1]} G, packed RGB+ED)",
                     lambda layer=layer: rasterize_gsplat(layer, body.camera)))
    rendered = [rasterize_gsplat(layer, body.camera) for layer in layers]
    rows.append(("old path: composite", lambda: composite(rendered, body.background)))
    print(f"{torch.cuda.get_device_name(device)} | batch {args.batch} | {sum(body.num_gaussians().values())} Gaussians")
    for name, function in rows:
        print(f"{name:<55} {time_cuda(function, 20, args.iters):8.3f} ms")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            body.render_frames(flame)
        torch.cuda.synchronize()
    averages = prof.key_averages()
    print(averages.table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=48))
    kernel_ms = sum(event.self_device_time_total for event in averages) / 1000 / 10
    print(f"GPU kernel time per fast render: {kernel_ms:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
