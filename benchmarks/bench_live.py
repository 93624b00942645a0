"""A live listener from the speaker's voice for minutes on end: latency per chunk and drift per minute.

Usage (GPU machine, repo root):
    PYTHONPATH=. python benchmarks/bench_live.py --brain_checkpoint B.pth --body_checkpoint body_dir
    PYTHONPATH=. python benchmarks/bench_live.py ... --seconds 20 --bin_seconds 5 --device cpu   # smoke run

What runs:
1. A synthetic dyadic corpus (``data_utils.synthetic_dyadic``, ``--gt_clips`` clips of ``--seconds``, with
   ``speaker.wav``) is written to the work folder. Clip 0 is the speaker; every clip's recorded listener
   is the ground truth for the drift table.
2. **live**: clip 0's ``speaker.wav`` is played into a ``ListenerSession`` in 10 ms blocks on the real
   25 fps clock (``synthesis.pipeline.synthesize(stream=True, realtime=True)``, which also encodes the
   mp4 with the audio), through the causal wav2vec2 extractor of the live path with a **base-size,
   random-weight** Wav2Vec2 (``transformers.Wav2Vec2Config()`` defaults, saved to the work folder unless
   ``--wav2vec`` names a local model): random weights cost what trained ones do, so the latency is the
   real one. A brain trained on the synthetic corpus's own audio features sees features from a random
   network here, input it never saw: this run measures the latency and whether the *pipeline* holds
   steady over minutes (no backlog, no blow-up, no freezing), not how well the brain listens.
3. **features control**: the same clip's synthetic audio features, the input the brain was trained on,
   streamed chunk by chunk as fast as possible (live clock simulated from the compute times). Its drift
   table is the one that says whether the brain's motion stays within the ground truth's spread.

``--attitude NAME`` (or ``speaker_clip``: the attitude of clip 0's listener) asks both runs for a listener
attitude, and the drift tables then score against the ground-truth clips of that attitude only (until the
eighth session they took every clip's, so a neutral listener read 1.25-1.4 x the truth's per-minute std where
the neutral ground truth itself reads ~1.3 x the mixed one: ``benchmarks/drift_offline.py``, docs/BENCHMARKS.md);
without it they sample the unconditional listener against every clip.

Prints the live latency table (features, brain, render, encode, first audio sample of a chunk -> its frames
ready; p50 / p95 / max), then for both runs a drift table per ``--bin_seconds`` (a minute by default):
latency p95 of the chunks that started in it, and per FLAME dimension whether the motion's mean and its
standard deviation over that minute lie within the range of the ground truth's per-minute means and
standard deviations (over all ground-truth minutes), plus the median over dimensions of std / the
ground truth's median per-minute std (near 0 = freezing, >> 1 = blowing up). The control row
"ground truth (leave one out)" scores each ground-truth minute against the other minutes' range: the
fraction a perfect model would reach. Targets (DESIGN.md §7, H100/H200): latency p95 <= 360 ms; 25 fps
sustained over 5 minutes with every minute within the spread.
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
sys.path.insert(0, str(REPO_ROOT))

from brain.data import DyadicCorpus  # noqa: E402
from brain.policy import ListenerPolicy, fast_sampling_options  # noqa: E402
from data_utils.synthetic_dyadic import write_synthetic_corpus  # noqa: E402
from data_utils.wav2vec import Wav2VecExtractor, read_speaker_audio, save_random_wav2vec  # noqa: E402
from data_utils.wav2vec_stream import CausalWav2Vec  # noqa: E402
from scene.body import load_body  # noqa: E402
from synthesis.pipeline import synthesize  # noqa: E402
from synthesis.session import StreamReport  # noqa: E402
from utils.flame import FPS  # noqa: E402
from utils.runtime import resolve_device  # noqa: E402


def minute_statistics(motion: np.ndarray, bin_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``[T,56]`` -> per whole bin ``[B,56]`` means and ``[B,56]`` standard deviations."""
    bins = len(motion) // bin_frames
    binned = motion[:bins * bin_frames].reshape(bins, bin_frames, -1)
    return binned.mean(axis=1), binned.std(axis=1)


