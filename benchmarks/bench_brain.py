"""Brain speed: one streaming chunk and offline real-time factor, eager vs CUDA graphs (with and without
torch.compile), fp32 vs bf16.

    PYTHONPATH=. python benchmarks/bench_brain.py                       # random-init brain_config.yaml model
    PYTHONPATH=. python benchmarks/bench_brain.py --checkpoint output/brain/checkpoint.pth
    PYTHONPATH=. python benchmarks/bench_brain.py --device cpu --runs 3 --offline_seconds 2   # smoke test
    PYTHONPATH=. python benchmarks/bench_brain.py model.layers=4         # a smaller random-init model

A *chunk* is one streaming step: 8 new speaker frames in, the window denoised with ``--steps`` network evaluations (default: the model's own)
and classifier-free guidance (three branches batched in one forward), 8 listener frames out — timed
through ``ListenerStream.push`` so Python overhead counts. Times are medians over ``--runs`` after
``--warmup`` calls, measured with CUDA events on a GPU (``time.perf_counter`` on CPU). The offline row
is ``ListenerPolicy.generate`` on ``--offline_seconds`` of random speaker input: real-time factor =
compute time / clip duration (lower is better; target for the chunk: ≤ 10 ms on an H100).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from brain.config import BrainConfig
from brain.diffusion import build_denoiser_and_diffusion
from brain.normalizer import Normalizer
from brain.policy import ListenerPolicy
from utils.config import load_config
from utils.flame import AUDIO_DIM, FPS, SPEAKER_EXP_DIM
from utils.runtime import resolve_device


def build_policy(args, device, precision: str, cuda_graphs: bool, compile: bool) -> ListenerPolicy:
    options = dict(precision=precision, cuda_graphs=cuda_graphs, compile=compile)
    if args.checkpoint:
        return ListenerPolicy.from_checkpoint(args.checkpoint, device, **options)
    cfg = load_config(BrainConfig, args.config, args.overrides)
    torch.manual_seed(0)
    denoiser, diffusion = build_denoiser_and_diffusion(cfg)
    return ListenerPolicy(denoiser, diffusion, Normalizer(), cfg, device, **options)


class Timer:
    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn) -> float:
        """Milliseconds of one call of ``fn``."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
        begin = time.perf_counter()
        fn()
        return 1000 * (time.perf_counter() - begin)


def sampling_options(args) -> dict:
    """The stream options every row samples with (None: the model's own)."""
    return dict(num_samples=args.num_samples, steps=args.steps, guidance_audio=args.guidance,
                guidance_speaker_exp=args.guidance, guidance_history=args.guidance_history, attitude=args.attitude,
                guidance_attitude=args.guidance_attitude)


def describe(policy: ListenerPolicy, args) -> str:
    """The header line: what one chunk runs (evaluations, guidance scales, batched branches)."""
    options = policy.stream(**sampling_options(args)).options
    branches = policy.diffusion.guidance_branches(options["guidance_audio"], options["guidance_speaker_exp"],
                                                  options["guidance_attitude"], options["guidance_history"]).count
    return (f"model: {args.checkpoint or args.config}; {options['steps']} network evaluations, guidance "
            f"{options['guidance_audio']:g}, history guidance {options['guidance_history']:g}, attitude {args.attitude or 'none'} "
            f"with guidance {options['guidance_attitude']:g} ({branches} branches batched), K={args.num_samples}")


def bench_chunk(policy: ListenerPolicy, args, timer: Timer) -> float:
    rng = np.random.default_rng(0)
    chunk = policy.chunk_frames
    stream = policy.stream(seed=0, **sampling_options(args))
    audio = rng.standard_normal((chunk, AUDIO_DIM)).astype(np.float32)
    exp = rng.standard_normal((chunk, SPEAKER_EXP_DIM)).astype(np.float32)
    for _ in range(args.warmup):
        stream.push(audio, exp)
    return statistics.median(timer(lambda: stream.push(audio, exp)) for _ in range(args.runs))


def bench_offline(policy: ListenerPolicy, args, timer: Timer) -> float:
    rng = np.random.default_rng(1)
    frames = int(args.offline_seconds * FPS)
    audio = rng.standard_normal((frames, AUDIO_DIM)).astype(np.float32)
    exp = rng.standard_normal((frames, SPEAKER_EXP_DIM)).astype(np.float32)
    options = sampling_options(args)
    policy.generate(audio[:4 * policy.chunk_frames], exp[:4 * policy.chunk_frames], **options)  # warm-up
    return timer(lambda: policy.generate(audio, exp, **options)) / 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--checkpoint", help="a trained brain; default: random init of --config")
    parser.add_argument("--config", default="configs/brain_config.yaml")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=None, help="network evaluations (default: the model's own)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="audio and expression scale (default: the model's own; 1.0 = no CFG)")
    parser.add_argument("--guidance_history", type=float, default=None,
                        help="history guidance scale (default: the model's own; != 1 adds a branch)")
    parser.add_argument("--attitude", default=None, help="ask this attitude (a labelled checkpoint's name)")
    parser.add_argument("--guidance_attitude", type=float, default=None,
                        help="attitude guidance scale (default: the model's own; != 1 with --attitude adds a branch)")
    parser.add_argument("--num_samples", type=int, default=1)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--offline_seconds", type=float, default=60.0)
    parser.add_argument("--no_compile", action="store_true", help="skip the torch.compile rows (slow to build)")
    parser.add_argument("--live_mode_only", action="store_true",
                        help="on a GPU only the live session's mode: compiled + CUDA graphs, bf16")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of --config (random-init model only)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_grad_enabled(False)
    timer = Timer(device)
    modes = [("eager", "fp32"), ("eager", "bf16")]
    if device.type == "cuda":
        modes += [("cuda graphs", "fp32"), ("cuda graphs", "bf16")]
        if not args.no_compile:
            modes += [("compiled+graphs", "fp32"), ("compiled+graphs", "bf16")]
        if args.live_mode_only:
            modes = [("compiled+graphs", "bf16")]
        print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    else:
        print(f"device: cpu ({torch.get_num_threads()} threads), torch {torch.__version__}")
    for index, (mode, precision) in enumerate(modes):
        policy = build_policy(args, device, precision, cuda_graphs=mode != "eager", compile=mode.startswith("compiled"))
        if index == 0:
            print(describe(policy, args))
            print(f"{'mode':<16} {'precision':<9} {'chunk ms (median)':>18} {'offline s':>10} {'RTF':>8}")
        chunk_ms = bench_chunk(policy, args, timer)
        offline_s = bench_offline(policy, args, timer)
        print(f"{mode:<16} {precision:<9} {chunk_ms:>18.2f} {offline_s:>10.2f} {offline_s / args.offline_seconds:>8.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
