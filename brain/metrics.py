"""Listener-motion metrics, computed the way the listener-generation literature computes them.

Two families, both applied to FLAME vectors ``[exp 0:50 | global_rot 50:53 | jaw 53:56]``:

* L2L / RLHG / DIM ("Learning to Listen", "Dyadic Interaction Modeling"): Fréchet distance per clip
  (``fd_*``), paired Fréchet distance on ``[speaker, listener]`` frames (``pfd_*``), ``mse_*``, Shannon-index
  diversity of k-means cluster occupancy (``sid_*``), pooled variance (``var_*``) and the residual
  speaker-listener correlation (``rpcc_*``), each for expression (``_exp``, dims 0:50) and pose (``_pose``,
  global rotation + jaw, dims 50:56) separately.
* REACT 2023 (``frcorr``, ``frdist``, ``frdiv``, ``frdvs``, ``frvar``, ``frsyn``) over the whole 56-dim vector,
  plus motion-quality checks (``jitter``, ``amp_ratio``, ``seam``).

Formulas, sources and every deviation from the reference code are in ``docs/METRICS.md``.

    context = MetricContext.from_clips(test_clips)               # fits the SID k-means on ground truth
    scores = evaluate_method(context, samples)                   # samples: one float [K,T,56] per clip
    gt = evaluate_method(context, [c.listener[None] for c in test_clips])   # ground truth's own statistics

A clip here is anything with ``clip_id``, ``speaker_exp [T,50]`` and ``listener [T,56]`` (``brain.data.Clip``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from utils.flame import EXP, FLAME_DIM, POSE

PARTS = {"exp": EXP, "pose": POSE}
SID_CLUSTERS = {"exp": 40, "pose": 20}  # DIM's k for expression and pose
SID_EPS = 1e-6  # DIM's entropy: -sum p log2(p + 1e-6)
SYNC_MAX_LAG = 49  # REACT's TLCC window: lags -(2 s * 25 fps - 1) .. +49 frames
POSE_REFERENCE_DIMS = POSE.stop - POSE.start  # speaker components paired with listener pose in rpcc_pose
CCC_EPS = 1e-8  # REACT's guard in the CCC denominator

# Every metric a method gets, in table order. A contract: evaluate.py, RESULTS.md and tests read it.
METRIC_NAMES = (
    "fd_exp", "fd_pose", "pfd_exp", "pfd_pose", "mse_exp", "mse_pose",
    "sid_exp", "sid_pose", "var_exp", "var_pose", "rpcc_exp", "rpcc_pose",
    "frcorr", "frdist", "frdiv", "frdvs", "frvar", "frsyn",
    "jitter", "amp_ratio", "seam",
)


# ---------------------------------------------------------------- Fréchet distance


@dataclass
class GaussianStats:
    """Mean, unbiased covariance and its symmetric square root of a frame set ``[N,D]`` (the reference side of
    a Fréchet distance, fitted once per clip and reused for every sample and method)."""

    mean: np.ndarray  # [D]
    cov: np.ndarray  # [D,D]
    cov_root: np.ndarray  # [D,D], cov_root @ cov_root == cov

    @classmethod
    def fit(cls, frames: np.ndarray) -> "GaussianStats":
        frames = np.asarray(frames, dtype=np.float64)
        if frames.ndim != 2 or len(frames) < 2:
            raise ValueError(f"Fréchet distance needs an [N,D] frame set with N >= 2, got shape {frames.shape}")
        return cls.from_moments(frames.mean(0), np.atleast_2d(np.cov(frames, rowvar=False)))

    @classmethod
    def from_moments(cls, mean: np.ndarray, cov: np.ndarray) -> "GaussianStats":
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        root = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
        return cls(np.asarray(mean, dtype=np.float64), cov, root)

    def frechet_to(self, frames: np.ndarray) -> float:
        """Fréchet distance from these statistics to those of ``frames [M,D]``."""
        return sum(self.frechet_terms_to(frames))

    def frechet_terms_to(self, frames: np.ndarray) -> tuple[float, float]:
        """The two terms of :meth:`frechet_to`, ``(mean term, covariance term)``: see :func:`frechet_terms`."""
        frames = np.asarray(frames, dtype=np.float64)
        if frames.ndim != 2 or frames.shape[1] != len(self.mean) or len(frames) < 2:
            raise ValueError(f"Fréchet distance needs [M,{len(self.mean)}] frames of equal D with M >= 2, "
                             f"got shape {frames.shape}")
        return frechet_terms(self, frames.mean(0), np.atleast_2d(np.cov(frames, rowvar=False)))


def frechet_terms(reference: GaussianStats, mean: np.ndarray, cov: np.ndarray) -> tuple[float, float]:
    """``(|mu_r - mu|^2, tr(S_r + S - 2 (S_r S)^{1/2}))``: where a Fréchet distance comes from, the mean
    (posture) offset and the covariance (motion) mismatch. Their sum is the distance.

    ``tr((S_r S)^{1/2})`` is the sum of square roots of the eigenvalues of ``S_r S``, which equal those of the
    symmetric PSD matrix ``S_r^{1/2} S S_r^{1/2}``: symmetric eigendecompositions give the value the FID/DIM
    code gets from ``scipy.linalg.sqrtm(S_r @ S)`` (tested), about twice as fast (docs/METRICS.md) and
    without the complex round-off and ridge retries that near-singular covariances (a static motion) cause.
    """
    diff = reference.mean - mean
    middle = reference.cov_root @ cov @ reference.cov_root
    product_eigenvalues = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    trace_sqrt = float(np.sqrt(np.clip(product_eigenvalues, 0.0, None)).sum())
    covariance_term = float(np.trace(reference.cov) + np.trace(cov) - 2.0 * trace_sqrt)
    return float(diff @ diff), max(0.0, covariance_term)  # the covariance term is >= 0; only round-off goes below


def frechet_distance(frames_a: np.ndarray, frames_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two frame sets ``[N,D]`` and ``[M,D]`` (unbiased covariance)."""
    return GaussianStats.fit(frames_a).frechet_to(frames_b)


