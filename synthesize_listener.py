"""Listener videos from a speaker: brain (motion) -> body (frames) -> H.264 mp4 with the speaker's audio.

Usage:
    python synthesize_listener.py --audio A.npy --visual V.npy \\
        --body_checkpoint output/body --brain_checkpoint output/brain/checkpoint.pth --output out/listener.mp4 \\
        [--wav speaker.wav] [--seed 0] [--num_samples 3] [--steps N] [--attitude NAME] [--intensity X] \\
        [--guidance_audio G] [--guidance_speaker_exp G] [--guidance_attitude G] [--guidance_history G] \\
        [--device cuda|cpu] [--stream [--realtime]]

    # from the speaker's voice: a local wav2vec 2.0 model turns the wav into features causally, chunk by
    # chunk; with --stream the wav is played in as live audio (10 ms blocks, on the 25 fps clock with
    # --realtime); without --visual the brain's audio-only branch is sampled
    python synthesize_listener.py --stream --wav speaker.wav --wav2vec models/wav2vec2-base [--visual V.npy] ...

Inputs: ``--audio`` wav2vec 2.0 features float32 [T,768], or ``--wav`` + ``--wav2vec``; ``--visual`` speaker
EMOCA expression float32 [T,50] (optional: without it, audio only), all at 25 fps. The speaker's audio is
muxed in from ``--wav``, or from ``speaker.wav`` beside the features (a corpus clip folder) when present.
A wav at another rate is resampled to 16 kHz and a stereo one mixed down (both said in the log).

Outputs (all or nothing): ``out.mp4`` (H.264, yuv420p, 25 fps), the motion ``out.npy`` [T,56] and a plot of
the motion curves ``out.png``. With ``--num_samples K > 1``: ``out_s0.mp4 .. out_s{K-1}.mp4``, the
side-by-side ``out_grid.mp4``, ``out.npy`` [K,T,56] and ``out.png``.

``--stream`` replays the clip as a live session (8-frame chunks, frames written as they are ready) and
prints the latency table (features, brain, render, encode; first audio sample of a chunk -> its frames
ready; p50 / p95 / max) and the sustained frame rate; ``--realtime`` paces it by the 25 fps clock instead
of running as fast as possible. Exit code 2 and no output on bad input; SIGTERM stops like Ctrl-C, with
no output left behind.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brain.data import check_speaker_inputs
from synthesis.pipeline import SynthesisOutputs, brain_options, synthesize
from utils.arrays import check_array, load_npy
from utils.atomic import Terminated, sigterm_as_interrupt
from utils.cli import check_output_path, cli_main, cli_parser
from utils.errors import UsageError
from utils.flame import AUDIO_DIM, FPS, SPEAKER_EXP_DIM
from utils.media import probe_audio
from utils.runtime import configure_threads, resolve_device, seed_everything

PROGRAM = "synthesize_listener.py"


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(PROGRAM, __doc__, epilog=True)
    parser.add_argument("--audio", type=Path, help="speaker wav2vec 2.0 features, float32 [T,768] .npy")
    parser.add_argument("--visual", type=Path, help="speaker expression, float32 [T,50] .npy (default: audio only)")
    parser.add_argument("--wav", type=Path, help="speaker audio to mux in (default: speaker.wav beside --audio)")
    parser.add_argument("--wav2vec", type=Path, help="local wav2vec 2.0 model dir: features from --wav, causally")
    parser.add_argument("--context_seconds", type=float, default=2.0,
                        help="with --wav2vec: audio before each chunk the extractor sees (default 2)")
    parser.add_argument("--no_look_ahead", action="store_true",
                        help="with --wav2vec: emit each chunk at its own end, not 5 ms later (a 10-ms audio block "
                             "sooner live); its last frame takes the last whole wav2vec frame, not interpolated")
    parser.add_argument("--body_checkpoint", type=Path, required=True, help="body model dir or its .pth")
    parser.add_argument("--brain_checkpoint", type=Path, required=True, help="brain checkpoint .pth")
    parser.add_argument("--output", type=Path, required=True, help="output .mp4 (motion .npy and plot .png beside)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_samples", type=int, default=1, help="K different listeners for the same speaker")
    parser.add_argument("--steps", type=int, default=None,
                        help="network evaluations per window (default: the checkpoint's; the preset's 10)")
    parser.add_argument("--attitude", help="the listener's attitude, one of the brain's (default: unconditional)")
    parser.add_argument("--intensity", type=float, help="how strongly it reacts (default: the data's typical)")
    parser.add_argument("--guidance_audio", type=float, default=None, help="default: the checkpoint's")
    parser.add_argument("--guidance_speaker_exp", type=float, default=None, help="default: the checkpoint's")
    parser.add_argument("--guidance_attitude", type=float, default=None,
                        help="with --attitude: how firmly it is asked (default: the checkpoint's)")
    parser.add_argument("--guidance_history", type=float, default=None,
                        help="how much the listener follows its own past (default: the checkpoint's)")
    parser.add_argument("--device", default="auto", help="cuda, cpu or auto (CUDA when available)")
    parser.add_argument("--stream", action="store_true", help="replay as a live session and report latencies")
    parser.add_argument("--realtime", action="store_true", help="with --stream: pace the input by the 25 fps clock")
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
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.render_batch < 1:
        raise UsageError(f"--render_batch must be at least 1, got {args.render_batch}")
    if args.no_look_ahead and args.wav2vec is None:
        raise UsageError("--no_look_ahead only applies to features computed from --wav with --wav2vec")
    if args.context_seconds < 0:
        raise UsageError(f"--context_seconds must be >= 0, got {args.context_seconds}")
    if args.stream and args.num_samples != 1:
        raise UsageError("--stream drives one live listener: drop --num_samples or run offline")
    if args.realtime and not args.stream:
        raise UsageError("--realtime only applies to --stream")
    if args.audio is not None and args.wav2vec is not None:
        raise UsageError("give either --audio features or --wav2vec (to compute them from --wav), not both")
    if args.audio is None and (args.wav2vec is None or args.wav is None):
        raise UsageError("speaker audio features are needed: --audio A.npy, or --wav speaker.wav with --wav2vec <dir>")
    if args.visual is None and args.guidance_speaker_exp not in (None, 0.0):
        raise UsageError("--guidance_speaker_exp needs the speaker's expression (--visual); without it the "
                         "brain's audio-only branch is sampled")
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


@dataclass
class Speaker:
    audio: np.ndarray  # [T,768] features, or the raw 16 kHz waveform [N] when audio_features is set
    exp: np.ndarray | None  # [T,50], or None: audio only
    num_frames: int
    audio_features: object | None  # data_utils.wav2vec_stream.CausalWav2Vec
    notes: list[str]  # what the log should say about the inputs


def load_speaker(args: argparse.Namespace, device) -> Speaker:
    """The speaker's checked inputs: features (or waveform + causal extractor) and expression."""
    speaker_exp = None
    if args.visual is not None:
        speaker_exp = check_array(load_npy(args.visual, f"--visual {args.visual}"), SPEAKER_EXP_DIM,
                                  f"--visual {args.visual}")
    if args.audio is not None:
        source = f"--audio {args.audio}"
        speaker_audio = check_array(load_npy(args.audio, source), AUDIO_DIM, source)
        if speaker_exp is not None:
            speaker_audio, speaker_exp = check_speaker_inputs(speaker_audio, speaker_exp, audio_source=source,
                                                              exp_source=f"--visual {args.visual}")
        if len(speaker_audio) == 0:
            raise UsageError(f"{source}: no frames")
        return Speaker(speaker_audio, speaker_exp, len(speaker_audio), None, [])
    from data_utils.wav2vec import Wav2VecExtractor, read_speaker_audio
    from data_utils.wav2vec_stream import CausalWav2Vec

    samples, conversions = read_speaker_audio(args.wav)
    notes = [f"--wav {args.wav}: {conversion}" for conversion in conversions]
    audio_features = CausalWav2Vec(Wav2VecExtractor(args.wav2vec, device), context_seconds=args.context_seconds,
                                   look_ahead=not args.no_look_ahead)
    audio_frames = audio_features.frames_in(len(samples))
    num_frames = audio_frames if speaker_exp is None else len(speaker_exp)
    if num_frames == 0:
        raise UsageError(f"--wav {args.wav}: {len(samples) / audio_features.sample_rate:.3f} s of audio "
                         f"holds no whole frame at {FPS} fps")
    if audio_frames != num_frames:
        notes.append(f"--wav {args.wav} covers {audio_frames} frames and --visual {args.visual} {num_frames}: "
                     f"using {num_frames} (the last feature is repeated past the audio's end)")
    return Speaker(samples, speaker_exp, num_frames, audio_features, notes)