def within(value: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Fraction of dimensions with ``low <= value <= high``."""
    return float(((value >= low) & (value <= high)).mean())


def drift_rows(motion: np.ndarray, truth: list[np.ndarray], report: StreamReport | None,
               bin_frames: int) -> list[dict]:
    """One row per bin of ``motion`` against the spread of the ground truth's bins (see the docstring)."""
    truth_means, truth_stds = (np.concatenate(parts) for parts in zip(*(minute_statistics(t, bin_frames)
                                                                       for t in truth)))
    typical_std = np.median(truth_stds, axis=0) + 1e-8
    means, stds = minute_statistics(motion, bin_frames)
    chunk_bin = None
    if report is not None:
        chunk_starts = np.arange(len(report.latency)) * report.chunk_frames  # first frame of each chunk
        chunk_bin = chunk_starts // bin_frames
    rows = []
    for index, (mean, std) in enumerate(zip(means, stds)):
        row = {"bin": index, "mean_within": within(mean, truth_means.min(0), truth_means.max(0)),
               "std_within": within(std, truth_stds.min(0), truth_stds.max(0)),
               "std_ratio": float(np.median(std / typical_std))}
        if chunk_bin is not None:
            row["latency_p95_ms"] = float(np.percentile(1000 * report.latency[chunk_bin == index], 95))
        rows.append(row)
    return rows


def truth_for(clips, attitude: str | None) -> list[np.ndarray]:
    """The ground-truth listeners a rollout asked for ``attitude`` is scored against: those of that attitude,
    every clip's when none is asked. A listener's per-minute spread depends on its attitude (in the benchmark
    world a neutral listener's per-minute std is ~1.3 x a negative one's), so a mixed reference would read a
    well-matched neutral listener as over-moving."""
    if attitude is None:
        return [clip.listener for clip in clips]
    same = [clip.listener for clip in clips if clip.attitude == attitude]
    if len(same) < 2:
        raise ValueError(f"only {len(same)} ground-truth clip(s) of attitude {attitude!r} among "
                         f"{len(clips)}: write more (--gt_clips) for a spread to score against")
    return same


def leave_one_out_row(truth: list[np.ndarray], bin_frames: int) -> dict:
    """Each ground-truth bin scored against the other bins' range, averaged: what a perfect model reaches."""
    means, stds = (np.concatenate(parts) for parts in zip(*(minute_statistics(t, bin_frames) for t in truth)))
    typical_std = np.median(stds, axis=0) + 1e-8
    scores = []
    for i in range(len(means)):
        others = np.arange(len(means)) != i
        scores.append((within(means[i], means[others].min(0), means[others].max(0)),
                       within(stds[i], stds[others].min(0), stds[others].max(0)),
                       float(np.median(stds[i] / typical_std))))
    mean_within, std_within, std_ratio = np.mean(scores, axis=0)
    return {"bin": "ground truth (leave one out)", "mean_within": mean_within, "std_within": std_within,
            "std_ratio": std_ratio}


def print_drift(title: str, rows: list[dict], control: dict, bin_seconds: float) -> None:
    print(f"\n{title}")
    print(f"| {bin_seconds:g} s bin | latency p95 ms | dims with mean within GT spread | "
          f"dims with std within GT spread | median std / GT std |")
    print("|---|---|---|---|---|")
    for row in [*rows, control]:
        latency = f"{row['latency_p95_ms']:.1f}" if "latency_p95_ms" in row else ""
        print(f"| {row['bin']} | {latency} | {100 * row['mean_within']:.0f}% | {100 * row['std_within']:.0f}% | "
              f"{row['std_ratio']:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brain_checkpoint", type=Path, required=True)
    parser.add_argument("--body_checkpoint", type=Path, required=True)
    parser.add_argument("--wav2vec", type=Path, help="local wav2vec2 folder (default: base size, random weights)")
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the live session")
    parser.add_argument("--bin_seconds", type=float, default=60.0, help="drift table bin")
    parser.add_argument("--gt_clips", type=int, default=8, help="ground-truth clips of --seconds each (>= 3; with "
                                                                "an attitude asked, >= 2 of it)")
    parser.add_argument("--context_seconds", type=float, default=2.0, help="wav2vec left context")
    parser.add_argument("--no_look_ahead", action="store_true",
                        help="the extractor emits each chunk at its own end (data_utils.wav2vec_stream)")
    parser.add_argument("--steps", type=int, default=None, help="network evaluations (default: the checkpoint's)")
    parser.add_argument("--audio_only", action="store_true", help="no speaker expression (audio-only branch)")
    parser.add_argument("--attitude", help="the listener attitude both runs ask for (default: none, the "
                                           "unconditional listener); 'speaker_clip': that of clip 0's listener")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, help="keep the corpus, model and videos here (default: temporary)")
    args = parser.parse_args(argv)
    if args.seconds < 2 * args.bin_seconds:  # the drift table needs at least two bins
        parser.error(f"--seconds {args.seconds:g} must be at least twice --bin_seconds {args.bin_seconds:g}")
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        setup_start = time.perf_counter()
        corpus_dir = work / f"speaker_corpus_{args.gt_clips}x{args.seconds:g}s"
        if not (corpus_dir / "meta.json").is_file():
            write_synthetic_corpus(corpus_dir, clips=args.gt_clips, seconds=args.seconds, seed=1, wav=True)
        corpus = DyadicCorpus(corpus_dir)
        clip_ids = sorted(path.name for path in (corpus_dir / "clips").iterdir())
        clips = [corpus.load_clip(clip_id) for clip_id in clip_ids]
        speaker_dir = corpus_dir / "clips" / clip_ids[0]
        model_dir = args.wav2vec or work / "wav2vec2_base_random"
        if args.wav2vec is None and not (model_dir / "config.json").is_file():
            save_random_wav2vec(model_dir)
        wav2vec = CausalWav2Vec(Wav2VecExtractor(model_dir, device), context_seconds=args.context_seconds,
                                look_ahead=not args.no_look_ahead)
        samples, _ = read_speaker_audio(speaker_dir / "speaker.wav")
        policy = ListenerPolicy.from_checkpoint(args.brain_checkpoint, device=device,
                                                 **fast_sampling_options(device, live=True))
        body = load_body(args.body_checkpoint, device=device)
        speaker_exp = None if args.audio_only else clips[0].speaker_exp
        attitude = clips[0].attitude if args.attitude == "speaker_clip" else args.attitude
        print(f"setup {time.perf_counter() - setup_start:.0f} s; body {body.height}x{body.width}; speaker "
              f"{len(samples) / wav2vec.sample_rate:.0f} s; wav2vec2 {model_dir} ({'random weights' if args.wav2vec is None else 'given'}, "
              f"{wav2vec.model.model.config.num_hidden_layers} layers), {args.context_seconds:g} s left context, "
              f"{'no look-ahead' if args.no_look_ahead else '5 ms look-ahead'}; "
              f"{args.steps or 'the checkpoint default'} network evaluations; {'audio only' if args.audio_only else 'with the speaker expression'}; "
              f"attitude asked: {attitude or 'none'}; ground-truth listeners' attitudes: "
              f"{', '.join(str(clip.attitude) for clip in clips)}")
        # The real-clock run warms up first (ListenerSession.warm_up: graphs, compilation, autotuning).
        _, live = synthesize(policy, body, samples, speaker_exp, work / "live.mp4", audio_features=wav2vec,
                             wav=speaker_dir / "speaker.wav", steps=args.steps, attitude=attitude, stream=True,
                             realtime=True, progress=False)
        live_motion = np.load(work / "live.npy")
        _, control = synthesize(policy, body, clips[0].speaker_audio, speaker_exp, work / "features.mp4",
                                steps=args.steps, attitude=attitude, stream=True, progress=False)
        control_motion = np.load(work / "features.npy")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"\ndevice: {device_name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}")
    print(f"live from the voice, real clock, {live.num_frames} frames in {live.wall_s:.1f} s")
    print(live.format())
    bin_frames = round(args.bin_seconds * FPS)
    truth = truth_for(clips, attitude)
    control_row = leave_one_out_row(truth, bin_frames)
    print_drift("drift, live from the voice (wav2vec2 features the brain was not trained on: pipeline stability)",
                drift_rows(live_motion, truth, live, bin_frames), control_row, args.bin_seconds)
    print_drift("drift, features control (the synthetic features the brain was trained on; simulated clock)",
                drift_rows(control_motion, truth, control, bin_frames), control_row, args.bin_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
