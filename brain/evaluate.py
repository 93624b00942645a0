"""Evaluate a listener brain against ground truth and baselines with the field's metrics; one results table.

    python -m brain.evaluate --data <corpus> --split test --checkpoint <brain.pth> --samples 10 \
        --baselines all --regression_checkpoint <regression.pth> --out <dir> [--save_samples] [--steps 15] \
        [--seed 0] [--shuffled_speaker] [--audio_only] [--speaker_exp_only] [--step_sweep [5 10 15 25 50]] \
        [--guidance_sweep [1.5 2 3]] [--max_clips N] [--max_seconds S] [--device auto] [--precision fp32]
        [--cuda_graphs] [--batch_windows 512] [--oracle R1 R2 ...] [--sampler dpmpp_2m] [--sweep "sampler=ddim,steps=15" "guidance=3" ...]
        [--sampling "guidance_history=2"]
        [--attitudes [--intensity_sweep X ...] [--attitude_guidance_sweep [g ...]] [--sweep_samples 2]]

writes, all at once when complete (an existing evaluation folder is replaced; any other non-empty folder is
refused):

    <dir>/metrics.json        {method: {metric: value}}, ground truth's own statistics under "ground_truth"
    <dir>/metrics.md          the same as two Markdown tables (L2L/DIM metrics; REACT + motion quality)
    <dir>/run.json            what was evaluated: config, clip ids, seconds per method, notes on what was left out,
                              and checkpoint_step (the training step of --checkpoint's weights)
    <dir>/motion_<clip>.png   ground truth vs diffusion samples (and speaker), per plotted clip
    <dir>/methods_<clip>.png  ground truth vs the first sample of every method
    <dir>/std_bars.png        per-dimension std of every method: amplitude collapse at a glance
    <dir>/samples/<method>/<clip_id>.npy   float32 [K,T,56], with --save_samples
    <dir>/attitude_confusion.png, intensity_sweep.png, guidance_attitude_sweep.png   with --attitudes

Methods: ``diffusion`` (``--checkpoint``), the baselines of ``brain.baselines`` (``--baselines all`` or a
comma list; ``regression`` needs ``--regression_checkpoint``) and ablations of the diffusion model, named
``diffusion[...]``:

* ``--shuffled_speaker``: clip i is generated from clip i+1's speaker (cut/tiled to its length) but scored
  against its own speaker and listener; P-FD and rPCC must get worse if the model listens.
* ``--audio_only``: the model's own audio-only guidance branch (``guidance_speaker_exp=0``).
* ``--speaker_exp_only``: the speaker audio replaced by the train split's mean audio frame (no audio information;
  the policy API has no switch for the learned null audio).
* ``--external NAME=DIR ...``: rows for samples made elsewhere (another system, an earlier version),
  ``DIR/<clip_id>.npy`` float32 ``[K,T,56]`` per clip, scored exactly like the others.
* ``--sweep E1 E2 ...``: one row ``diffusion[E]`` per entry, each a comma list of sampling options
  (``steps``, ``sampler``, ``eta``, ``guidance`` — both scales —, ``guidance_audio``, ``guidance_speaker_exp``,
  ``guidance_attitude``, ``guidance_history``) on top of the base ones; ``benchmarks/diversity_fidelity.py`` sweeps a grid this way
  and plots it.
* ``--sampling E``: the base options themselves, the same comma list, for every diffusion row (the ablations,
  the sweeps and ``--attitudes`` included) instead of the checkpoint's ``sample`` defaults: how a sampling
  setting chosen after training is scored as the model.
* ``--step_sweep``: network evaluations (default 5 10 15 25 50); ``--guidance_sweep``: ``guidance_audio =
  guidance_speaker_exp = g`` (default 1.5 2 3).

``--oracle R1 R2 ...``: resamples of ``--data`` (``data_utils.synthetic_dyadic --resample_seed``) score the
``oracle`` (clip c's K = R samples are its resampled listeners) and ``oracle[shuffled]`` (clip c+1's) rows, and
every method gets ``metrics.json[method]["ratio_to_oracle"][metric]`` and a ratio table in metrics.md
(:mod:`brain.oracle`).

On a labelled corpus (``labels.json``) a checkpoint trained with attitudes samples every ``diffusion`` row
(and its ablations) with each clip's own attitude, as the truth and the oracle listen with it; otherwise with
none. ``--attitudes`` (a labelled corpus and checkpoint) adds a row ``diffusion[attitude=<name>]`` per attitude
(every test clip sampled with that attitude), ``diffusion[no_attitude]`` (none asked), and the
reaction-control evaluation of :mod:`brain.attitude_eval` — an attitude classifier's confusion matrices,
realism per attitude (the oracle's too), the intensity sweep (``--intensity_sweep``, default 0.5 0.7 1 1.4 2)
and optionally an attitude-guidance sweep — under ``"attitudes"`` in metrics.json and after the tables in
metrics.md.

Streaming needs no separate run: ``ListenerPolicy.generate`` is the streaming loop, so ``seam`` (jumps at
8-frame chunk boundaries) of ``diffusion`` is the streamed output's.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from brain import oracle
from brain.attitude_eval import (ATTITUDE_METHOD, DEFAULT_GUIDANCE_SWEEP as DEFAULT_ATTITUDE_GUIDANCE_SWEEP,
                                 DEFAULT_INTENSITY_SWEEP, NO_ATTITUDE_METHOD, AttitudeEvaluation)
from brain.baselines import build_baselines, fit_to_length
from brain.data import DyadicCorpus
from brain.metrics import MetricContext, evaluate_method
from brain.policy import MAX_BATCH_WINDOWS
from utils.arrays import check_array, load_npy
from utils.atomic import atomic_output, save_json
from utils.cli import check_output_path, cli_main, cli_parser
from utils.config import config_to_dict
from utils.errors import UsageError
from utils.flame import FLAME_DIM, FPS
from utils.plots import plot_motion_curves, plot_std_bars
from utils.runtime import configure_threads, resolve_device

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
    steps: int | None = None  # None: the checkpoint's sampling defaults
    sampler: str = ""  # "": the checkpoint's
    eta: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"  # "bf16": diffusion sampling under bf16 autocast (ListenerPolicy)
    cuda_graphs: bool = False  # replay each window's DDIM loop as a captured CUDA graph (speed only)
    batch_windows: int = MAX_BATCH_WINDOWS  # windows (clips x samples) denoised together (speed and memory only)
    save_samples: bool = False
    max_clips: int = 0  # 0: every clip of the split
    max_seconds: float = 0.0  # 0: whole clips; else each test clip is cut to its first max_seconds
    shuffled_speaker: bool = False
    audio_only: bool = False
    speaker_exp_only: bool = False
    step_sweep: list[int] = field(default_factory=list)
    guidance_sweep: list[float] = field(default_factory=list)
    sweep: list[str] = field(default_factory=list)  # extra rows: comma lists of sampling options
    sampling: str = ""  # a comma list of sampling options for every diffusion row (default: the checkpoint's)
    workers: int = 1  # processes that score methods while the next one samples
    external: list[str] = field(default_factory=list)  # NAME=DIR: samples made elsewhere, DIR/<clip_id>.npy
    plot_clips: int = 2
    oracle: list[str] = field(default_factory=list)  # resample corpora of `data`: the oracle rows (brain.oracle)
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
    own_attitude: bool = False  # sample each clip with its labelled attitude (options["attitude"] per clip)
    samples: list | None = None  # precomputed [K,T,56] per clip (the oracle rows); generator unused


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


SWEEP_OPTIONS = {"steps": int, "sampler": str, "eta": float, "guidance_audio": float, "guidance_speaker_exp": float,
                 "guidance_attitude": float, "guidance_history": float}


def parse_sweep_entry(entry: str, flag: str = "--sweep") -> dict:
    """``"sampler=ddim,steps=15,guidance=2"`` -> policy sampling options (``guidance`` sets both scales)."""
    options = {}
    for item in entry.split(","):
        key, _, value = item.partition("=")
        key = key.strip()
        names = ("guidance_audio", "guidance_speaker_exp") if key == "guidance" else (key,)
        if not value or any(name not in SWEEP_OPTIONS for name in names):
            raise UsageError(f"{flag} {entry!r}: expected key=value items with keys "
                             f"{', '.join(['guidance', *SWEEP_OPTIONS])}")
        try:
            options.update({name: SWEEP_OPTIONS[name](value) for name in names})
        except ValueError:
            raise UsageError(f"{flag} {entry!r}: {key}={value!r} is not a valid value") from None
    return options


def _baseline_names(cfg: EvalConfig) -> list[str]:
    names = [n.strip() for n in cfg.baselines.split(",") if n.strip()]
    return [] if names == ["none"] else names


def left_out_notes(cfg: EvalConfig) -> list[str]:
    """What the requested evaluation leaves out, and why: printed, and kept in ``run.json`` and ``metrics.md``."""
    if "all" in _baseline_names(cfg) and not cfg.regression_checkpoint:
        return ["--baselines all without --regression_checkpoint: the regression baseline is left out "
                "(train one with model.objective=regression and pass it as --regression_checkpoint)"]
    return []


def build_methods(cfg: EvalConfig, test_clips, train_clips, device) -> list[Method]:
    """The diffusion model with its ablations, then the baselines, in table order."""
    methods = []
    if cfg.checkpoint:
        from brain.policy import ListenerPolicy

        policy = ListenerPolicy.from_checkpoint(cfg.checkpoint, device=device, precision=cfg.precision,
                                                cuda_graphs=cfg.cuda_graphs)
        base = {name: value for name, value in (("steps", cfg.steps), ("sampler", cfg.sampler or None),
                                                  ("eta", cfg.eta)) if value is not None}
        base.update(parse_sweep_entry(cfg.sampling, "--sampling") if cfg.sampling else {})
        own = bool(policy.attitudes) and all(clip.attitude is not None for clip in test_clips)

        def diffusion(name, options, speakers=None):
            return Method(name, policy, options, speakers, own_attitude=own)

        methods.append(diffusion("diffusion", base))
        if cfg.shuffled_speaker:
            if len(test_clips) < 2:
                raise UsageError("--shuffled_speaker needs at least 2 test clips")
            shuffled = []
            for index, clip in enumerate(test_clips):
                other = test_clips[(index + 1) % len(test_clips)]
                shuffled.append((fit_to_length(other.speaker_audio, 0, clip.num_frames),
                                 fit_to_length(other.speaker_exp, 0, clip.num_frames)))
            methods.append(diffusion("diffusion[shuffled]", base, shuffled))
        if cfg.audio_only:
            methods.append(diffusion("diffusion[audio_only]",
                                     {**base, "guidance_audio": 1.0, "guidance_speaker_exp": 0.0}))
        if cfg.speaker_exp_only:
            mean_audio = np.concatenate([c.speaker_audio for c in train_clips]).mean(0)
            silent = [(np.broadcast_to(mean_audio, c.speaker_audio.shape).astype(np.float32), c.speaker_exp)
                      for c in test_clips]
            methods.append(diffusion("diffusion[speaker_exp_only]", base, silent))
        for steps in cfg.step_sweep:
            if steps != base.get("steps", policy.cfg.sample.steps):
                methods.append(diffusion(f"diffusion[steps={steps}]", {**base, "steps": steps}))
        for scale in cfg.guidance_sweep:
            methods.append(diffusion(f"diffusion[guidance={scale:g}]",
                                     {**base, "guidance_audio": scale, "guidance_speaker_exp": scale}))
        for entry in cfg.sweep:
            methods.append(diffusion(f"diffusion[{entry}]", {**base, **parse_sweep_entry(entry)}))
        if cfg.attitudes:
            methods += [Method(ATTITUDE_METHOD.format(name), policy, {**base, "attitude": name})
                        for name in policy.attitudes] + [Method(NO_ATTITUDE_METHOD, policy, base)]
    baselines = build_baselines(_baseline_names(cfg), train_clips, regression_checkpoint=cfg.regression_checkpoint,
                                device=str(device))
    methods += [Method(name, generator) for name, generator in baselines.items()]
    if not methods and not cfg.oracle and not cfg.external:
        raise UsageError("nothing to evaluate: give --checkpoint, --baselines, --external and/or --oracle")
    return methods


def load_external_samples(entry: str, test_clips) -> Method:
    """``--external NAME=DIR``: a method whose samples were made elsewhere (another system, an older version
    of this one): ``DIR/<clip_id>.npy`` float32 ``[K,T,56]`` or ``[T,56]`` per evaluated clip, at least as
    long as the clip (cut to it, like ``--max_seconds`` cuts the clips)."""
    name, _, folder = entry.partition("=")
    if not name or not folder:
        raise UsageError(f"--external {entry!r}: expected NAME=DIR")
    samples = []
    for clip in test_clips:
        source = f"--external {name}: {folder}/{clip.clip_id}.npy"
        motion = load_npy(Path(folder) / f"{clip.clip_id}.npy", source)
        motion = motion[None] if motion.ndim == 2 else motion
        if motion.ndim != 3 or motion.shape[2] != FLAME_DIM or motion.shape[1] < clip.num_frames:
            raise UsageError(f"{source}: expected [K,T>={clip.num_frames},{FLAME_DIM}], got {list(motion.shape)}")
        samples.append(check_array(motion[:, :clip.num_frames].reshape(-1, FLAME_DIM), FLAME_DIM, source)
                       .reshape(len(motion), clip.num_frames, FLAME_DIM))
    return Method(name, None, samples=samples)


def generate_samples(method: Method, test_clips, cfg: EvalConfig, own_attitude_samples: dict | None = None
                     ) -> list[np.ndarray]:
    """One ``[K,T,56]`` per clip; clip i is sampled with seed ``cfg.seed + i``.

    ``own_attitude_samples`` (kept by the caller across methods when ``--attitudes`` adds a row per attitude):
    a clip sampled from its own speaker with its own attitude is kept there until a later row asks exactly
    the same of it, which then takes it instead of sampling it again — ``diffusion`` asks every clip's own
    attitude, ``diffusion[attitude=<name>]`` asks it of that attitude's clips."""
    if method.samples is not None:
        return method.samples
    out: list[np.ndarray | None] = [None] * len(test_clips)
    pending = []  # (clip index, (speaker audio, speaker exp), attitude, key under which to keep its samples)
    for index, clip in enumerate(test_clips):
        speaker = method.speakers[index] if method.speakers else (clip.speaker_audio, clip.speaker_exp)
        attitude = clip.attitude if method.own_attitude else method.options.get("attitude")
        shareable = (own_attitude_samples is not None and method.speakers is None
                     and clip.attitude is not None and attitude == clip.attitude)
        key = (id(method.generator), index, tuple(sorted({**method.options, "attitude": attitude}.items())))
        if shareable and key in own_attitude_samples:
            out[index] = own_attitude_samples.pop(key)
        else:
            pending.append((index, speaker, attitude, key if shareable else None))
    for (index, _, _, key), motion in zip(pending, _sample(method, pending, cfg)):
        expected = (cfg.samples, test_clips[index].num_frames, FLAME_DIM)
        if motion.shape != expected:
            raise RuntimeError(f"{method.name} returned {list(motion.shape)} for clip {test_clips[index].clip_id}, "
                               f"expected {list(expected)}")
        out[index] = np.asarray(motion, dtype=np.float32)
        if key is not None:
            own_attitude_samples[key] = out[index]
    return out


