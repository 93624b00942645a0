"""Why the static ``mean`` baseline wins per-clip FD: each FD split into its mean and covariance terms.

Usage (repo root, CPU, ~1 minute for the 200-clip corpus):
    python -m data_utils.synthetic_dyadic --out <corpus> --clips 200 --seconds 60 --seed 0
    PYTHONPATH=. python benchmarks/fd_analysis.py --data <corpus> [--seconds 12] [--samples 10] [--seed 0]
        [--json <file>] [--saved_samples <eval_dir>/samples]

Scores the test clips cut to their first ``--seconds`` exactly as ``brain.evaluate --max_seconds`` does
(baseline sample seed ``seed + clip index``), with the FD of ``brain.metrics``, split by
``GaussianStats.frechet_terms_to`` into

    mean term        |mu_real - mu_generated|^2            (the clip's posture: where the face sits)
    covariance term  tr(S_r + S_g - 2 (S_r S_g)^(1/2))      (its motion: how and how much it moves)

for the baselines (``mean``, ``random``, ``nearest``) and controls built from the clip's own ground truth:

* ``gt_moved_to_train_mean``: the clip's real motion, re-centred on the train split's mean frame (right
  motion, wrong posture);
* ``gt_mean_static``: the clip's own mean frame held still (right posture, no motion);
* ``gt_other_window``: the same clip's real listener in the later windows of the full clip (4 samples for
  60 s clips cut to 12 s): the same person, same process, another stretch of time (left out when the
  clips are shorter than twice ``--seconds``);
* ``gt_reversed``: the clip's real motion played backwards (FD ignores time order: it must score 0);
* ``random_posture_from_first_second``: ``random``, re-centred on the mean of the real listener's first
  second (what a model seeded with one second of listener history could know about the posture);
* ``first_second_static``: that first-second mean held still;
* ``random_shrunk_<a>``: ``random`` pulled towards the train mean frame, ``m + a (x - m)`` (lower amplitude,
  as few-step DDIM gives).

``--saved_samples`` adds one row per ``<method>/`` folder that ``brain.evaluate --save_samples`` wrote (e.g. the
GPU run's diffusion samples), for the same corpus, split and ``--max_seconds``.

Also printed: the between-clip spread of per-clip means against the within-clip variance, the covariance
term between two disjoint windows of one real clip for several window lengths (estimation noise and slow
drift), the same for i.i.d. Gaussian frames with the clip's own covariance (pure estimation noise), and FD on
pooled test frames (one Gaussian over all clips) next to the per-clip FD.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from brain.baselines import build_baselines  # noqa: E402
from brain.data import DyadicCorpus  # noqa: E402
from brain.evaluate import cut_to_seconds  # noqa: E402
from brain.metrics import PARTS, GaussianStats, frechet_distance  # noqa: E402
from utils.atomic import save_json  # noqa: E402
from utils.cli import cli_main  # noqa: E402
from utils.flame import FPS  # noqa: E402

SHRINK_FACTORS = (0.25, 0.5, 0.75)
NOISE_WINDOW_SECONDS = (6, 12, 30)  # window lengths for the two-disjoint-windows covariance term


def load(corpus_dir: str, seconds: float):
    """``(test clips cut to seconds, full-length test listeners [T_full,56], train clips)``."""
    corpus = DyadicCorpus(corpus_dir)
    test_clips = corpus.load_split("test", min_frames=3)
    full_listeners = [np.asarray(c.listener, dtype=np.float64) for c in test_clips]
    cut_to_seconds(test_clips, seconds)  # brain.evaluate's --max_seconds cut
    return test_clips, full_listeners, corpus.load_split("train")


def build_methods(test_clips, full_listeners, train_clips, samples: int, seed: int) -> dict[str, list[np.ndarray]]:
    """``{method: one [K,T,56] array per test clip}``."""
    frames = len(test_clips[0].listener)
    train_mean = np.concatenate([c.listener for c in train_clips]).mean(0).astype(np.float64)  # [56]
    methods: dict[str, list[np.ndarray]] = {}
    for name, generator in build_baselines(["mean", "random", "nearest"], train_clips).items():
        methods[name] = [generator.generate(c.speaker_audio, c.speaker_exp, num_samples=samples,
                                            seed=seed + index).astype(np.float64)
                         for index, c in enumerate(test_clips)]

    truths = [np.asarray(c.listener, dtype=np.float64) for c in test_clips]  # [T,56] each
    first_second = [t[:FPS].mean(0) for t in truths]  # [56]: the posture one second of history reveals
    methods["gt_moved_to_train_mean"] = [(t - t.mean(0) + train_mean)[None] for t in truths]
    methods["gt_mean_static"] = [np.broadcast_to(t.mean(0), t.shape)[None].copy() for t in truths]
    later_windows = [[full[start:start + frames] for start in range(frames, len(full) - frames + 1, frames)]
                     for full in full_listeners]
    if all(later_windows):  # needs clips at least twice --seconds long
        methods["gt_other_window"] = [np.stack(windows) for windows in later_windows]
    methods["gt_reversed"] = [t[::-1][None].copy() for t in truths]
    methods["random_posture_from_first_second"] = [
        m - m.mean(1, keepdims=True) + posture for m, posture in zip(methods["random"], first_second)]
    methods["first_second_static"] = [np.broadcast_to(p, (1, frames, len(p))).copy() for p in first_second]
    for factor in SHRINK_FACTORS:
        methods[f"random_shrunk_{factor}"] = [train_mean + factor * (m - train_mean) for m in methods["random"]]
    return methods


def load_saved_samples(folder: str, test_clips) -> dict[str, list[np.ndarray]]:
    """``{method: [K,T,56] per test clip}`` from ``<folder>/<method>/<clip_id>.npy`` (``brain.evaluate
    --save_samples``); a method folder lacking a clip, or of another length, is an error, not a skipped row."""
    methods = {}
    for method_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        motions = []
        for clip in test_clips:
            motion = np.load(method_dir / f"{clip.clip_id}.npy").astype(np.float64)
            if motion.ndim != 3 or motion.shape[1:] != clip.listener.shape:
                raise ValueError(f"{method_dir.name}/{clip.clip_id}.npy is {list(motion.shape)}, expected "
                                 f"[K,{len(clip.listener)},{clip.listener.shape[1]}]: same --seconds as the evaluation?")
            motions.append(motion)
        methods[f"saved:{method_dir.name}"] = motions
    return methods


def fd_terms(truths, method_samples) -> dict[str, float]:
    """Per-clip FD and its two terms per part, averaged over samples then clips (as ``evaluate_method``)."""
    out = {}
    for part, sl in PARTS.items():
        per_clip = []  # [clips, 2]
        for truth, motion in zip(truths, method_samples):
            reference = GaussianStats.fit(truth[:, sl])
            per_clip.append(np.mean([reference.frechet_terms_to(m[:, sl]) for m in motion], axis=0))
        mean_term, covariance_term = np.mean(per_clip, axis=0)
        out[f"fd_{part}"] = float(mean_term + covariance_term)
        out[f"mean_term_{part}"] = float(mean_term)
        out[f"cov_term_{part}"] = float(covariance_term)
        pooled_generated = np.concatenate([m.reshape(-1, m.shape[-1]) for m in method_samples])[:, sl]
        out[f"pooled_fd_{part}"] = frechet_distance(np.concatenate(truths)[:, sl], pooled_generated)
    return out


def spread(truths, train_clips, full_listeners) -> dict[str, dict[str, float]]:
    """Per part: how far per-clip means lie apart compared with how much a clip moves around its own mean."""
    train_mean = np.concatenate([c.listener for c in train_clips]).mean(0)
    out = {}
    for part, sl in PARTS.items():
        clip_means = np.stack([t[:, sl].mean(0) for t in truths])  # [clips, width]
        within = float(np.mean([np.trace(np.cov(t[:, sl], rowvar=False)) for t in truths]))
        between = float(np.trace(np.cov(clip_means, rowvar=False)))  # summed variance of clip means over dims
        to_train_mean = float(np.mean(((clip_means - train_mean[sl]) ** 2).sum(1)))
        full_means = np.stack([f[:, sl].mean(0) for f in full_listeners])
        out[part] = {"within_clip_trace": within, "between_clip_means_trace": between,
                     "between_over_within": between / within,
                     "mean_sq_distance_clip_mean_to_train_mean": to_train_mean,
                     "between_clip_means_trace_full_clips": float(np.trace(np.cov(full_means, rowvar=False)))}
    return out


def estimation_noise(full_listeners, seed: int) -> dict[str, dict[str, float]]:
    """Covariance term between two disjoint windows of one real clip, and between a window and i.i.d.
    Gaussian frames with that window's own mean and covariance, averaged over clips, per window length."""
    rng = np.random.default_rng(seed)
    out = {}
    for seconds in NOISE_WINDOW_SECONDS:
        frames = seconds * FPS
        for part, sl in PARTS.items():
            real_pairs, iid = [], []
            for full in full_listeners:
                if len(full) < 2 * frames:
                    continue
                first, second = full[:frames, sl], full[frames:2 * frames, sl]
                reference = GaussianStats.fit(first)
                real_pairs.append(reference.frechet_terms_to(second))
                draws = rng.multivariate_normal(reference.mean, reference.cov, size=frames)  # [frames, width]
                iid.append(reference.frechet_terms_to(draws))
            if not real_pairs:
                continue
            out[f"{seconds}s_{part}"] = {
                "windows": len(real_pairs),
                "within_window_trace": float(np.mean([np.trace(np.cov(f[:frames, sl], rowvar=False))
                                                      for f in full_listeners if len(f) >= 2 * frames])),
                "next_window_mean_term": float(np.mean([p[0] for p in real_pairs])),
                "next_window_cov_term": float(np.mean([p[1] for p in real_pairs])),
                "iid_gaussian_cov_term": float(np.mean([p[1] for p in iid]))}
    return out


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def print_table(header: list[str], rows: dict[str, dict], keys: list[str]) -> None:
    """A markdown table: one row per entry of ``rows`` (its name first), the values under ``keys``."""
    print("\n| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(_fmt(values[key]) for key in keys) + " |")


@cli_main("benchmarks/fd_analysis.py")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/fd_analysis.py", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="corpus folder (data_utils.synthetic_dyadic)")
    parser.add_argument("--seconds", type=float, default=12.0, help="cut test clips to their first S seconds")
    parser.add_argument("--samples", type=int, default=10, help="K samples per clip for the baselines")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write every number to this file")
    parser.add_argument("--saved_samples", help="a brain.evaluate --save_samples folder (<eval_dir>/samples)")
    args = parser.parse_args(argv)

    test_clips, full_listeners, train_clips = load(args.data, args.seconds)
    truths = [np.asarray(c.listener, dtype=np.float64) for c in test_clips]
    methods = build_methods(test_clips, full_listeners, train_clips, args.samples, args.seed)
    if args.saved_samples:
        methods.update(load_saved_samples(args.saved_samples, test_clips))
    results = {name: fd_terms(truths, samples) for name, samples in methods.items()}
    spreads = spread(truths, train_clips, full_listeners)
    noise = estimation_noise(full_listeners, args.seed)

    print(f"{len(test_clips)} test clips x {len(truths[0])} frames, {len(train_clips)} train clips, "
          f"K={args.samples} for baselines\n")
    print_table(["method", "FD exp", "= mean term", "+ cov term", "FD pose", "= mean term", "+ cov term",
                 "pooled FD exp", "pooled FD pose"], results,
                ["fd_exp", "mean_term_exp", "cov_term_exp", "fd_pose", "mean_term_pose", "cov_term_pose",
                 "pooled_fd_exp", "pooled_fd_pose"])
    print_table(["part", "within-clip trace", "between-clip trace of clip means", "ratio",
                 "mean |clip mean - train mean|^2", "between-clip trace, full-length clips"], spreads,
                ["within_clip_trace", "between_clip_means_trace", "between_over_within",
                 "mean_sq_distance_clip_mean_to_train_mean", "between_clip_means_trace_full_clips"])
    print_table(["window, part", "windows", "within-window trace", "next window: mean term",
                 "next window: cov term", "i.i.d. Gaussian: cov term"], noise,
                ["windows", "within_window_trace", "next_window_mean_term", "next_window_cov_term",
                 "iid_gaussian_cov_term"])
    if args.json:
        save_json(args.json, {"config": vars(args), "fd_terms": results, "spread": spreads,
                              "estimation_noise": noise})
    return 0


if __name__ == "__main__":
    sys.exit(main())
