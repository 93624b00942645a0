"""Sample listener motion from a trained brain.

    python -m brain.sample --checkpoint output/brain/checkpoint.pth --audio A.npy --visual V.npy --out motion.npy \
        [--seed 0] [--steps 15] [--num_samples K] [--eta 0] [--guidance_audio g] [--guidance_speaker_exp g] \
        [--attitude NAME] [--intensity X] [--guidance_attitude g] [--guidance_history g] [--plot motion.png] \
        [--device cpu|cuda]

``A.npy`` is float32 ``[T,768]`` speaker audio features, ``V.npy`` float32 ``[T,50]`` speaker expression
(DESIGN.md §2). Writes float32 ``[T,56]`` (``[K,T,56]`` when ``--num_samples`` > 1) atomically; a bad input
is refused with a message naming the file and the problem, exit code 2, and nothing is written.

``--attitude`` is one of the checkpoint's attitude names (trained on a labelled corpus; default: none);
``--intensity`` the motion energy relative to the data's typical for that attitude (default 1; needs a
checkpoint with an intensity condition). A name the checkpoint does not know exits 2 listing the valid ones.
"""
from __future__ import annotations

import sys
from pathlib import Path

from brain.data import check_speaker_inputs
from brain.policy import ListenerPolicy
from utils.arrays import load_npy
from utils.atomic import save_npy
from utils.cli import check_output_path, cli_main, cli_parser
from utils.errors import UsageError
from utils.plots import plot_motion_curves
from utils.runtime import configure_threads, resolve_device


@cli_main("brain.sample")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("brain.sample", __doc__, epilog=True)
    parser.add_argument("--checkpoint", required=True, help="brain checkpoint (train_diffusion.py output)")
    parser.add_argument("--audio", required=True, help="speaker audio features .npy, float32 [T,768]")
    parser.add_argument("--visual", required=True, help="speaker expression .npy, float32 [T,50]")
    parser.add_argument("--out", required=True, help="listener motion .npy to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None,
                        help="network evaluations per window (default: the checkpoint's; the preset's 10)")
    parser.add_argument("--num_samples", type=int, default=1, help="K listeners for the same speaker")
    parser.add_argument("--eta", type=float, default=None, help="DDIM eta (0: deterministic given the noise)")
    parser.add_argument("--guidance_audio", type=float, default=None, help="audio guidance scale (1: none)")
    parser.add_argument("--guidance_speaker_exp", type=float, default=None, help="speaker-expression guidance scale")
    parser.add_argument("--attitude", default=None, help="listener attitude, one of the checkpoint's names")
    parser.add_argument("--intensity", type=float, default=None,
                        help="motion energy relative to the data's typical for the attitude (default 1)")
    parser.add_argument("--guidance_attitude", type=float, default=None, help="attitude guidance scale (1: none)")
    parser.add_argument("--guidance_history", type=float, default=None,
                        help="history guidance scale (1: none; > 1 follows the listener's own past more)")
    parser.add_argument("--plot", help="also write a PNG of the main motion curves")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args(argv)
    configure_threads()
    check_output_path("--out", args.out)
    if args.plot:
        check_output_path("--plot", args.plot)
    if args.num_samples < 1:
        raise UsageError(f"--num_samples must be >= 1, got {args.num_samples}")
    speaker_audio, speaker_exp = check_speaker_inputs(
        load_npy(Path(args.audio), args.audio), load_npy(Path(args.visual), args.visual),
        audio_source=args.audio, exp_source=args.visual)
    policy = ListenerPolicy.from_checkpoint(args.checkpoint, device=resolve_device(args.device))
    motion = policy.generate(speaker_audio, speaker_exp, num_samples=args.num_samples, seed=args.seed,
                             steps=args.steps, eta=args.eta, guidance_audio=args.guidance_audio,
                             guidance_speaker_exp=args.guidance_speaker_exp, attitude=args.attitude,
                             intensity=args.intensity, guidance_attitude=args.guidance_attitude,
                             guidance_history=args.guidance_history)  # [K,T,56]
    save_npy(args.out, motion[0] if args.num_samples == 1 else motion)
    if args.plot:
        plot_motion_curves(args.plot, {f"seed {args.seed} sample {k}": m for k, m in enumerate(motion)},
                           speaker_exp=speaker_exp, title=f"{Path(args.checkpoint).name}: {args.audio}")
    print(f"wrote {args.out} {list(motion.shape if args.num_samples > 1 else motion.shape[1:])}"
          + (f" and {args.plot}" if args.plot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
