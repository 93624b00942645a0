"""Does the brain alone hold a listener's statistics over minutes? Long rollouts, per-bin drift, any device.

    PYTHONPATH=. python benchmarks/drift_offline.py --checkpoint B.pth --seconds 300 \
        --sampling "" "guidance=5,guidance_history=3" --attitude speaker_clip

The features-control half of ``benchmarks/bench_live.py`` without the body, the audio or the clock, so that a
sampling setting can be checked for drift on a CPU: a synthetic dyadic corpus of ``--gt_clips`` clips of
``--seconds`` (seed 1, as bench_live writes it) gives the speaker (clip 0) and the ground-truth listeners (those
of the asked attitude when ``--attitude`` is given: a listener's per-minute spread depends on it); for
each ``--sampling`` entry (a comma list as in ``brain.evaluate --sweep``; empty: the checkpoint's defaults) the
brain generates ``--samples`` listeners for clip 0's speaker, and each is scored per ``--bin_seconds`` bin
against the spread of the ground truth's bins (bench_live's drift table: the share of dimensions whose bin mean
and bin std lie within the range of the ground truth's, and the median std over the ground truth's typical
one: near 0 = freezing, >> 1 = blowing up), beside the ground truth's own leave-one-out row.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench_live import drift_rows, leave_one_out_row, print_drift, truth_for  # noqa: E402
from brain.data import DyadicCorpus  # noqa: E402
from brain.evaluate import parse_sweep_entry  # noqa: E402
from brain.policy import ListenerPolicy, fast_sampling_options  # noqa: E402
from data_utils.synthetic_dyadic import write_synthetic_corpus  # noqa: E402
from utils.flame import FPS  # noqa: E402
from utils.runtime import resolve_device  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a trained brain")
    parser.add_argument("--seconds", type=float, default=300.0, help="length of each rollout and ground-truth clip")
    parser.add_argument("--bin_seconds", type=float, default=60.0)
    parser.add_argument("--gt_clips", type=int, default=8,
                        help="ground-truth clips (>= 3: the corpus's splits; with an attitude asked, >= 2 of it)")
    parser.add_argument("--samples", type=int, default=1, help="listeners per sampling entry")
    parser.add_argument("--sampling", nargs="+", default=[""], help="sampling entries ('' = the checkpoint's)")
    parser.add_argument("--attitude", help="attitude asked ('speaker_clip': that of clip 0's listener)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the corpus (kept, reused)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.seconds < 2 * args.bin_seconds or args.gt_clips < 3:
        parser.error("needs --seconds >= 2 x --bin_seconds and --gt_clips >= 3")
    device = resolve_device(args.device)
    corpus_dir = args.work / f"speaker_corpus_{args.gt_clips}x{args.seconds:g}s"
    if not (corpus_dir / "meta.json").is_file():
        write_synthetic_corpus(corpus_dir, clips=args.gt_clips, seconds=args.seconds, seed=1)
    corpus = DyadicCorpus(corpus_dir)
    clips = [corpus.load_clip(path.name) for path in sorted((corpus_dir / "clips").iterdir())]
    policy = ListenerPolicy.from_checkpoint(args.checkpoint, device=device, **fast_sampling_options(device))
    attitude = clips[0].attitude if args.attitude == "speaker_clip" else args.attitude
    bin_frames = round(args.bin_seconds * FPS)
    try:
        truth = truth_for(clips, attitude)
    except ValueError as exc:
        parser.error(str(exc))
    control = leave_one_out_row(truth, bin_frames)
    print(f"{args.checkpoint} (step {policy.training_step}); speaker clip 0 of {corpus_dir}, {args.seconds:g} s; "
          f"attitude asked: {attitude or 'none'}; ground-truth listeners: "
          f"{', '.join(str(clip.attitude) for clip in clips)} ({len(truth)} scored against); device {device}")
    for entry in args.sampling:
        options = parse_sweep_entry(entry, "--sampling") if entry else {}
        start = time.perf_counter()
        motion = policy.generate(clips[0].speaker_audio, clips[0].speaker_exp, num_samples=args.samples, seed=0,
                                 attitude=attitude, **options)  # [K,T,56]
        seconds = time.perf_counter() - start
        for index, sample in enumerate(motion):
            print_drift(f"sampling {entry or 'as trained'}, listener {index} ({seconds:.0f} s to generate)",
                        drift_rows(sample, truth, None, bin_frames), control, args.bin_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
