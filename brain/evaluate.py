"""Evaluate a listener brain against ground truth and baselines with the field's metrics; one results table.

    python -m brain.evaluate --data <corpus> --split test --checkpoint <brain.pth> --samples 10 \
        --baselines all --regression_checkpoint <regression.pth> --out <dir> [--save_samples] [--steps 15] \
        [--seed 0] [--shuffled_speaker] [--audio_only] [--speaker_exp_only] [--step_sweep [5 10 15 25 50]] \
        [--guidance_sweep [1.5 2 3]] [--max_clips N] [--max_seconds S] [--device auto] [--precision fp32]
        [--cuda_graphs] [--attitudes [--intensity_sweep X ...] [--attitude_guidance_sweep [g ...]] [--sweep_samples 2]]

writes, all at once when complete (an existing evaluation folder is replaced; any other non-empty folder is
refused):

    <dir>/metrics.json        {method: {metric: value}}, ground truth's own statistics under "ground_truth"
    <dir>/metrics.md          the same as two Markdown tables (L2L/DIM metrics; REACT + motion quality)
    <dir>/run.json            what was evaluated: config, clip ids, seconds per method
    <dir>/motion_<clip>.png   ground truth vs diffusion samples (and speaker), per plotted clip
    <dir>/methods_<clip>.png  ground truth vs the first sample of every method
    <dir>/std_bars.png        per-dimension std of every method: amplitude collapse at a glance
    <dir>/samples/<method>/<clip_id>.npy   float32 [K,T,56], with --save_samples
    <dir>/attitude_confusion.png, <dir>/intensity_sweep.png, <dir>/guidance_attitude_sweep.png   with --attitudes

Methods: ``diffusion`` (``--checkpoint``), the baselines of ``brain.baselines`` (``--baselines all`` or a
comma list; ``regression`` needs ``--regression_checkpoint``) and ablations of the diffusion model, named
``diffusion[...]``:

* ``--shuffled_speaker``: clip i is generated from clip i+1's speaker (cut/tiled to its length) but scored
  against its own speaker and listener; P-FD and rPCC must get worse if the model listens.
* ``--audio_only``: the model's own audio-only guidance branch (``guidance_speaker_exp=0``).
* ``--speaker_exp_only``: the speaker audio replaced by the train split's mean audio frame (no audio information;
  the policy API has no switch for the learned null audio).
* ``--step_sweep``: DDIM steps (default 5 10 15 25 50); ``--guidance_sweep``: ``guidance_audio =
  guidance_speaker_exp = g`` (default 1.5 2 3).

``--attitudes`` (a labelled corpus and checkpoint) adds a row ``diffusion[attitude=<name>]`` per attitude
(every test clip sampled with that attitude), ``diffusion[own_attitude]`` (each clip with its own), and the
reaction-control evaluation of :mod:`brain.attitude_eval` — an attitude classifier's confusion matrices,
realism per attitude, the intensity sweep (``--intensity_sweep``, default 0.5 0.7 1 1.4 2) and optionally
an attitude-guidance sweep — under ``"attitudes"`` in metrics.json and after the tables in metrics.md.

Streaming needs no separate run: ``ListenerPolicy.generate`` is the streaming loop, so ``seam`` (jumps at
8-frame chunk boundaries) of ``diffusion`` is the streamed output's.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from brain.attitude_eval import (ATTITUDE_METHOD, DEFAULT_GUIDANCE_SWEEP as DEFAULT_ATTITUDE_GUIDANCE_SWEEP,
                                 DEFAULT_INTENSITY_SWEEP, OWN_ATTITUDE_METHOD, AttitudeEvaluation)
from brain.baselines import build_baselines, fit_to_length
from brain.data import CorpusError, DyadicCorpus
from brain.metrics import MetricContext, evaluate_method
from utils.atomic import atomic_output
from utils.config import config_to_dict
from utils.flame import FLAME_DIM, FPS
from utils.plots import plot_motion_curves, plot_std_bars
from utils.runtime import resolve_device

DEFAULT_STEP_SWEEP = (5, 10, 15, 25, 50)
DEFAULT_GUIDANCE_SWEEP = (1.5, 2.0, 3.0)
CURVE_SAMPLES = 3  # diffusion samples drawn next to the ground truth in motion_<clip>.png


@dataclass
class EvalConfig:
    data: str = ""
    out: str = ""
    split: str = "test"
    checkpoint: str = ""  # the diffusion brain; empty: baselines only
    regression_checkpoint: str = ""
    baselines: str = "all"  # "all", "none" or a comma list of brain.baselines names
    samples: int = 10  # K per clip
    steps: int = 15
    eta: float = 0.0
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"  # "bf16": diffusion sampling under bf16 autocast (ListenerPolicy)
    cuda_graphs: bool = False  # replay each window's DDIM loop as a captured CUDA graph (speed only)
    save_samples: bool = False
    max_clips: int = 0  # 0: every clip of the split
    max_seconds: float = 0.0  # 0: whole clips; else each test clip is cut to its first max_seconds
    shuffled_speaker: bool = False
    audio_only: bool = False
    speaker_exp_only: bool = False
    step_sweep: list[int] = field(default_factory=list)
    guidance_sweep: list[float] = field(default_factory=list)
    plot_clips: int = 2
    attitudes: bool = False  # the reaction-control evaluation (brain.attitude_eval)
    intensity_sweep: list[float] = field(default_factory=lambda: list(DEFAULT_INTENSITY_SWEEP))
    attitude_guidance_sweep: list[float] = field(default_factory=list)
    sweep_samples: int = 2  # samples per clip at each swept value


@dataclass
class Method:
    """One row of the table: a generator, its sampling options, and the speakers it is given."""

    name: str
    generator: object  # brain.baselines.MotionGenerator
    options: dict = field(default_factory=dict)
    speakers: list | None = None  # per clip (audio [T,768], exp [T,50]); None: the clip's own speaker


def load_clips(cfg: EvalConfig) -> tuple[list, list]:
    """``(test_clips, train_clips)``; the train split is read only when a baseline or ablation needs it."""
    corpus = DyadicCorpus(cfg.data)
    test_clips = corpus.load_split(cfg.split, min_frames=3)
    if cfg.max_clips:
        test_clips = test_clips[:cfg.max_clips]
    if cfg.max_seconds:
        cut_to_seconds(test_clips, cfg.max_seconds)
    needs_train = cfg.speaker_exp_only or cfg.attitudes or (_baseline_names(cfg) not in ([], ["regression"]))
    train_clips = corpus.load_split("train") if needs_train else []
    return test_clips, train_clips


def cut_to_seconds(clips, seconds: float) -> None:
    """Cut every clip, in place, to its first ``seconds`` (at least 3 frames): what ``--max_seconds`` does."""
    frames = max(3, int(round(seconds * FPS)))
    for clip in clips:
        clip.speaker_audio, clip.speaker_exp = clip.speaker_audio[:frames], clip.speaker_exp[:frames]
        clip.listener = clip.listener[:frames]


def _baseline_names(cfg: EvalConfig) -> list[str]:
    names = [n.strip() for n in cfg.baselines.split(",") if n.strip()]
    return [] if names == ["none"] else names


def build_methods(cfg: EvalConfig, test_clips, train_clips, device) -> list[Method]:
    """The diffusion model with its ablations, then the baselines, in table order."""
    methods = []
    if cfg.checkpoint:
        from brain.policy import ListenerPolicy

        policy = ListenerPolicy.from_checkpoint(cfg.checkpoint, device=device, precision=cfg.precision,
                                                cuda_graphs=cfg.cuda_graphs)
        base = {"steps": cfg.steps, "eta": cfg.eta}
        methods.append(Method("diffusion", policy, base))
        if cfg.shuffled_speaker:
            if len(test_clips) < 2:
                raise ValueError("--shuffled_speaker needs at least 2 test clips")
            shuffled = []
            for index, clip in enumerate(test_clips):
                other = test_clips[(index + 1) % len(test_clips)]
                shuffled.append((fit_to_length(other.speaker_audio, 0, clip.num_frames),
                                 fit_to_length(other.speaker_exp, 0, clip.num_frames)))
            methods.append(Method("diffusion[shuffled]", policy, base, shuffled))
        if cfg.audio_only:
            methods.append(Method("diffusion[audio_only]", policy, {**base, "guidance_audio": 1.0,
                                                                     "guidance_speaker_exp": 0.0}))
        if cfg.speaker_exp_only:
            mean_audio = np.concatenate([c.speaker_audio for c in train_clips]).mean(0)
            silent = [(np.broadcast_to(mean_audio, c.speaker_audio.shape).astype(np.float32), c.speaker_exp)
                      for c in test_clips]
            methods.append(Method("diffusion[speaker_exp_only]", policy, base, silent))
        for steps in cfg.step_sweep:
            if steps != cfg.steps:
                methods.append(Method(f"diffusion[steps={steps}]", policy, {**base, "steps": steps}))
        for scale in cfg.guidance_sweep:
            methods.append(Method(f"diffusion[guidance={scale:g}]", policy,
                                  {**base, "guidance_audio": scale, "guidance_speaker_exp": scale}))
        if cfg.attitudes:
            methods += [Method(ATTITUDE_METHOD.format(name), policy, {**base, "attitude": name})
                        for name in policy.attitudes]
    baselines = build_baselines(_baseline_names(cfg), train_clips, regression_checkpoint=cfg.regression_checkpoint,
                                device=str(device))
    methods += [Method(name, generator) for name, generator in baselines.items()]
    if not methods:
        raise ValueError("nothing to evaluate: give --checkpoint and/or --baselines")
    return methods


def generate_samples(method: Method, test_clips, cfg: EvalConfig) -> list[np.ndarray]:
    """One ``[K,T,56]`` per clip; clip i is sampled with seed ``cfg.seed + i``."""
    out = []
    for index, clip in enumerate(tqdm(test_clips, desc=method.name, unit="clip", leave=False)):
        audio, exp = method.speakers[index] if method.speakers else (clip.speaker_audio, clip.speaker_exp)
        motion = method.generator.generate(audio, exp, num_samples=cfg.samples, seed=cfg.seed + index,
                                           **method.options)
        expected = (cfg.samples, clip.num_frames, FLAME_DIM)
        if motion.shape != expected:
            raise RuntimeError(f"{method.name} returned {list(motion.shape)} for clip {clip.clip_id}, "
                               f"expected {list(expected)}")
        out.append(np.asarray(motion, dtype=np.float32))
    return out


def evaluate(cfg: EvalConfig) -> dict[str, dict[str, float]]:
    """Run the evaluation described by ``cfg``; write ``cfg.out`` (see module docstring); return the metrics."""
    if cfg.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {cfg.samples}")
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not (out / "metrics.json").is_file():
        raise ValueError(f"{out} is a non-empty folder that holds no earlier evaluation; refusing to replace it")
    device = resolve_device(cfg.device)
    test_clips, train_clips = load_clips(cfg)
    methods = build_methods(cfg, test_clips, train_clips, device)
    chunk_frames = getattr(methods[0].generator, "chunk_frames", 8)
    context = MetricContext.from_clips(test_clips, seed=cfg.seed, chunk_frames=chunk_frames)
    attitude_report = _attitude_evaluation(cfg, methods, test_clips, train_clips, chunk_frames)

    results = {"ground_truth": evaluate_method(context, [c.listener[None] for c in test_clips])}
    if attitude_report:
        attitude_report.score("ground_truth", [c.listener[None] for c in test_clips])
    seconds, stds, plotted = {}, {"ground_truth": np.concatenate([c.listener for c in test_clips]).std(0)}, {}
    plot_count = min(cfg.plot_clips, len(test_clips))
    with atomic_output(out, directory=True) as staging:
        for method in tqdm(methods, desc="methods", unit="method"):
            start = time.perf_counter()
            samples = generate_samples(method, test_clips, cfg)
            seconds[method.name] = time.perf_counter() - start
            results[method.name] = evaluate_method(context, samples)
            if attitude_report:
                attitude_report.score(method.name, samples)
            stds[method.name] = np.concatenate([m.reshape(-1, FLAME_DIM) for m in samples]).std(0)
            plotted[method.name] = samples[:plot_count]
            if cfg.save_samples:
                folder = staging / "samples" / method.name
                folder.mkdir(parents=True)
                for clip, motion in zip(test_clips, samples):
                    np.save(folder / f"{clip.clip_id}.npy", motion)
        metrics, tables = results, ""
        if attitude_report:
            results[OWN_ATTITUDE_METHOD] = evaluate_method(context, attitude_report.own_attitude_samples())
            attitude_section, attitude_tables = attitude_report.finish(staging)
            metrics, tables = {**results, "attitudes": attitude_section}, "\n" + attitude_tables
        _write_json(staging / "metrics.json", metrics)
        (staging / "metrics.md").write_text(format_tables(results, len(test_clips), cfg.samples) + tables)
        run = {"config": config_to_dict(cfg), "device": str(device), "clips": [c.clip_id for c in test_clips],
               "frames": [c.num_frames for c in test_clips], "seconds_per_method": seconds}
        _write_json(staging / "run.json", run)
        _write_plots(staging, test_clips[:plot_count], plotted, stds)
    return results


def _attitude_evaluation(cfg: EvalConfig, methods: list[Method], test_clips, train_clips,
                         chunk_frames: int) -> AttitudeEvaluation | None:
    """The ``--attitudes`` evaluation of the diffusion brain, or None without the flag."""
    if not cfg.attitudes:
        return None
    policy = next((m.generator for m in methods if m.name == "diffusion"), None)
    if policy is None:
        raise ValueError("--attitudes needs --checkpoint (a brain trained on a labelled corpus)")
    return AttitudeEvaluation(policy, test_clips, train_clips, samples_per_sweep=cfg.sweep_samples, seed=cfg.seed,
                              sampling={"steps": cfg.steps, "eta": cfg.eta}, intensity_sweep=cfg.intensity_sweep,
                              guidance_sweep=cfg.attitude_guidance_sweep, chunk_frames=chunk_frames)


def _write_plots(folder: Path, clips, plotted: dict, stds: dict) -> None:
    for index, clip in enumerate(clips):
        if "diffusion" in plotted:
            curves = {"ground truth": clip.listener}
            curves.update({f"diffusion #{k}": m for k, m in enumerate(plotted["diffusion"][index][:CURVE_SAMPLES])})
            plot_motion_curves(folder / f"motion_{clip.clip_id}.png", curves, speaker_exp=clip.speaker_exp,
                               title=f"{clip.clip_id}: ground truth vs diffusion samples")
        curves = {"ground truth": clip.listener}
        curves.update({name: samples[index][0] for name, samples in plotted.items() if "[" not in name})
        plot_motion_curves(folder / f"methods_{clip.clip_id}.png", curves, speaker_exp=clip.speaker_exp,
                           title=f"{clip.clip_id}: first sample of every method")
    plot_std_bars(folder / "std_bars.png", {k: v for k, v in stds.items() if "[" not in k},
                  title="per-dimension std over all test frames")


def _write_json(path: Path, data) -> None:
    """JSON with NaN written as null (undefined metrics: e.g. FRDiv of one sample)."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, (float, np.floating)):
            return None if math.isnan(value) else float(value)
        return value

    path.write_text(json.dumps(clean(data), indent=2) + "\n")


