"""Data-preparation speed: wav2vec2 feature extraction (whole file vs chunked) and subject video processing.

Usage (repo root; GPU machine or CPU):
    PYTHONPATH=. python benchmarks/bench_data_prep.py                      # base-size wav2vec2, 30/120/300 s
    PYTHONPATH=. python benchmarks/bench_data_prep.py --model <wav2vec2 dir> --seconds 60 600
    PYTHONPATH=. python benchmarks/bench_data_prep.py --skip_subject --device cpu --seconds 20

Without ``--model`` a randomly initialised wav2vec2 of the *base* architecture (12 layers, 768 wide, the real
512-channel conv stack; ``Wav2Vec2Config()`` defaults, 94M parameters) is saved to a temporary folder:
speed depends on the architecture, not on the weights. The chunked-vs-whole difference of a random model
is not that of trained weights; give ``--model`` with real weights to measure it.

Prints one table: audio seconds, device, whole-file and chunked time, real-time factor, and the chunked
result's relative L2 difference and lowest per-frame cosine similarity against the whole-file pass. Then,
unless ``--skip_subject``, the time to turn a synthetic 20 s, 30 fps, 640x480 video into a 512x512 subject.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "tests"):  # the project, and the tests' real-format writers (fixtures)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fixtures import (emoca_results_dir, moving_disk_frames, smooth_codes,  # noqa: E402
                      speech_like_audio, write_emoca_frames, write_frames_video)
from data_utils.process import ProcessOptions, process_subject  # noqa: E402
from data_utils.wav2vec import SAMPLE_RATE, Wav2VecExtractor  # noqa: E402
from utils.runtime import resolve_device  # noqa: E402


def base_model(directory: Path) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(directory)
    Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=True).save_pretrained(directory)
    return directory


def timed(function, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def bench_wav2vec(model_dir: Path, device: torch.device, seconds_list, chunk_seconds: float,
                  context_seconds: float) -> None:
    whole = Wav2VecExtractor(model_dir, device, chunk_seconds=1e6)
    chunked = whole.with_chunking(chunk_seconds, context_seconds)
    whole.features_50hz(speech_like_audio(2.0))  # warm-up (CUDA context, kernels)
    print(f"\nwav2vec2 ({model_dir}), device {device}, chunks {chunk_seconds:g} s + {context_seconds:g} s context")
    print(f"{'audio s':>8} {'whole s':>9} {'chunked s':>10} {'x realtime':>11} {'rel L2':>9} {'min cos':>8}")
    for seconds in seconds_list:
        audio = speech_like_audio(seconds, SAMPLE_RATE, seed=1)
        try:
            reference, whole_time = timed(lambda: whole.features_50hz(audio), device)
        except torch.OutOfMemoryError:
            reference, whole_time = None, float("nan")
            torch.cuda.empty_cache()
        features, chunk_time = timed(lambda: chunked.features_50hz(audio), device)
        if reference is not None:
            rel = np.linalg.norm(features - reference) / np.linalg.norm(reference)
            cos = ((features * reference).sum(1) / np.linalg.norm(features, axis=1)
                   / np.linalg.norm(reference, axis=1)).min()
        else:
            rel = cos = float("nan")
        print(f"{seconds:8.0f} {whole_time:9.2f} {chunk_time:10.2f} {seconds / chunk_time:11.1f} {rel:9.4f} {cos:8.4f}")


def bench_subject(work: Path) -> None:
    num_frames, fps = 600, 30  # 20 s
    frames, masks = moving_disk_frames(num_frames, 480)
    frames = np.concatenate([frames, frames[:, :, :160]], axis=2)  # 480x640
    masks = np.concatenate([masks, np.zeros_like(masks[:, :, :160])], axis=2)
    video = write_frames_video(work / "S" / "S.mp4", frames, fps)
    mask_video = write_frames_video(work / "S_masks.mp4", np.repeat(masks[..., None], 3, -1), fps)
    exp, pose = smooth_codes(num_frames)
    write_emoca_frames(emoca_results_dir(work / "emoca", "S"), exp, pose)
    start = time.perf_counter()
    provenance = process_subject(video, work / "emoca", work / "S_out", ProcessOptions(size=512), masks=mask_video)
    elapsed = time.perf_counter() - start
    print(f"\nsubject: {num_frames} frames 640x480 at {fps} fps -> {provenance['num_frames']} frames 512x512 "
          f"in {elapsed:.1f} s ({provenance['num_frames'] / elapsed:.1f} output frames/s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="wav2vec2 directory; default: random base architecture")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, nargs="+", default=[30, 120, 300])
    parser.add_argument("--chunk_seconds", type=float, default=30.0)
    parser.add_argument("--context_seconds", type=float, default=5.0)
    parser.add_argument("--skip_subject", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {name}; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else base_model(Path(tmp) / "wav2vec2_base_random")
        bench_wav2vec(model_dir, device, args.seconds, args.chunk_seconds, args.context_seconds)
        if not args.skip_subject:
            bench_subject(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
