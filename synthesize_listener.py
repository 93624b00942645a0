"""Listener videos from a speaker's features: brain (motion) -> body (frames) -> H.264 mp4 with the speaker's audio.

Usage:
    python synthesize_listener.py --audio A.npy --visual V.npy \\
        --body_checkpoint output/body --brain_checkpoint output/brain/checkpoint.pth --output out/listener.mp4 \\
        [--wav speaker.wav] [--seed 0] [--num_samples 3] [--steps 15] \\
        [--guidance_audio G] [--guidance_speaker_exp G] [--device cuda|cpu] [--stream [--realtime]]

    # audio features computed from the wav with a local wav2vec 2.0 model instead of --audio:
    python synthesize_listener.py --wav speaker.wav --wav2vec models/wav2vec2-base --visual V.npy ...

Inputs: ``--audio`` wav2vec 2.0 features float32 [T,768] and ``--visual`` speaker EMOCA expression float32
[T,50], both at 25 fps. The speaker's audio is muxed in from ``--wav``, or from ``speaker.wav`` beside
the features (a corpus clip folder) when present.

Outputs (all or nothing): ``out.mp4`` (H.264, yuv420p, 25 fps), the motion ``out.npy`` [T,56] and a plot of
the motion curves ``out.png``. With ``--num_samples K > 1``: ``out_s0.mp4 .. out_s{K-1}.mp4``, the
side-by-side ``out_grid.mp4``, ``out.npy`` [K,T,56] and ``out.png``.

``--stream`` replays the clip as a live session (8-frame chunks, frames written as they are ready) and
prints per-chunk latencies and the sustained frame rate; ``--realtime`` paces it by the 25 fps clock
instead of running as fast as possible. Exit code 2 and no output on bad input.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from brain.data import check_speaker_inputs
from synthesis.pipeline import SynthesisOutputs, synthesize
from utils.arrays import load_npy
from utils.cli import check_output_path, cli_main
from utils.errors import UsageError
from utils.flame import FPS
from utils.media import probe_audio
from utils.runtime import configure_threads, resolve_device, seed_everything


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthesize_listener.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--audio", type=Path, help="speaker wav2vec 2.0 features, float32 [T,768] .npy")
    parser.add_argument("--visual", type=Path, required=True, help="speaker expression, float32 [T,50] .npy")
    parser.add_argument("--wav", type=Path, help="speaker audio to mux in (default: speaker.wav beside --audio)")
    parser.add_argument("--wav2vec", type=Path, help="local wav2vec 2.0 model dir: compute --audio from --wav")
    parser.add_argument("--body_checkpoint", type=Path, required=True, help="body model dir or its .pth")
    parser.add_argument("--brain_checkpoint", type=Path, required=True, help="brain checkpoint .pth")
    parser.add_argument("--output", type=Path, required=True, help="output .mp4 (motion .npy and plot .png beside)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_samples", type=int, default=1, help="K different listeners for the same speaker")
    parser.add_argument("--steps", type=int, default=15, help="DDIM sampling steps")
    parser.add_argument("--guidance_audio", type=float, default=None, help="default: the checkpoint's")
    parser.add_argument("--guidance_speaker_exp", type=float, default=None, help="default: the checkpoint's")
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (CUDA when available)")
    parser.add_argument("--stream", action="store_true", help="replay as a live session and report latencies")
    parser.add_argument("--realtime", action="store_true", help="with --stream: pace chunks by the 25 fps clock")
    parser.add_argument("--render_batch", type=int, default=32, help="frames per body render call (offline)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    return parser


def check_arguments(args: argparse.Namespace) -> Path | None:
    """Refuse combinations that cannot work before anything is loaded; return the wav to mux (or None)."""
    outputs = SynthesisOutputs.for_output(args.output, max(args.num_samples, 1))  # refuses a non-.mp4 output
    for path in outputs.all_paths():
        check_output_path("--output", path)
    if args.num_samples < 1:
        raise UsageError(f"--num_samples must be at least 1, got {args.num_samples}")
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.render_batch < 1:
        raise UsageError(f"--render_batch must be at least 1, got {args.render_batch}")
    if args.stream and args.num_samples != 1:
        raise UsageError("--stream drives one live listener: drop --num_samples or run offline")
    if args.realtime and not args.stream:
        raise UsageError("--realtime only applies to --stream")
    if args.audio is not None and args.wav2vec is not None:
        raise UsageError("give either --audio features or --wav2vec (to compute them from --wav), not both")
    if args.audio is None and (args.wav2vec is None or args.wav is None):
        raise UsageError("speaker audio features are needed: --audio A.npy, or --wav speaker.wav with --wav2vec <dir>")
    for flag, path in (("--visual", args.visual), ("--audio", args.audio), ("--wav", args.wav),
                       ("--brain_checkpoint", args.brain_checkpoint)):
        if path is not None and path.is_dir():
            raise UsageError(f"{flag} {path} is a directory; a file was expected")
        if path is not None and not path.is_file():
            raise UsageError(f"{flag} {path}: no such file")
    for flag, path in (("--body_checkpoint", args.body_checkpoint), ("--wav2vec", args.wav2vec)):
        if path is not None and not path.exists():
            raise UsageError(f"{flag} {path}: no such file or directory")
    wav = args.wav
    if wav is None and (args.audio.parent / "speaker.wav").is_file():
        wav = args.audio.parent / "speaker.wav"
    if wav is not None:
        probe_audio(wav)  # refuses a file ffmpeg cannot read before hours of rendering
    return wav


def load_speaker(args: argparse.Namespace, device) -> tuple[np.ndarray, np.ndarray]:
    """The speaker's checked ``[T,768]`` audio features and ``[T,50]`` expression."""
    speaker_exp = load_npy(args.visual, f"--visual {args.visual}")
    if args.audio is not None:
        speaker_audio = load_npy(args.audio, f"--audio {args.audio}")
        audio_source = f"--audio {args.audio}"
    else:
        from data_utils.wav2vec import extract_wav2vec_features

        # One feature frame per video frame of the speaker, whatever the wav's exact length.
        speaker_audio = extract_wav2vec_features(args.wav, model_dir=args.wav2vec, device=str(device),
                                                 num_frames=len(speaker_exp))
        audio_source = f"wav2vec features of {args.wav}"
    return check_speaker_inputs(speaker_audio, speaker_exp, audio_source=audio_source,
                                exp_source=f"--visual {args.visual}")