# (metric, header) per table; arrows: "↓" lower is better, "↑" higher, "→1" / "≈GT" closer to 1 / ground truth.
TABLES = (
    ("Realism, accuracy and diversity (L2L / RLHG / DIM protocol)", (
        ("fd_exp", "FD exp ↓"), ("fd_pose", "FD pose ↓"),
        ("pfd_exp", "P-FD exp ↓"), ("pfd_pose", "P-FD pose ↓"),
        ("mse_exp", "MSE exp ↓"), ("mse_pose", "MSE pose ↓"), ("sid_exp", "SID exp ≈GT"),
        ("sid_pose", "SID pose ≈GT"), ("var_exp", "Var exp ≈GT"), ("var_pose", "Var pose ≈GT"),
        ("rpcc_exp", "rPCC exp ↓"), ("rpcc_pose", "rPCC pose ↓"))),
    ("REACT 2023 metrics on FLAME, and motion quality", (
        ("frcorr", "FRCorr ↑"), ("frdist", "FRdist ↓"), ("frdiv", "FRDiv ↑"), ("frdvs", "FRDvs ↑"),
        ("frvar", "FRVar ≈GT"), ("frsyn", "FRSyn ≈GT"), ("jitter", "jitter ≈GT"), ("amp_ratio", "amp ratio →1"),
        ("seam", "seam →1"))),
)