def _sample(method: Method, pending: list, cfg: EvalConfig):
    """``[K,T,56]`` for each pending ``(clip index i, speaker, attitude, _)``, clip i with seed ``cfg.seed + i``
    and the method's options: the diffusion brain takes them in batches (``ListenerPolicy.generate_many``),
    anything else one by one."""
    generator, seeds = method.generator, [cfg.seed + index for index, *_ in pending]
    if not hasattr(generator, "generate_many"):
        for (_, (audio, exp), attitude, _), seed in tqdm(list(zip(pending, seeds)), desc=method.name, unit="clip",
                                                          leave=False):
            options = method.options if attitude is None else {**method.options, "attitude": attitude}
            yield generator.generate(audio, exp, num_samples=cfg.samples, seed=seed, **options)
        return
    options = {name: value for name, value in method.options.items() if name != "attitude"}
    yield from generator.generate_many([speaker for _, speaker, _, _ in pending], num_samples=cfg.samples, seeds=seeds,
                                       attitudes=[attitude for _, _, attitude, _ in pending],
                                       max_batch=cfg.batch_windows, **options)


class MetricPool:
    """``evaluate_method`` for each submitted method, in this process (``workers`` 1) or in a process pool;
    :meth:`results` returns them in submission order."""

    def __init__(self, context: MetricContext, workers: int):
        if workers < 1:
            raise UsageError(f"--workers must be >= 1, got {workers}")
        self.context = context
        self.pool = None
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # forkserver: workers never inherit the parent's CUDA context or its threads.
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
        self.pending: dict[str, object] = {}

    def submit(self, name: str, samples: list[np.ndarray]) -> None:
        if self.pool is None:
            self.pending[name] = evaluate_method(self.context, samples)
        else:
            self.pending[name] = self.pool.submit(evaluate_method, self.context, samples)

    def results(self) -> dict[str, dict[str, float]]:
        results = {name: value if self.pool is None else value.result() for name, value in self.pending.items()}
        if self.pool is not None:
            self.pool.shutdown()
        return results


