"""The oracle: other real listeners of the evaluated speakers, the floor and the target of every metric.

A *resample* of a corpus (``data_utils.synthetic_dyadic --resample_seed J``, DESIGN.md §3.1) has the same clip
ids, splits, labels and bit-identical speaker files, with only the listeners' stochastic choices redrawn.
From R resamples of the evaluated corpus ``brain.evaluate --oracle R1 .. RR`` scores two extra methods:

* ``oracle``: clip c's K = R samples are the resampled listeners of clip c — what other listeners of the
  same attitude did for the same speaker. Its FD / P-FD / MSE are the noise floor (two real listeners differ
  this much), its FRDiv / SID / amplitude the truth a probabilistic model should match.
* ``oracle[shuffled]``: clip c gets the resampled listeners of clip c+1 (cut or tiled to its length), scored
  against clip c's speaker and listener — a real listener who heard somebody else. Where the speaker
  matters, its P-FD is well above the oracle's.

:func:`ratios_to_oracle` divides every method's accuracy, diversity and amplitude metrics by the oracle's
(``metrics.json[method]["ratio_to_oracle"][metric]``), :func:`format_ratio_table` shows them in metrics.md, with
:func:`calibration_miss`: how far those ratios lie outside the calibration targets of
:data:`CALIBRATION_TARGETS`, one number to rank methods by (0: every target met).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from brain.baselines import fit_to_length
from brain.data import Clip, CorpusError, DyadicCorpus
from utils.errors import UsageError

ORACLE = "oracle"
SHUFFLED_ORACLE = "oracle[shuffled]"
# Metrics read as a ratio to the oracle's: accuracy (floor), diversity and amplitude (target).
RATIO_METRICS = ("fd_exp", "fd_pose", "pfd_exp", "pfd_pose", "mse_exp", "mse_pose", "frdiv", "sid_exp", "sid_pose",
                 "amp_ratio")
SPEAKER_FILES = ("speaker_audio", "speaker_exp")
LABELS_FILE = "labels.json"


def load_resampled_listeners(resample_roots: Sequence[str], data_root: str, split: str,
                             clips: Sequence[Clip]) -> list[np.ndarray]:
    """``[R,T_c,56]`` per clip of ``clips`` (cut to each clip's ``num_frames``): the listeners of clip c in each of
    the R resample corpora. Refuses (``CorpusError`` naming the resample) a resample whose ``split`` lists other
    clips, that lacks a clip, whose speaker arrays are not bitwise those of ``data_root`` or whose labels differ,
    and a listener equal to the evaluated one or to another resample's (not a redraw)."""
    if not resample_roots:
        raise UsageError("the oracle needs at least one resample corpus")
    reference = DyadicCorpus(data_root)
    expected_ids = reference.split_ids(split)
    originals = {clip.clip_id: reference.load_clip(clip.clip_id) for clip in clips}
    per_resample = []  # [R][clips] arrays [T_c,56]
    for root in resample_roots:
        source = f"--oracle {root}"
        try:
            resample = DyadicCorpus(root)
            ids = resample.split_ids(split)
        except CorpusError as exc:
            raise CorpusError(f"{source}: {exc}") from exc
        if ids != expected_ids:
            raise CorpusError(f"{source}: its {split} split lists other clips than {data_root}'s "
                              f"({len(ids)} vs {len(expected_ids)} ids): not a resample of the evaluated corpus")
        listeners = []
        for clip in clips:
            original = originals[clip.clip_id]
            try:
                redrawn = resample.load_clip(clip.clip_id)
            except CorpusError as exc:
                raise CorpusError(f"{source}: {exc}") from exc
            for name in SPEAKER_FILES:
                mine, theirs = getattr(redrawn, name), getattr(original, name)
                if mine.shape != theirs.shape or mine.tobytes() != theirs.tobytes():
                    raise CorpusError(f"{source}: clip {clip.clip_id}, {name}.npy differs from {data_root}'s: "
                                      "a resample keeps the speaker bit-identical")
            if _read_labels(Path(root), clip.clip_id) != _read_labels(reference.root, clip.clip_id):
                raise CorpusError(f"{source}: clip {clip.clip_id}, {LABELS_FILE} differs from {data_root}'s: "
                                  "a resample keeps each clip's labels")
            if np.array_equal(redrawn.listener, original.listener):
                raise CorpusError(f"{source}: clip {clip.clip_id}, listener.npy equals the evaluated corpus's: "
                                  "not a redraw (write it with another --resample_seed)")
            listeners.append(redrawn.listener[:clip.num_frames])
        for earlier_root, earlier in zip(resample_roots, per_resample):
            if any(np.array_equal(a, b) for a, b in zip(listeners, earlier)):
                raise CorpusError(f"{source}: holds the same listeners as --oracle {earlier_root} "
                                  "(the same --resample_seed twice?)")
        per_resample.append(listeners)
    return [np.stack([listeners[index] for listeners in per_resample]) for index in range(len(clips))]


def _read_labels(root: Path, clip_id: str) -> bytes | None:
    path = root / "clips" / clip_id / LABELS_FILE
    return path.read_bytes() if path.is_file() else None


def oracle_samples(resampled: Sequence[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """``{"oracle": resampled, "oracle[shuffled]": clip c+1's resampled listeners fitted to clip c's length}``
    from one ``[R,T_c,56]`` per clip (:func:`load_resampled_listeners`); the shuffled row needs two clips."""
    rows = {ORACLE: [np.asarray(motion, dtype=np.float32) for motion in resampled]}
    if len(resampled) >= 2:
        rows[SHUFFLED_ORACLE] = []
        for index, motion in enumerate(rows[ORACLE]):
            other = rows[ORACLE][(index + 1) % len(resampled)]
            rows[SHUFFLED_ORACLE].append(np.stack([fit_to_length(listener, 0, motion.shape[1]) for listener in other]))
    return rows


def ratios_to_oracle(results: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{method: {metric: method's value / the oracle's}}`` for :data:`RATIO_METRICS`; NaN where either value is
    undefined or the oracle's is 0."""
    oracle = results[ORACLE]
    return {method: {name: ratio_or_nan(scores[name], oracle[name]) for name in RATIO_METRICS}
            for method, scores in results.items()}


# The calibration targets (docs/BRAIN.md): ratio bands to the oracle that a calibrated sampler lands in.
CALIBRATION_TARGETS = {"fd_exp": (0.0, 1.3), "pfd_exp": (0.0, 1.3), "frdiv": (0.85, 1.15), "sid_exp": (0.95, 1.05),
                       "amp_ratio": (0.9, 1.1)}


def calibration_miss(ratios: dict[str, float]) -> float:
    """Sum over :data:`CALIBRATION_TARGETS` of how far (in log ratio) each lies outside its band: 0 when every
    target is met; FRDiv at 0.54 alone adds log(0.85 / 0.54) = 0.45. A missing or undefined ratio gives NaN."""
    total = 0.0
    for name, (low, high) in CALIBRATION_TARGETS.items():
        value = ratios.get(name, float("nan"))
        if not value > 0:  # NaN, or a method with no spread at all (the static mean): log undefined
            return float("nan") if math.isnan(value) else float("inf")
        total += max(0.0, math.log(low / value) if low > 0 else 0.0, math.log(value / high))
    return total


def ratio_or_nan(value, reference) -> float:
    """``value / reference``; NaN where either is undefined (None, NaN) or the reference is 0."""
    if value is None or reference is None or math.isnan(value) or math.isnan(reference) or reference == 0:
        return float("nan")
    return float(value) / float(reference)


RATIO_HEADERS = {"fd_exp": "FD exp", "fd_pose": "FD pose", "pfd_exp": "P-FD exp", "pfd_pose": "P-FD pose",
                 "mse_exp": "MSE exp", "mse_pose": "MSE pose", "frdiv": "FRDiv", "sid_exp": "SID exp",
                 "sid_pose": "SID pose", "amp_ratio": "amp ratio"}


def format_ratio_table(ratios: dict[str, dict[str, float]], num_resamples: int) -> str:
    """Markdown: one row per method, each metric as a multiple of the oracle's."""
    lines = [f"## Ratio to the oracle ({num_resamples} resampled listeners per clip)", "",
             "FD, P-FD and MSE: ≥ 1 expected (the oracle is the floor); FRDiv, SID, amplitude: 1 is the truth.", "",
             "Calibration miss: the log distance outside the calibration targets summed (0: all met; "
             "brain.oracle.CALIBRATION_TARGETS).", "",
             "| method | " + " | ".join(RATIO_HEADERS[name] for name in RATIO_METRICS) + " | calibration miss |",
             "|---|" + "---:|" * (len(RATIO_METRICS) + 1)]
    for method, values in ratios.items():
        cells = ["–" if math.isnan(values[name]) else f"{values[name]:.3g}" for name in RATIO_METRICS]
        miss = calibration_miss(values)
        cells.append("–" if math.isnan(miss) else f"{miss:.3g}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
