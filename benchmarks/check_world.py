"""Is the synthetic dyadic world a benchmark? The oracle against the data baselines, on CPU in a few minutes.

    PYTHONPATH=. python benchmarks/check_world.py                          # 200 clips x 20 s, seed 0, 3 resamples
    PYTHONPATH=. python benchmarks/check_world.py --seconds 60             # longer clips
    PYTHONPATH=. python benchmarks/check_world.py --work /tmp/world        # keep the corpora there

writes the default world (``data_utils.synthetic_dyadic --clips --seconds --seed``, no other flag) and
``--resamples`` resamples of it (``--resample_seed 1..R``), then scores the test split as ``brain.evaluate
--oracle`` does (``brain.metrics.evaluate_method``; baselines from ``brain.baselines`` fitted on train, K =
``--samples``, seed 0 + clip index) and prints one table and the three checks of the benchmark world:

1. **the oracle wins**: every baseline (mean, random, nearest, mirror) scores FD exp and P-FD exp at least
   ``MARGIN`` times the oracle's;
2. **the speaker matters**: ``oracle[shuffled]`` (clip c scored with the resampled listener of clip c+1)
   scores P-FD exp at least ``SPEAKER_FACTOR`` times the oracle's;
3. **several reactions are plausible**: the oracle's FRDiv is at least ``DIVERSITY_FLOOR`` of ``2 x FRVar`` of
   the ground truth — the share of a clip's motion variance that differs between two listeners of the same
   speaker (0: one reaction per cue, fully determined; about 1: listeners unrelated in time).

Two diagnostics are printed beside them, not checked: ``oracle[shuffled, same attitude]`` (the next test clip
of the same attitude, so only the speaker differs) and ``oracle[attitude unknown]`` (listeners drawn for the
clip's own speaker with an attitude drawn at random: the best an attitude-blind model can do). Exit status 1
when a check fails.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from brain.baselines import DATA_BASELINES, build_baselines, fit_to_length  # noqa: E402
from brain.data import DyadicCorpus  # noqa: E402
from brain.metrics import MetricContext, evaluate_method  # noqa: E402
from brain.oracle import ORACLE, SHUFFLED_ORACLE, load_resampled_listeners, oracle_samples  # noqa: E402
from data_utils import synthetic_dyadic as world  # noqa: E402

MARGIN = 1.5  # check 1: every baseline's FD exp and P-FD exp / the oracle's
SPEAKER_FACTOR = 2.0  # check 2: oracle[shuffled] P-FD exp / the oracle's
DIVERSITY_FLOOR = 0.3  # check 3: oracle FRDiv / (2 x ground-truth FRVar)
SAME_ATTITUDE = "oracle[shuffled, same attitude]"
ATTITUDE_UNKNOWN = "oracle[attitude unknown]"
UNKNOWN_ATTITUDE_RESAMPLE = 1000  # listener streams of the attitude-unknown rows: --resample_seed 1000 + r
COLUMNS = (("fd_exp", "FD exp"), ("pfd_exp", "P-FD exp"), ("fd_pose", "FD pose"), ("pfd_pose", "P-FD pose"),
           ("mse_exp", "MSE exp"), ("frdiv", "FRDiv"), ("frvar", "FRVar"), ("sid_exp", "SID exp"),
           ("amp_ratio", "amp ratio"))


def write_world(work: Path, clips: int, seconds: float, seed: int, resamples: int) -> tuple[Path, list[Path]]:
    """The corpus and its resamples under ``work`` (reused when already there: same arguments, same bytes)."""
    def corpus(resample_seed: int) -> Path:
        path = work / f"world_{clips}x{seconds:g}s_seed{seed}_resample{resample_seed}"
        if not (path / "meta.json").is_file():
            world.write_synthetic_corpus(path, clips, seconds, seed, resample_seed=resample_seed)
        return path

    return corpus(0), [corpus(j) for j in range(1, resamples + 1)]


def _attitudes(root: Path, clip_ids) -> list[str]:
    return [json.loads((root / "clips" / i / "labels.json").read_text())["attitude"] for i in clip_ids]


def same_attitude_shuffle(resampled: list[np.ndarray], attitudes: list[str]) -> list[np.ndarray] | None:
    """Clip c gets the resampled listeners of the next clip (cyclically) with c's attitude; None when some
    attitude has a single clip."""
    rows = []
    for index, attitude in enumerate(attitudes):
        order = [(index + step) % len(attitudes) for step in range(1, len(attitudes))]
        other = next((j for j in order if attitudes[j] == attitude), None)
        if other is None:
            return None
        frames = resampled[index].shape[1]
        rows.append(np.stack([fit_to_length(listener, 0, frames) for listener in resampled[other]]))
    return rows


def attitude_unknown(clips, corpus_seed: int, draws: int) -> list[np.ndarray]:
    """``[draws,T,56]`` per clip (whole clips of the corpus written with ``corpus_seed``): listeners of the clip's
    own speaker, each with an attitude drawn uniformly at random."""
    rng = np.random.default_rng(corpus_seed)
    synthetic = world.SyntheticWorld()
    rows = []
    for clip in clips:
        index = int(clip.clip_id.split("_")[-1])
        motions = []
        for draw in range(draws):
            streams = world.clip_generators(corpus_seed, index, UNKNOWN_ATTITUDE_RESAMPLE + draw)
            speaker = world.synthesize_speaker(streams["speaker"], synthetic, clip.num_frames)
            assert np.array_equal(speaker.speaker_exp, clip.speaker_exp), "not the corpus this seed writes"
            attitude = world.ATTITUDE_NAMES[int(rng.integers(len(world.ATTITUDE_NAMES)))]
            motions.append(world.synthesize_listener(streams["listener"], synthetic, speaker, attitude)[0])
        rows.append(np.stack(motions))
    return rows


def score_world(corpus: Path, resamples: list[Path], corpus_seed: int, *, split: str = "test", samples: int = 10,
                seed: int = 0) -> dict[str, dict[str, float]]:
    """``{method: metrics}`` for ground truth, the oracle rows, the diagnostics and the data baselines."""
    reader = DyadicCorpus(corpus)
    clips = reader.load_split(split, min_frames=3)
    train = reader.load_split("train")
    context = MetricContext.from_clips(clips, seed=seed)
    resampled = load_resampled_listeners([str(r) for r in resamples], str(corpus), split, clips)
    rows = dict(oracle_samples(resampled))
    same = same_attitude_shuffle(resampled, _attitudes(corpus, [c.clip_id for c in clips]))
    if same is not None:
        rows[SAME_ATTITUDE] = same
    rows[ATTITUDE_UNKNOWN] = attitude_unknown(clips, corpus_seed, len(resamples))
    for name, generator in build_baselines(DATA_BASELINES, train).items():
        rows[name] = [generator.generate(c.speaker_audio, c.speaker_exp, num_samples=samples, seed=seed + index)
                      for index, c in enumerate(clips)]
    results = {"ground_truth": evaluate_method(context, [c.listener[None] for c in clips])}
    results.update({name: evaluate_method(context, motions) for name, motions in rows.items()})
    return results


def checks(results: dict[str, dict[str, float]]) -> list[tuple[str, float, float, bool]]:
    """``(what, measured, required, holds)`` for the three properties of the benchmark world."""
    oracle = results[ORACLE]
    out = []
    for baseline in DATA_BASELINES:
        for metric, label in (("fd_exp", "FD exp"), ("pfd_exp", "P-FD exp")):
            ratio = results[baseline][metric] / oracle[metric]
            out.append((f"{baseline} {label} / oracle", ratio, MARGIN, ratio >= MARGIN))
    ratio = results[SHUFFLED_ORACLE]["pfd_exp"] / oracle["pfd_exp"]
    out.append(("oracle[shuffled] P-FD exp / oracle", ratio, SPEAKER_FACTOR, ratio >= SPEAKER_FACTOR))
    share = oracle["frdiv"] / (2 * results["ground_truth"]["frvar"])
    out.append(("oracle FRDiv / (2 x ground-truth FRVar)", share, DIVERSITY_FLOOR, share >= DIVERSITY_FLOOR))
    return out


def format_report(results: dict[str, dict[str, float]], header: str) -> str:
    lines = [header, "", "| method | " + " | ".join(label for _, label in COLUMNS) + " | FD exp / oracle | P-FD exp / oracle |",
             "|---|" + "---:|" * (len(COLUMNS) + 2)]
    oracle = results[ORACLE]
    for method, scores in results.items():
        cells = [f"{scores[name]:.4g}" for name, _ in COLUMNS]
        cells += [f"{scores['fd_exp'] / oracle['fd_exp']:.3g}", f"{scores['pfd_exp'] / oracle['pfd_exp']:.3g}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "| check | measured | required | holds |", "|---|---:|---:|---|"]
    for what, measured, required, holds in checks(results):
        lines.append(f"| {what} | {measured:.3g} | ≥ {required:g} | {'yes' if holds else '**no**'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=3, help="resampled corpora: the oracle's K")
    parser.add_argument("--samples", type=int, default=10, help="K samples per clip for the baselines")
    parser.add_argument("--work", help="folder for the corpora (kept; default: a temporary folder, removed)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work) if args.work else Path(scratch)
        corpus, resamples = write_world(work, args.clips, args.seconds, args.seed, args.resamples)
        written = time.perf_counter() - start
        results = score_world(corpus, resamples, args.seed, samples=args.samples)
    header = (f"World: {args.clips} clips x {args.seconds:g} s, seed {args.seed}; test split scored; oracle K = "
              f"{args.resamples} resamples, baselines K = {args.samples}. Corpora written in {written:.0f} s, "
              f"total {time.perf_counter() - start:.0f} s.")
    report = format_report(results, header)
    print(report)
    return 0 if all(holds for *_, holds in checks(results)) else 1


if __name__ == "__main__":
    sys.exit(main())