@cli_main(PROGRAM)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_threads()
    try:
        with sigterm_as_interrupt():
            return run(args)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: every temporary output was removed on the way out
        print(f"{PROGRAM}: interrupted ({exc or 'Ctrl-C'}); no output written", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


def run(args: argparse.Namespace) -> int:
    wav = check_arguments(args)
    device = resolve_device(args.device)
    speaker = load_speaker(args, device)
    from brain.policy import ListenerPolicy, fast_sampling_options
    from scene.body import load_body

    policy = ListenerPolicy.from_checkpoint(args.brain_checkpoint, device=device,
                                         **fast_sampling_options(device, live=args.realtime))
    # Attitude names, intensity and the audio-only branch are checked against the brain before the body loads;
    # the policy's own refusals are plain ValueErrors, which the CLI reports as usage errors.
    try:
        brain_options(policy, with_speaker_exp=speaker.exp is not None, guidance_audio=args.guidance_audio,
                      guidance_speaker_exp=args.guidance_speaker_exp, attitude=args.attitude,
                      intensity=args.intensity, guidance_attitude=args.guidance_attitude,
                      guidance_history=args.guidance_history)
    except ValueError as exc:
        raise UsageError(f"--brain_checkpoint {args.brain_checkpoint}: {exc}") from exc
    body = load_body(args.body_checkpoint, device=device)
    for note in speaker.notes:
        print(f"{PROGRAM}: {note}")
    if speaker.exp is None:
        print(f"{PROGRAM}: no --visual: audio only (the brain's audio-only guidance branch)")
    seed_everything(args.seed)
    outputs, report = synthesize(
        policy, body, speaker.audio, speaker.exp, args.output, audio_features=speaker.audio_features, wav=wav,
        num_samples=args.num_samples, seed=args.seed, steps=args.steps, guidance_audio=args.guidance_audio,
        guidance_speaker_exp=args.guidance_speaker_exp, attitude=args.attitude, intensity=args.intensity,
        guidance_attitude=args.guidance_attitude, guidance_history=args.guidance_history, stream=args.stream,
        realtime=args.realtime, render_batch=args.render_batch, progress=not args.no_progress)
    print(report.format())
    duration = speaker.num_frames / FPS
    audio_note = f"with the speaker's audio from {wav}" if wav else "without audio (no --wav, no speaker.wav beside --audio)"
    print(f"{speaker.num_frames} frames ({duration:.1f} s) {audio_note}")
    for video in outputs.videos:
        print(f"video:  {video}")
    if outputs.grid is not None:
        print(f"grid:   {outputs.grid}")
    print(f"motion: {outputs.motion}")
    print(f"plot:   {outputs.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