def format_tables(results: dict[str, dict[str, float]], num_clips: int, num_samples: int) -> str:
    """Markdown: a table per metric family, a row per method (ground truth first), 4 significant digits,
    '–' for undefined values."""
    lines = [f"# Listener evaluation: {num_clips} clips, {num_samples} samples per clip", ""]
    for title, columns in TABLES:
        lines += [f"## {title}", "", "| method | " + " | ".join(h for _, h in columns) + " |",
                  "|---|" + "---:|" * len(columns)]
        for method, scores in results.items():
            cells = ["–" if scores[name] is None or math.isnan(scores[name]) else f"{scores[name]:.4g}"
                     for name, _ in columns]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Definitions and sources: docs/METRICS.md.")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> EvalConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    defaults = EvalConfig()
    parser.add_argument("--data", required=True, help="dyadic corpus folder (DESIGN.md §3.1)")
    parser.add_argument("--out", required=True, help="output folder (replaced when complete)")
    parser.add_argument("--split", default=defaults.split, choices=("train", "val", "test"))
    parser.add_argument("--checkpoint", default="", help="diffusion brain checkpoint (the 'diffusion' rows)")
    parser.add_argument("--regression_checkpoint", default="", help="brain trained with model.objective=regression")
    parser.add_argument("--baselines", default=defaults.baselines,
                        help="'all', 'none' or a comma list of random,mirror,nearest,mean,regression")
    parser.add_argument("--samples", type=int, default=defaults.samples, help="samples K per clip")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="DDIM steps")
    parser.add_argument("--eta", type=float, default=defaults.eta, help="DDIM eta")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--device", default=defaults.device, help="auto, cpu or cuda")
    parser.add_argument("--precision", default=defaults.precision, choices=("fp32", "bf16"),
                        help="diffusion sampling precision")
    parser.add_argument("--cuda_graphs", action="store_true", help="CUDA-graph the DDIM loop (same numbers, faster)")
    parser.add_argument("--save_samples", action="store_true", help="write samples/<method>/<clip_id>.npy")
    parser.add_argument("--max_clips", type=int, default=0, help="evaluate only the first N clips (0: all)")
    parser.add_argument("--max_seconds", type=float, default=0.0, help="cut clips to their first S seconds (0: all)")
    parser.add_argument("--shuffled_speaker", action="store_true", help="ablation: another clip's speaker")
    parser.add_argument("--audio_only", action="store_true", help="ablation: audio-only guidance branch")
    parser.add_argument("--speaker_exp_only", action="store_true", help="ablation: audio replaced by its train mean")
    parser.add_argument("--step_sweep", type=int, nargs="*", default=None,
                        help=f"ablation: DDIM steps (no values: {' '.join(map(str, DEFAULT_STEP_SWEEP))})")
    parser.add_argument("--guidance_sweep", type=float, nargs="*", default=None,
                        help=f"ablation: guidance scales (no values: {' '.join(map(str, DEFAULT_GUIDANCE_SWEEP))})")
    parser.add_argument("--plot_clips", type=int, default=defaults.plot_clips, help="clips drawn as motion curves")
    parser.add_argument("--attitudes", action="store_true",
                        help="reaction-control evaluation: attitude classifier, realism per attitude, intensity sweep")
    parser.add_argument("--intensity_sweep", type=float, nargs="+", default=None,
                        help=f"with --attitudes: intensities (default {' '.join(map(str, DEFAULT_INTENSITY_SWEEP))})")
    parser.add_argument("--attitude_guidance_sweep", type=float, nargs="*", default=None,
                        help="with --attitudes: attitude guidance scales, the alternative intensity knob "
                             f"(no values: {' '.join(map(str, DEFAULT_ATTITUDE_GUIDANCE_SWEEP))})")
    parser.add_argument("--sweep_samples", type=int, default=defaults.sweep_samples,
                        help="samples per clip at each swept value")
    args = vars(parser.parse_args(argv))
    if args["step_sweep"] is not None:
        args["step_sweep"] = args["step_sweep"] or list(DEFAULT_STEP_SWEEP)
    if args["guidance_sweep"] is not None:
        args["guidance_sweep"] = args["guidance_sweep"] or list(DEFAULT_GUIDANCE_SWEEP)
    if args["attitude_guidance_sweep"] is not None:
        args["attitude_guidance_sweep"] = args["attitude_guidance_sweep"] or list(DEFAULT_ATTITUDE_GUIDANCE_SWEEP)
    args = {k: v for k, v in args.items() if v is not None}
    return EvalConfig(**args)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        evaluate(cfg)
    except (CorpusError, ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(Path(cfg.out, "metrics.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
