"""Synthesis speed: offline (60 s of video incl. H.264 encode) and live streaming (per-chunk latency, fps).

Usage (GPU machine, repo root):
    PYTHONPATH=. python benchmarks/bench_synthesis.py                        # offline + streaming, 60 s clip
    PYTHONPATH=. python benchmarks/bench_synthesis.py --mode stream --realtime_seconds 20
    PYTHONPATH=. python benchmarks/bench_synthesis.py --brain_checkpoint B.pth --body_checkpoint body_dir

Without checkpoints, models of realistic size are made first: the full presets (``configs/brain_config.yaml``,
``configs/body.yaml``) trained for a handful of steps on a small synthetic corpus and subject written to
a temporary folder. Speed does not depend on how well a model is trained, only on its size (and, for the
body, on its number of Gaussians, which the table reports). The speaker clip is a synthetic corpus clip
of ``--seconds``.

Prints one table; targets (DESIGN.md §7, H100/H200): offline 60 s of 512x512 incl. encode in <= 3 s;
streaming >= 25 fps sustained with the first speaker frame of a chunk -> its listener frames ready
<= 360 ms at p95 (the chunk's own 320 ms + 40 ms). This script streams precomputed features; the live
path from the voice (wav2vec2 included) is ``benchmarks/bench_live.py``.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from brain.data import DyadicCorpus  # noqa: E402
from brain.policy import ListenerPolicy, fast_sampling_options  # noqa: E402
from data_utils.synthetic_dyadic import write_synthetic_corpus  # noqa: E402
from scene.body import load_body  # noqa: E402
from synthesis.pipeline import synthesize  # noqa: E402
from synthesis.session import ListenerSession, replay  # noqa: E402
from utils.runtime import resolve_device  # noqa: E402


def make_checkpoints(work: Path, device: torch.device, args) -> tuple[Path, Path]:
    """Full-size brain and body trained for a few steps (a model's speed is that of its size, not its skill).

    A trained body densifies to many more Gaussians than the preset starts with, so the body starts with
    ``--face_gaussians`` (and a tenth of that inside the mouth) to render like a trained one.
    """
    python = [sys.executable]
    corpus, subject = work / "corpus", work / "subject"
    brain_path, body_path = work / "brain" / "checkpoint.pth", work / "body" / "body.pth"
    if brain_path.is_file() and body_path.is_file():  # made by an earlier run with the same --work
        return brain_path, body_path.parent
    for path in (corpus, subject, work / "brain", work / "body"):
        shutil.rmtree(path, ignore_errors=True)  # leftovers of an interrupted run
    write_synthetic_corpus(corpus, clips=10, seconds=20, seed=0)
    subprocess.run(python + ["-m", "data_utils.synthetic_subject", "--out", str(subject), "--size",
                             str(args.size), "--frames", "40", "--device", device.type], check=True)
    subprocess.run(python + [str(REPO_ROOT / "train_diffusion.py"), "--config", args.brain_config, "--data",
                             str(corpus), "--out", str(work / "brain"), f"train.max_steps={args.train_steps}",
                             "train.val_every=1000000", f"train.device={device.type}"], check=True)
    subprocess.run(python + [str(REPO_ROOT / "train_body.py"), "-s", str(subject), "-m", str(work / "body"),
                             "--config", args.body_config, f"train.max_steps={args.train_steps}",
                             f"train.device={device.type}", f"model.init.face_count={args.face_gaussians}",
                             f"model.init.mouth_count={args.face_gaussians // 10}", "densify.enabled=false"],
                   check=True)
    return brain_path, body_path.parent


def speaker_clip(work: Path, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic speaker of ``seconds``: wav2vec-like audio features [T,768] and expression [T,50]."""
    corpus = work / "speaker_corpus"
    write_synthetic_corpus(corpus, clips=3, seconds=seconds, seed=1)
    clip_id = sorted(path.name for path in (corpus / "clips").iterdir())[0]
    clip = DyadicCorpus(corpus).load_clip(clip_id)
    return clip.speaker_audio, clip.speaker_exp


def gpu_memory_gb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def bench_offline(policy, body, audio, exp, work: Path, device, args) -> list[dict]:
    rows = []
    synthesize(policy, body, audio[:50], exp[:50], work / "warmup.mp4", steps=args.steps, progress=False)
    for num_samples in args.num_samples:
        reset_memory(device)
        _, report = synthesize(policy, body, audio, exp, work / f"offline_k{num_samples}.mp4",
                               num_samples=num_samples, steps=args.steps, render_batch=args.render_batch,
                               progress=False)
        rows.append({"mode": f"offline K={num_samples}", "frames": report.num_frames,
                     "brain_s": report.brain_s, "render_s": report.render_s,
                     "encode_s": report.encode_s, "tail_s": report.encode_tail_s,
                     "outputs_s": report.motion_and_plot_s, "total_s": report.total_s,
                     "fps": report.fps, "gpu_gb": gpu_memory_gb(device)})
    return rows


def bench_stream(policy, body, audio, exp, device, args) -> list[dict]:
    rows = []
    warmup = ListenerSession(policy, body, steps=args.steps)
    replay(warmup, audio[:48], exp[:48])
    runs = [("stream fast", False, len(audio))]
    if args.realtime_seconds > 0:
        runs.append(("stream realtime", True, min(len(audio), int(args.realtime_seconds * policy.fps))))
    for name, realtime, num_frames in runs:
        reset_memory(device)
        session = ListenerSession(policy, body, steps=args.steps)
        report = replay(session, audio[:num_frames], exp[:num_frames], realtime=realtime)
        summary = report.summary()
        rows.append({"mode": name, "frames": report.num_frames, "brain_s": sum(t.brain_s for t in report.timings),
                     "render_s": sum(t.render_s for t in report.timings), "total_s": report.wall_s,
                     "fps": report.sustained_fps, "gpu_gb": gpu_memory_gb(device), **summary})
    return rows


COLUMNS = [  # (header, row key or keys joined by " / ", format); a row without the key leaves the cell empty
    ("mode", ("mode",), "{}"), ("frames", ("frames",), "{}"), ("brain s", ("brain_s",), "{:.2f}"),
    ("render s", ("render_s",), "{:.2f}"), ("encode s (overlapped)", ("encode_s",), "{:.2f}"),
    ("encode tail s", ("tail_s",), "{:.2f}"), ("npy+plot s", ("outputs_s",), "{:.2f}"),
    ("total s", ("total_s",), "{:.2f}"), ("fps", ("fps",), "{:.1f}"),
    ("chunk brain+render p50/p95/max ms", ("compute_p50_ms", "compute_p95_ms", "compute_max_ms"), "{:.1f}"),
    ("first frame -> ready p50/p95/max ms", ("latency_p50_ms", "latency_p95_ms", "latency_max_ms"), "{:.0f}"),
    ("GPU peak GB", ("gpu_gb",), "{:.2f}"),
]


def print_table(rows: list[dict], header: str) -> None:
    print(header)
    print("| " + " | ".join(name for name, _, _ in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        cells = [" / ".join(fmt.format(row[key]) for key in keys) if all(key in row for key in keys) else ""
                 for _, keys, fmt in COLUMNS]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("all", "offline", "stream"), default="all")
    parser.add_argument("--brain_checkpoint", type=Path)
    parser.add_argument("--body_checkpoint", type=Path)
    parser.add_argument("--brain_config", default=str(REPO_ROOT / "configs" / "brain_config.yaml"))
    parser.add_argument("--body_config", default=str(REPO_ROOT / "configs" / "body.yaml"))
    parser.add_argument("--train_steps", type=int, default=20, help="steps when making checkpoints")
    parser.add_argument("--size", type=int, default=512, help="subject image size when making checkpoints")
    parser.add_argument("--face_gaussians", type=int, default=100_000, help="body size when making checkpoints")
    parser.add_argument("--seconds", type=float, default=60.0, help="speaker clip length")
    parser.add_argument("--num_samples", type=int, nargs="+", default=[1, 3], help="offline K values")
    parser.add_argument("--steps", type=int, default=None, help="network evaluations (default: the checkpoint's)")
    parser.add_argument("--render_batch", type=int, default=32)
    parser.add_argument("--realtime_seconds", type=float, default=20.0, help="0: skip the real-clock run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, help="keep models and videos here (default: a temporary folder); "
                        "models made in an earlier run with the same --work are reused")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        brain_path, body_path = args.brain_checkpoint, args.body_checkpoint
        if brain_path is None or body_path is None:
            brain_path, body_path = make_checkpoints(work, device, args)
        policy = ListenerPolicy.from_checkpoint(brain_path, device=device, **fast_sampling_options(device))
        body = load_body(body_path, device=device)
        audio, exp = speaker_clip(work, args.seconds)
        print(f"setup {time.perf_counter() - start:.0f} s; body {body.height}x{body.width}, Gaussians "
              f"{body.num_gaussians()}; clip {len(audio)} frames; {args.steps or 'the checkpoint default'} network evaluations")
        rows = []
        if args.mode in ("all", "offline"):
            rows += bench_offline(policy, body, audio, exp, work, device, args)
        if args.mode in ("all", "stream"):
            rows += bench_stream(policy, body, audio, exp, device, args)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print_table(rows, f"device: {name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