@cli_main("synthesize_listener.py")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_threads()
    wav = check_arguments(args)
    device = resolve_device(args.device)
    speaker_audio, speaker_exp = load_speaker(args, device)
    from brain.policy import ListenerPolicy, fast_sampling_options
    from scene.body import load_body

    policy = ListenerPolicy.from_checkpoint(args.brain_checkpoint, device=device, **fast_sampling_options(device))
    body = load_body(args.body_checkpoint, device=device)
    seed_everything(args.seed)
    outputs, report = synthesize(
        policy, body, speaker_audio, speaker_exp, args.output, wav=wav, num_samples=args.num_samples,
        seed=args.seed, steps=args.steps, guidance_audio=args.guidance_audio,
        guidance_speaker_exp=args.guidance_speaker_exp, stream=args.stream, realtime=args.realtime,
        render_batch=args.render_batch, progress=not args.no_progress)
    print(report.format())
    duration = len(speaker_audio) / FPS
    audio_note = f"with the speaker's audio from {wav}" if wav else "without audio (no --wav, no speaker.wav beside --audio)"
    print(f"{len(speaker_audio)} frames ({duration:.1f} s) {audio_note}")
    for video in outputs.videos:
        print(f"video:  {video}")
    if outputs.grid is not None:
        print(f"grid:   {outputs.grid}")
    print(f"motion: {outputs.motion}")
    print(f"plot:   {outputs.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