def evaluate(cfg: EvalConfig) -> dict[str, dict[str, float]]:
    """Run the evaluation described by ``cfg``; write ``cfg.out`` (see module docstring); return the metrics."""
    if cfg.samples < 1:
        raise UsageError(f"--samples must be >= 1, got {cfg.samples}")
    out = check_output_path("--out", cfg.out, directory=True)
    if out.exists() and any(out.iterdir()) and not (out / "metrics.json").is_file():
        raise UsageError(f"--out {out} is a non-empty folder that holds no earlier evaluation; refusing to replace it")
    device = resolve_device(cfg.device)
    notes = left_out_notes(cfg)
    for note in notes:
        print(f"note: {note}")
    test_clips, train_clips = load_clips(cfg)
    methods = build_methods(cfg, test_clips, train_clips, device)
    methods += [load_external_samples(entry, test_clips) for entry in cfg.external]
    if cfg.oracle:
        resampled = oracle.load_resampled_listeners(cfg.oracle, cfg.data, cfg.split, test_clips)
        methods = [Method(name, None, samples=samples)
                   for name, samples in oracle.oracle_samples(resampled).items()] + methods
    chunk_frames = next((m.generator.chunk_frames for m in methods if hasattr(m.generator, "chunk_frames")), 8)
    context = MetricContext.from_clips(test_clips, seed=cfg.seed, chunk_frames=chunk_frames)
    attitude_report = _attitude_evaluation(cfg, methods, test_clips, train_clips, chunk_frames)

    seconds, stds, plotted = {}, {"ground_truth": np.concatenate([c.listener for c in test_clips]).std(0)}, {}
    plot_count = min(cfg.plot_clips, len(test_clips))
    # Sampling runs here, one method after another (it holds the device); scoring is CPU-only numpy and, with
    # --workers N, runs in N processes while the next method samples.
    scoring = MetricPool(context, cfg.workers)
    scoring.submit("ground_truth", [c.listener[None] for c in test_clips])
    if attitude_report:
        attitude_report.score("ground_truth", [c.listener[None] for c in test_clips])
    own_attitude_samples = {} if attitude_report else None  # see generate_samples: sampled once, used twice
    with atomic_output(out, directory=True) as staging:
        for method in tqdm(methods, desc="methods", unit="method"):
            start = time.perf_counter()
            samples = generate_samples(method, test_clips, cfg, own_attitude_samples)
            seconds[method.name] = time.perf_counter() - start
            scoring.submit(method.name, samples)
            if attitude_report:
                attitude_report.score(method.name, samples)
            stds[method.name] = np.concatenate([m.reshape(-1, FLAME_DIM) for m in samples]).std(0)
            plotted[method.name] = samples[:plot_count]
            if cfg.save_samples:
                folder = staging / "samples" / method.name
                folder.mkdir(parents=True)
                for clip, motion in zip(test_clips, samples):
                    np.save(folder / f"{clip.clip_id}.npy", motion)
        results = scoring.results()
        tables = format_tables(results, len(test_clips), cfg.samples)
        if cfg.oracle:
            ratios = oracle.ratios_to_oracle(results)
            for method, values in ratios.items():
                results[method]["ratio_to_oracle"] = values
                results[method]["calibration_miss"] = oracle.calibration_miss(values)
            tables += "\n" + oracle.format_ratio_table(ratios, len(cfg.oracle))
        if attitude_report:
            attitude_section, attitude_tables = attitude_report.finish(staging)
            tables += "\n" + attitude_tables
        tables += "".join(f"\nNote: {note}\n" for note in notes)
        save_json(staging / "metrics.json", {**results, "attitudes": attitude_section} if attitude_report else results)
        (staging / "metrics.md").write_text(tables)
        diffusion = next((m.generator for m in methods if m.name == "diffusion"), None)  # --checkpoint's policy
        run = {"config": config_to_dict(cfg), "device": str(device), "clips": [c.clip_id for c in test_clips],
               "frames": [c.num_frames for c in test_clips], "seconds_per_method": seconds, "notes": notes,
               "checkpoint_step": diffusion.training_step if diffusion is not None else None}
        save_json(staging / "run.json", run)
        _write_plots(staging, test_clips[:plot_count], plotted, stds)
    return results


