"""Where a batch-1 body render spends its time: deformation, each layer's gsplat pipeline, compositing.

    PYTHONPATH=. python benchmarks/profile_body_render.py --model <trained body dir>     # CUDA machine

Prints median milliseconds (CUDA events) of: the whole ``render_frames``; ``pose`` (deformation + rigid
transform); each layer rasterised alone by gsplat in packed and unpacked mode; compositing; then the
``torch.profiler`` table of one full render (top ops by CUDA time). The body's own path is packed.
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
from gaussian_renderer import composite, rasterize_gsplat  # noqa: E402
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
    rows = [("render_frames (all)", lambda: body.render_frames(flame)),
            ("pose (deformation + rigid)", lambda: body.pose(flame))]
    for name, layer in zip(("face", "mouth"), layers):
        for packed in (True, False):
            rows.append((f"gsplat {name} ({layer.means.shape[1]} G, {'packed' if packed else 'unpacked'})",
                         lambda layer=layer, packed=packed: rasterize_gsplat(layer, body.camera, packed=packed)))
    rendered = [rasterize_gsplat(layer, body.camera) for layer in layers]
    rows.append(("composite", lambda: composite(rendered, body.background)))
    print(f"{torch.cuda.get_device_name(device)} | batch {args.batch} | {sum(body.num_gaussians().values())} Gaussians")
    for name, function in rows:
        print(f"{name:<45} {time_cuda(function, 20, args.iters):8.3f} ms")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            body.render_frames(flame)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=48))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