# ---------------------------------------------------------------- diversity (SID) and correlation


def fit_codebook(frames: np.ndarray, num_clusters: int, *, seed: int = 0) -> KMeans:
    """The SID reference clustering of ``frames [N,D]``, as DIM fits it: scikit-learn
    ``KMeans(n_clusters=k, random_state=seed, n_init="auto")`` (one k-means++ start, Lloyd iterations), on float32
    frames as DIM's are (its inputs are float32 tensors' arrays; sklearn clusters in the input's precision)."""
    frames = np.asarray(frames, dtype=np.float32)
    if len(frames) < num_clusters:
        raise ValueError(f"SID needs at least {num_clusters} ground-truth frames to fit {num_clusters} clusters, "
                         f"got {len(frames)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct frames than k (tiny sets): DIM scores too
        return KMeans(n_clusters=num_clusters, random_state=seed, n_init="auto").fit(frames)


def shannon_index(codebook: KMeans, frames: np.ndarray) -> float:
    """Entropy in bits of the cluster histogram of ``frames [N,D]`` under ``codebook`` (:func:`fit_codebook`), DIM's
    ``-sum p log2(p + 1e-6)``: below ``log2 k`` by up to ``1e-6 k / ln 2`` bits, and ``-1.4e-6`` (not 0) for a
    set that falls into one cluster."""
    labels = codebook.predict(np.asarray(frames, dtype=np.float32))
    p = np.bincount(labels, minlength=codebook.n_clusters) / len(labels)
    return float(-(p * np.log2(p + SID_EPS)).sum())


def pooled_pcc(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally shaped arrays, all values pooled (DIM's rPCC ingredient)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def concordance(reference: np.ndarray, generated: np.ndarray) -> float:
    """Lin's concordance correlation per dimension of ``[T,D]`` sequences, averaged over dimensions.

    ``2 cov / (var_r + var_g + (mu_r - mu_g)^2)`` with population moments; a static dimension scores 0
    (REACT's ``np.corrcoef`` form would give NaN there).
    """
    reference = np.asarray(reference, dtype=np.float64)
    generated = np.asarray(generated, dtype=np.float64)
    mean_r, mean_g = reference.mean(0), generated.mean(0)
    cov = ((reference - mean_r) * (generated - mean_g)).mean(0)
    denom = reference.var(0) + generated.var(0) + (mean_r - mean_g) ** 2
    return float(np.mean(2.0 * cov / (denom + CCC_EPS)))


# ---------------------------------------------------------------- REACT diversity, synchrony, DTW


def sample_diversity(samples: np.ndarray) -> float:
    """REACT FRDiv (S-MSE) for one input: mean squared distance over ordered pairs of the K samples ``[K,T,D]``,
    divided by ``T*D``. NaN for K=1 (one sample has no spread to measure)."""
    flat = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    num = len(flat)
    if num < 2:
        return float("nan")
    return max(0.0, _sum_pairwise_sq(flat) / (num * (num - 1)) / flat.shape[1])


def across_input_diversity(motions: np.ndarray) -> float:
    """REACT FRDvs: for each sample index k, mean squared distance over ordered pairs of *inputs*, ``[N,K,T,D]``."""
    motions = np.asarray(motions, dtype=np.float64)
    num_inputs, num_samples = motions.shape[:2]
    if num_inputs < 2:
        return float("nan")
    flat = motions.reshape(num_inputs, num_samples, -1)
    total = sum(_sum_pairwise_sq(flat[:, k]) for k in range(num_samples))
    return max(0.0, total / (num_inputs * (num_inputs - 1) * num_samples) / flat.shape[2])


def _sum_pairwise_sq(flat: np.ndarray) -> float:
    """``sum_{i,j} |x_i - x_j|^2`` over rows of ``flat [N,F]`` without building the N×N×F difference tensor
    (may round to a tiny negative number for identical rows; callers clamp at 0)."""
    sq_norms = (flat * flat).sum(1)
    total_sq = sq_norms.sum()
    centroid_sum = flat.sum(0)
    return float(2.0 * len(flat) * total_sq - 2.0 * centroid_sum @ centroid_sum)


def temporal_variance(motion: np.ndarray) -> float:
    """REACT FRVar: variance over time (unbiased, as ``torch.var``) of each dimension, averaged: ``[...,T,D]``."""
    return float(np.asarray(motion, dtype=np.float64).var(axis=-2, ddof=1).mean())


def lagged_correlations(listener: np.ndarray, speaker: np.ndarray, max_lag: int = SYNC_MAX_LAG) -> np.ndarray:
    """Per-lag mean (over dims) Pearson correlation of ``listener[..., t+lag, :]`` with ``speaker[t]``.

    ``listener [...,T,D]`` (e.g. K samples), ``speaker [T,D]`` -> ``[..., 2*max_lag+1]`` for lags
    ``-max_lag..max_lag``. Dimensions static over the overlap are left out of the mean (NaN when all are).
    Window sums come from prefix sums, so each lag costs one product.
    """
    listener = np.asarray(listener, dtype=np.float64)
    speaker = np.asarray(speaker, dtype=np.float64)
    num_frames = listener.shape[-2]

    def prefix(values):  # [...,T+1,D]: prefix[..., i, :] = sum of the first i frames
        zeros = np.zeros(values.shape[:-2] + (1, values.shape[-1]))
        return np.concatenate([zeros, np.cumsum(values, axis=-2)], axis=-2)

    sum_l, sum_ll = prefix(listener), prefix(listener * listener)
    sum_s, sum_ss = prefix(speaker), prefix(speaker * speaker)
    out = np.full(listener.shape[:-2] + (2 * max_lag + 1,), np.nan)
    for index, lag in enumerate(range(-max_lag, max_lag + 1)):
        l_start, s_start = max(lag, 0), max(-lag, 0)  # listener frame l_start + i pairs with speaker s_start + i
        count = num_frames - abs(lag)
        l_stop, s_stop = l_start + count, s_start + count
        cross = (listener[..., l_start:l_stop, :] * speaker[s_start:s_stop]).sum(-2) / count
        mean_l = (sum_l[..., l_stop, :] - sum_l[..., l_start, :]) / count
        mean_s = (sum_s[s_stop] - sum_s[s_start]) / count
        var_l = (sum_ll[..., l_stop, :] - sum_ll[..., l_start, :]) / count - mean_l ** 2
        var_s = (sum_ss[s_stop] - sum_ss[s_start]) / count - mean_s ** 2
        # Static dims leave only round-off in var: compare with the values' own scale.
        moving = (var_l > 1e-10 * (mean_l ** 2 + 1e-12)) & (var_s > 1e-10 * (mean_s ** 2 + 1e-12))
        correlation = np.where(moving, (cross - mean_l * mean_s) / np.sqrt(np.where(moving, var_l * var_s, 1.0)), 0.0)
        with np.errstate(invalid="ignore"):
            out[..., index] = correlation.sum(-1) / moving.sum(-1)  # NaN where no dim moves
    return out


def peak_lags(listener: np.ndarray, speaker: np.ndarray, max_lag: int = SYNC_MAX_LAG) -> np.ndarray:
    """Lag in frames (positive: the listener follows) of the peak lagged cross-correlation of each of
    ``listener [...,T,D]`` with ``speaker [T,D]`` -> ``[...]``; NaN where undefined (a static motion)."""
    max_lag = min(max_lag, listener.shape[-2] - 3)  # keep at least 3 overlapping frames per lag
    if max_lag < 0:
        return np.full(listener.shape[:-2], np.nan)
    correlations = lagged_correlations(listener, speaker, max_lag)
    undefined = np.isnan(correlations).all(-1)
    peaks = np.argmax(np.where(np.isnan(correlations), -np.inf, correlations), axis=-1) - max_lag
    return np.where(undefined, np.nan, peaks.astype(np.float64))


def dtw_distance(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Dynamic-time-warping distance (``sqrt`` of the cheapest path's summed squared Euclidean frame
    distances, as ``tslearn.metrics.dtw``) of each of ``query [K,T,D]`` against ``reference [S,D]`` (shared)
    or ``[K,S,D]`` (one per query) -> ``[K]``.

    Row by row: a path enters row i at column k from row i-1 (diagonally or from above), then walks right,
    so ``D[i,j] = S[j] + min_{k<=j} (enter[k] - S[k])`` with ``S`` the row's cumulative cost — a cumulative
    minimum, vectorised over columns and the K queries.
    """
    query = np.asarray(query, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    # [K,T,S] squared distances, expanded so no [K,T,S,D] difference tensor is built
    cost = ((query ** 2).sum(-1)[:, :, None] + (reference ** 2).sum(-1)[..., None, :]
            - 2.0 * query @ np.swapaxes(reference, -1, -2))
    cost = np.maximum(cost, 0.0)
    num_query = len(query)
    # [T,K,S]: each row of the DP is one contiguous block
    cost = np.ascontiguousarray(np.broadcast_to(cost, (num_query,) + cost.shape[1:]).transpose(1, 0, 2))
    previous = np.full((num_query, cost.shape[2] + 1), np.inf)  # row i-1 with a column -1 in front
    previous[:, 0] = 0.0  # the path starts at (0, 0)
    for row_cost in cost:
        enter = row_cost + np.minimum(previous[:, :-1], previous[:, 1:])  # from (i-1, j-1) or (i-1, j)
        running = np.cumsum(row_cost, axis=1)
        current = running + np.minimum.accumulate(enter - running, axis=1)
        previous = np.concatenate([np.full((num_query, 1), np.inf), current], axis=1)
    return np.sqrt(previous[:, -1])


def weighted_dtw(samples: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """REACT FRdist's per-group weighted DTW on FLAME: ``dtw(exp)/50 + dtw(pose)/6`` -> ``[K]``."""
    total = 0.0
    for part in PARTS.values():
        width = part.stop - part.start
        total = total + dtw_distance(samples[..., part], reference[..., part]) / width
    return total


# ---------------------------------------------------------------- motion quality


def second_difference_norms(motion: np.ndarray) -> np.ndarray:
    """``|x[t+1] - 2 x[t] + x[t-1]|`` for ``t = 1..T-2`` of ``[...,T,D]`` -> ``[...,T-2]``."""
    motion = np.asarray(motion, dtype=np.float64)
    return np.linalg.norm(motion[..., 2:, :] - 2.0 * motion[..., 1:-1, :] + motion[..., :-2, :], axis=-1)


def chunk_join_stencils(count: int, chunk_frames: int) -> np.ndarray:
    """``[count]`` bool: which second-difference stencils (entry ``i`` centred on frame ``i + 1``) straddle a chunk
    join — a join lies between frames ``b-1`` and ``b`` for ``b`` a multiple of ``chunk_frames``, and the stencils
    centred on ``b-1`` and ``b`` cross it."""
    centres = np.arange(1, count + 1)
    return ((centres + 1) % chunk_frames == 0) | (centres % chunk_frames == 0)


def seam_ratio(motions: Sequence[np.ndarray], chunk_frames: int) -> float:
    """Mean second-difference norm on stencils that straddle a chunk boundary (:func:`chunk_join_stencils`) over
    the mean elsewhere. ``motions``: ``[K,T,D]`` arrays. ~1 is seamless, >1 shows jumps.
    """
    at_seam, inside = [], []
    for motion in motions:
        norms = second_difference_norms(motion)  # [K,T-2], entry i is centred on frame i+1
        crosses = chunk_join_stencils(norms.shape[-1], chunk_frames)
        at_seam.append(norms[..., crosses].ravel())
        inside.append(norms[..., ~crosses].ravel())
    seam, rest = np.concatenate(at_seam), np.concatenate(inside)
    if seam.size == 0 or rest.size == 0 or rest.mean() == 0:
        return float("nan")
    return float(seam.mean() / rest.mean())


# ---------------------------------------------------------------- the evaluation of one method


@dataclass
class MetricContext:
    """What every method is scored against: the test clips and the SID codebooks fitted on their ground truth."""

    speaker_exp: list[np.ndarray]  # per clip [T,50]
    listener: list[np.ndarray]  # per clip [T,56]
    codebooks: dict[str, KMeans]  # part -> the SID clustering of the ground truth (k centroids of the part's width)
    reference_std: np.ndarray  # [56] per-dim std of all ground-truth frames
    chunk_frames: int = 8
    listener_stats: list[dict[str, GaussianStats]] = field(default_factory=list)  # per clip, per part
    paired_stats: list[dict[str, GaussianStats]] = field(default_factory=list)  # [speaker exp, listener part]

    @classmethod
    def from_clips(cls, clips, *, seed: int = 0, chunk_frames: int = 8,
                   clusters: dict[str, int] | None = None) -> "MetricContext":
        clusters = clusters or SID_CLUSTERS
        speaker_exp = [np.asarray(c.speaker_exp, dtype=np.float64) for c in clips]
        listener = [np.asarray(c.listener, dtype=np.float64) for c in clips]
        if not listener:
            raise ValueError("no clips to evaluate")
        pooled = np.concatenate(listener)
        codebooks = {part: fit_codebook(pooled[:, sl], clusters[part], seed=seed) for part, sl in PARTS.items()}
        listener_stats = [{part: GaussianStats.fit(truth[:, sl]) for part, sl in PARTS.items()} for truth in listener]
        paired_stats = [{part: GaussianStats.fit(np.concatenate([speaker, truth[:, sl]], axis=1))
                         for part, sl in PARTS.items()} for speaker, truth in zip(speaker_exp, listener)]
        return cls(speaker_exp, listener, codebooks, pooled.std(0), chunk_frames, listener_stats, paired_stats)


def evaluate_method(context: MetricContext, samples: Sequence[np.ndarray]) -> dict[str, float]:
    """Every metric in :data:`METRIC_NAMES` for one method's ``samples`` (one ``[K,T,56]`` per context clip).

    Clip-level metrics (FD, P-FD, MSE, CCC, DTW) are computed for each sample against its clip's ground truth,
    averaged over samples, then over clips. Pooled ones (SID, var, rPCC, amplitude) use every generated frame.
    """
    if len(samples) != len(context.listener):
        raise ValueError(f"got samples for {len(samples)} clips, the context holds {len(context.listener)}")
    for index, (motion, truth) in enumerate(zip(samples, context.listener)):
        if motion.ndim != 3 or motion.shape[1:] != truth.shape:
            raise ValueError(f"clip {index}: samples must be [K,{len(truth)},{FLAME_DIM}], got {list(motion.shape)}")
        if not np.isfinite(motion).all():
            raise ValueError(f"clip {index}: samples contain NaN/Inf")

    per_clip: dict[str, list[float]] = {name: [] for name in
                                        ("fd_exp", "fd_pose", "pfd_exp", "pfd_pose", "mse_exp", "mse_pose",
                                         "frcorr", "frdiv", "frvar", "frsyn")}
    for index, (motion, truth, speaker) in enumerate(zip(samples, context.listener, context.speaker_exp)):
        motion = np.asarray(motion, dtype=np.float64)
        for part, sl in PARTS.items():
            listener_stats, paired_stats = context.listener_stats[index][part], context.paired_stats[index][part]
            per_clip[f"fd_{part}"].append(np.mean([listener_stats.frechet_to(m[:, sl]) for m in motion]))
            per_clip[f"pfd_{part}"].append(np.mean([
                paired_stats.frechet_to(np.concatenate([speaker, m[:, sl]], axis=1)) for m in motion]))
            per_clip[f"mse_{part}"].append(float(((motion[:, :, sl] - truth[None, :, sl]) ** 2).mean()))
        per_clip["frcorr"].append(np.mean([concordance(truth, m) for m in motion]))
        per_clip["frdiv"].append(sample_diversity(motion))
        per_clip["frvar"].append(temporal_variance(motion))
        per_clip["frsyn"].append(_nanmean(np.abs(peak_lags(motion[:, :, EXP], speaker))))
    per_clip["frdist"] = _clip_dtw(samples, context.listener)
    scores = {name: _nanmean(values) for name, values in per_clip.items()}

    generated = np.concatenate([m.reshape(-1, FLAME_DIM) for m in samples]).astype(np.float64)  # [sum K*T, 56]
    truth_frames = np.concatenate(context.listener)
    speaker_frames = np.concatenate([np.tile(s, (len(m), 1)) for m, s in zip(samples, context.speaker_exp)])
    speaker_truth = np.concatenate(context.speaker_exp)
    for part, sl in PARTS.items():
        scores[f"sid_{part}"] = shannon_index(context.codebooks[part], generated[:, sl])
        scores[f"var_{part}"] = float(generated[:, sl].var())
        reference = slice(0, POSE_REFERENCE_DIMS) if part == "pose" else slice(None)
        real_pcc = pooled_pcc(truth_frames[:, sl], speaker_truth[:, reference])
        scores[f"rpcc_{part}"] = abs(real_pcc - pooled_pcc(generated[:, sl], speaker_frames[:, reference]))

    scores["frdvs"] = across_input_diversity(_crop_to_common_length(samples))
    scores["jitter"] = float(np.concatenate([second_difference_norms(m).ravel() for m in samples]).mean())
    moving = context.reference_std > 1e-8
    scores["amp_ratio"] = float(np.mean(generated[:, moving].std(0) / context.reference_std[moving]))
    scores["seam"] = seam_ratio(samples, context.chunk_frames)
    return {name: scores[name] for name in METRIC_NAMES}


DTW_BATCH_BYTES = 32 * 2**20  # cost matrices per DTW batch: beyond ~20 queries batching only adds cache misses


def _clip_dtw(samples: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> list[float]:
    """FRdist per clip (mean over its K samples), clips of equal length batched into one DP (fewer Python steps)."""
    result = [float("nan")] * len(samples)
    by_length: dict[tuple, list[int]] = {}
    for index, (motion, truth) in enumerate(zip(samples, truths)):
        by_length.setdefault((motion.shape[0], len(truth)), []).append(index)
    for (num_samples, length), indices in by_length.items():
        per_batch = max(1, DTW_BATCH_BYTES // (8 * num_samples * length * length))
        for start in range(0, len(indices), per_batch):
            batch = indices[start:start + per_batch]
            queries = np.concatenate([samples[i] for i in batch])  # [n*K,T,56]
            references = np.repeat(np.stack([truths[i] for i in batch]), num_samples, axis=0)  # [n*K,T,56]
            distances = weighted_dtw(queries, references).reshape(len(batch), num_samples).mean(1)
            for i, distance in zip(batch, distances):
                result[i] = float(distance)
    return result


def _crop_to_common_length(samples: Sequence[np.ndarray]) -> np.ndarray:
    """``[N,K,T_min,56]``: REACT's FRDvs compares inputs frame by frame, so clips are cut to the shortest."""
    num_samples = min(len(m) for m in samples)
    length = min(m.shape[1] for m in samples)
    return np.stack([m[:num_samples, :length] for m in samples])


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")