def _attitude_evaluation(cfg: EvalConfig, methods: list[Method], test_clips, train_clips,
                         chunk_frames: int) -> AttitudeEvaluation | None:
    """The ``--attitudes`` evaluation of the diffusion brain, or None without the flag."""
    if not cfg.attitudes:
        return None
    diffusion = next((m for m in methods if m.name == "diffusion"), None)
    if diffusion is None:
        raise UsageError("--attitudes needs --checkpoint (a brain trained on a labelled corpus)")
    return AttitudeEvaluation(diffusion.generator, test_clips, train_clips, samples_per_sweep=cfg.sweep_samples,
                              max_batch=cfg.batch_windows,
                              seed=cfg.seed, sampling=diffusion.options, intensity_sweep=cfg.intensity_sweep,
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
    parser = cli_parser("brain.evaluate", __doc__, epilog=True)
    defaults = EvalConfig()
    parser.add_argument("--data", required=True, help="dyadic corpus folder (DESIGN.md §3.1)")
    parser.add_argument("--out", required=True, help="output folder (replaced when complete)")
    parser.add_argument("--split", default=defaults.split, choices=("train", "val", "test"))
    parser.add_argument("--checkpoint", default="", help="diffusion brain checkpoint (the 'diffusion' rows)")
    parser.add_argument("--regression_checkpoint", default="", help="brain trained with model.objective=regression")
    parser.add_argument("--baselines", default=defaults.baselines,
                        help="'all', 'none' or a comma list of random,mirror,nearest,mean,regression")
    parser.add_argument("--samples", type=int, default=defaults.samples, help="samples K per clip")
    parser.add_argument("--steps", type=int, default=None, help="network evaluations per window (default: the "
                        "checkpoint's)")
    parser.add_argument("--sampler", default=None, help="dpmpp_2m or ddim (default: the checkpoint's)")
    parser.add_argument("--eta", type=float, default=None, help="ddim's fresh-noise share (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--device", default=defaults.device, help="auto, cpu or cuda")
    parser.add_argument("--precision", default=defaults.precision, choices=("fp32", "bf16"),
                        help="diffusion sampling precision")
    parser.add_argument("--cuda_graphs", action="store_true", help="CUDA-graph the DDIM loop (same numbers, faster)")
    parser.add_argument("--batch_windows", type=int, default=defaults.batch_windows,
                        help="windows (clips x samples) the brain denoises as one batch; lower it if memory runs "
                        "out (1: one clip at a time; the numbers do not change)")
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
    parser.add_argument("--external", nargs="+", default=None, metavar="NAME=DIR",
                        help="score samples made elsewhere: DIR/<clip_id>.npy, [K,T,56] per clip")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help="processes scoring methods in parallel (CPU numpy; sampling stays in this process)")
    parser.add_argument("--sampling", default=None, metavar="OPTIONS",
                        help="sampling options for every diffusion row instead of the checkpoint's, a comma list "
                             "as in --sweep, e.g. guidance_history=2")
    parser.add_argument("--sweep", nargs="+", default=None, metavar="OPTIONS",
                        help="extra diffusion rows, each a comma list of sampling options, e.g. sampler=ddim,steps=5")
    parser.add_argument("--oracle", nargs="+", default=None, metavar="RESAMPLE",
                        help="resamples of --data (synthetic_dyadic --resample_seed): the oracle rows and ratios")
    parser.add_argument("--attitudes", action="store_true",
                        help="reaction-control evaluation: attitude classifier, realism per attitude, intensity sweep")
    parser.add_argument("--intensity_sweep", type=float, nargs="+", default=None,
                        help=f"with --attitudes: intensities (default {' '.join(map(str, DEFAULT_INTENSITY_SWEEP))})")
    parser.add_argument("--attitude_guidance_sweep", type=float, nargs="*", default=None,
                        help="with --attitudes: attitude guidance scales, the alternative intensity knob "
                             f"(no values: {' '.join(map(str, DEFAULT_ATTITUDE_GUIDANCE_SWEEP))})")
    parser.add_argument("--sweep_samples", type=int, default=defaults.sweep_samples,
                        help="with --attitudes: samples per clip at each swept value")
    args = vars(parser.parse_args(argv))
    if args["step_sweep"] is not None:
        args["step_sweep"] = args["step_sweep"] or list(DEFAULT_STEP_SWEEP)
    if args["guidance_sweep"] is not None:
        args["guidance_sweep"] = args["guidance_sweep"] or list(DEFAULT_GUIDANCE_SWEEP)
    if args["attitude_guidance_sweep"] is not None:
        args["attitude_guidance_sweep"] = args["attitude_guidance_sweep"] or list(DEFAULT_ATTITUDE_GUIDANCE_SWEEP)
    args = {k: v for k, v in args.items() if v is not None}
    return EvalConfig(**args)


@cli_main("brain.evaluate")
def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    configure_threads()
    evaluate(cfg)
    print(Path(cfg.out, "metrics.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
