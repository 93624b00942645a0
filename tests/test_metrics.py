"""Listener metrics against closed forms and hand-checkable cases (docs/METRICS.md)."""
from dataclasses import dataclass

import numpy as np
import pytest

from brain import metrics
from utils.flame import EXP, FLAME_DIM


@dataclass
class _Clip:
    clip_id: str
    speaker_exp: np.ndarray
    listener: np.ndarray


def _clips(num=3, frames=60, seed=0):
    rng = np.random.default_rng(seed)
    return [_Clip(f"c{i}", rng.standard_normal((frames, 50)), rng.standard_normal((frames, FLAME_DIM)))
            for i in range(num)]


def test_frechet_distance_of_identical_sets_is_zero():
    frames = np.random.default_rng(0).standard_normal((200, 6))
    assert metrics.frechet_distance(frames, frames) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_for_known_gaussians():
    # Diagonal covariances commute, so tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (s1 - s2)^2 for std devs s1, s2.
    mean_a, mean_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    std_a, std_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((std_a - std_b) ** 2)
    got = sum(metrics.frechet_terms(metrics.GaussianStats.from_moments(mean_a, np.diag(std_a ** 2)), mean_b,
                                    np.diag(std_b ** 2)))
    assert got == pytest.approx(expected, rel=1e-9)
    # ... and the sample version converges to it.
    rng = np.random.default_rng(1)
    a = mean_a + std_a * rng.standard_normal((200_000, 3))
    b = mean_b + std_b * rng.standard_normal((200_000, 3))
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_terms_split_the_distance_into_mean_offset_and_covariance_mismatch():
    # Diagonal covariances: mean term |mu_a - mu_b|^2, covariance term sum (s_a - s_b)^2 for std devs s.
    mean_a, mean_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    std_a, std_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    reference = metrics.GaussianStats.from_moments(mean_a, np.diag(std_a ** 2))
    mean_term, covariance_term = metrics.frechet_terms(reference, mean_b, np.diag(std_b ** 2))
    assert mean_term == pytest.approx(np.sum((mean_a - mean_b) ** 2), rel=1e-12)
    assert covariance_term == pytest.approx(np.sum((std_a - std_b) ** 2), rel=1e-9)
    # A static set (zero covariance) pays the reference's whole trace; a shifted copy pays only the mean term.
    frames = np.random.default_rng(3).standard_normal((400, 5)) @ np.diag([1.0, 2.0, 0.5, 0.1, 3.0])
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0])
    static = np.broadcast_to(frames.mean(0) + shift, frames.shape)
    terms = metrics.GaussianStats.fit(frames).frechet_terms_to(static)
    assert terms == pytest.approx((shift @ shift, np.trace(np.cov(frames, rowvar=False))), rel=1e-9)
    shifted_terms = metrics.GaussianStats.fit(frames).frechet_terms_to(frames + shift)
    assert shifted_terms == pytest.approx((shift @ shift, 0.0), abs=1e-9)
    assert sum(terms) == metrics.frechet_distance(frames, static)


def test_frechet_distance_equals_the_sqrtm_formula_of_the_reference_code():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((300, 12)) @ rng.standard_normal((12, 12)), rng.standard_normal((300, 12))
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = a.mean(0) - b.mean(0)
    reference = diff @ diff + np.trace(cov_a + cov_b - 2 * np.real(sqrtm(cov_a @ cov_b)))
    assert metrics.frechet_distance(a, b) == pytest.approx(reference, rel=1e-8)


def test_frechet_distance_survives_a_static_set_and_rejects_bad_shapes():
    frames = np.random.default_rng(0).standard_normal((100, 4))
    static = np.zeros((100, 4))
    # A static set is a point mass: the distance is |mu|^2 + tr(S).
    expected = frames.mean(0) @ frames.mean(0) + np.trace(np.cov(frames, rowvar=False))
    assert metrics.frechet_distance(frames, static) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="equal D"):
        metrics.frechet_distance(frames, frames[:, :3])


def test_shannon_index_matches_a_hand_computed_histogram():
    # Three far-apart 1-D clusters: k-means must find them, whatever its start. Generated frames fall 6 / 2 / 0
    # into them, so p = (3/4, 1/4, 0) and DIM's entropy is -(3/4 log2(3/4 + 1e-6) + 1/4 log2(1/4 + 1e-6)).
    truth = np.array([0.0, 0.1, 0.2, 0.3, 10.0, 10.1, 10.2, 10.3, 20.0, 20.1, 20.2, 20.3])[:, None]
    codebook = metrics.fit_codebook(truth, 3)
    np.testing.assert_allclose(np.sort(codebook.cluster_centers_[:, 0]), [0.15, 10.15, 20.15], atol=1e-5)
    generated = np.array([0.0, 0.5, -0.4, 0.2, 0.1, 0.3, 9.0, 11.0])[:, None]
    expected = -(0.75 * np.log2(0.75 + 1e-6) + 0.25 * np.log2(0.25 + 1e-6))  # 0.811278 without the epsilon
    assert metrics.shannon_index(codebook, generated) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.8112752, abs=1e-7)
    uniform = np.repeat(np.arange(8, dtype=np.float64)[:, None] * 10.0, 5, axis=0) + 0.1  # 8 clusters, 5 each
    assert metrics.shannon_index(metrics.fit_codebook(uniform, 8), uniform) == pytest.approx(
        -np.log2(1 / 8 + 1e-6), rel=1e-12)  # log2 8 less DIM's epsilon (1.2e-5 bits)
    assert metrics.shannon_index(codebook, np.zeros((30, 1))) == pytest.approx(-np.log2(1 + 1e-6), rel=1e-12)


def test_sid_clusters_as_dim_does_with_scikit_learn_kmeans():
    # DIM (code/metrics/eval_utils.py, calcuate_sid): KMeans(n_clusters=k, random_state=0, n_init="auto") fitted on
    # all ground-truth frames, predict on the generated ones. Overlapping data, where another k-means (scipy's
    # kmeans2, the project's earlier choice) settles in a different partition.
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(4)
    truth = (rng.standard_normal((600, 6)) @ rng.standard_normal((6, 6))).astype(np.float32)
    generated = (1.3 * rng.standard_normal((400, 6)) @ rng.standard_normal((6, 6))).astype(np.float32)
    labels = KMeans(n_clusters=20, random_state=0, n_init="auto").fit(truth).predict(generated)
    p = np.bincount(labels, minlength=20) / len(labels)
    expected = -(p * np.log2(p + 1e-6)).sum()
    assert metrics.shannon_index(metrics.fit_codebook(truth, 20), generated) == pytest.approx(expected, abs=1e-12)
    np.testing.assert_array_equal(metrics.fit_codebook(truth, 20, seed=3).cluster_centers_,
                                  metrics.fit_codebook(truth, 20, seed=3).cluster_centers_)
    with pytest.raises(ValueError, match="at least 40 ground-truth frames"):
        metrics.fit_codebook(truth[:10], 40)


def test_concordance_is_one_for_identical_sequences_and_lower_for_shifted_ones():
    seq = np.random.default_rng(0).standard_normal((100, 6))
    assert metrics.concordance(seq, seq) == pytest.approx(1.0, abs=1e-6)
    assert metrics.concordance(seq, seq + 1.0) < 0.7  # same shape, wrong level: CCC penalises the offset
    assert metrics.concordance(seq, np.zeros_like(seq)) == pytest.approx(0.0)


def test_sample_diversity_is_zero_for_identical_samples_and_matches_pairwise_mean():
    rng = np.random.default_rng(0)
    one = rng.standard_normal((20, 4))
    assert metrics.sample_diversity(np.stack([one] * 5)) == pytest.approx(0.0, abs=1e-10)
    samples = rng.standard_normal((4, 20, 4))
    flat = samples.reshape(4, -1)
    brute = np.mean([((flat[i] - flat[j]) ** 2).sum() for i in range(4) for j in range(4) if i != j]) / flat.shape[1]
    assert metrics.sample_diversity(samples) == pytest.approx(brute)
    assert np.isnan(metrics.sample_diversity(samples[:1]))


def test_across_input_diversity_counts_inputs_not_samples():
    rng = np.random.default_rng(0)
    same_inputs = np.stack([rng.standard_normal((3, 10, 2))] * 4)  # [N=4,K=3,...] every input reacts alike
    assert metrics.across_input_diversity(same_inputs) == pytest.approx(0.0, abs=1e-10)
    assert metrics.across_input_diversity(rng.standard_normal((4, 3, 10, 2))) > 1.0


@pytest.mark.parametrize("delay", [0, 7, -5])
def test_peak_lag_recovers_a_known_delay(delay):
    rng = np.random.default_rng(0)
    speaker = rng.standard_normal((300, 8))
    listener = np.roll(speaker, delay, axis=0)  # listener[t] = speaker[t - delay]
    assert metrics.peak_lags(listener[None], speaker)[0] == delay
    assert np.isnan(metrics.peak_lags(np.ones((1, 300, 8)), speaker)[0])  # a still face has no synchrony


def test_dtw_is_zero_for_a_time_warped_copy_and_euclidean_without_warping():
    reference = np.array([[0.0], [1.0], [2.0], [3.0]])
    warped = np.array([[[0.0], [0.0], [1.0], [2.0], [3.0], [3.0]]])
    assert metrics.dtw_distance(warped, reference)[0] == pytest.approx(0.0)
    flat = np.zeros((1, 4, 1)) + 2.0  # against zeros no warping helps: the diagonal, sqrt(4 * 2^2)
    assert metrics.dtw_distance(flat, np.zeros((4, 1)))[0] == pytest.approx(4.0)


def test_dtw_and_lagged_correlations_match_brute_force():
    rng = np.random.default_rng(3)
    query, reference = rng.standard_normal((2, 9, 3)), rng.standard_normal((7, 3))
    for k in range(2):
        acc = np.full((10, 8), np.inf)
        acc[0, 0] = 0.0
        for i in range(1, 10):
            for j in range(1, 8):
                step = ((query[k, i - 1] - reference[j - 1]) ** 2).sum()
                acc[i, j] = step + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
        assert metrics.dtw_distance(query, reference)[k] == pytest.approx(np.sqrt(acc[-1, -1]))
    listener, speaker = rng.standard_normal((40, 4)), rng.standard_normal((40, 4))
    listener[:, 3] = 2.0  # a static dim is left out, not NaN
    got = metrics.lagged_correlations(listener, speaker, max_lag=5)
    for index, lag in enumerate(range(-5, 6)):
        a, b = (listener[lag:], speaker[:40 - lag]) if lag >= 0 else (listener[:lag], speaker[-lag:])
        expected = np.mean([np.corrcoef(a[:, d], b[:, d])[0, 1] for d in range(3)])
        assert got[index] == pytest.approx(expected)


def test_the_stencils_that_straddle_a_chunk_join_are_those_beside_it():
    # chunks of 4 frames: joins between frames 3|4 and 7|8; stencil i is centred on frame i + 1, so the ones
    # centred on 3, 4, 7 and 8 cross them
    assert np.flatnonzero(metrics.chunk_join_stencils(10, 4)).tolist() == [2, 3, 6, 7]


def test_seam_ratio_flags_jumps_at_chunk_boundaries():
    t = np.linspace(0, 4 * np.pi, 64)
    smooth = np.stack([np.sin(t), np.cos(t)], axis=1)[None]  # [1,64,2]
    assert metrics.seam_ratio([smooth], 8) == pytest.approx(1.0, rel=0.2)
    jumpy = smooth.copy()
    for start in range(8, 64, 8):
        jumpy[0, start:] += 0.3  # a step at every chunk boundary
    assert metrics.seam_ratio([jumpy], 8) > 5.0


def test_evaluate_method_scores_ground_truth_as_perfect_and_noise_as_worse():
    clips = _clips()
    context = metrics.MetricContext.from_clips(clips, clusters={"exp": 5, "pose": 4})
    truth = metrics.evaluate_method(context, [c.listener[None] for c in clips])
    assert set(truth) == set(metrics.METRIC_NAMES)
    assert truth["fd_exp"] == pytest.approx(0.0, abs=1e-6) and truth["pfd_pose"] == pytest.approx(0.0, abs=1e-6)
    assert truth["mse_exp"] == 0.0 and truth["rpcc_exp"] == pytest.approx(0.0, abs=1e-12)
    assert truth["frcorr"] == pytest.approx(1.0, abs=1e-6) and truth["amp_ratio"] == pytest.approx(1.0)
    assert np.isnan(truth["frdiv"])  # one reaction per input: spread undefined
    rng = np.random.default_rng(5)
    noisy = [c.listener[None] + 0.5 * rng.standard_normal((3, *c.listener.shape)) for c in clips]
    scores = metrics.evaluate_method(context, noisy)
    assert scores["fd_exp"] > 1.0 and scores["mse_exp"] == pytest.approx(0.25, rel=0.1)
    assert scores["frdiv"] == pytest.approx(2 * 0.25, rel=0.1)  # two independent N(0, 0.25) per value
    assert scores["frcorr"] < truth["frcorr"] and scores["jitter"] > truth["jitter"]


def test_evaluate_method_refuses_mismatched_samples():
    clips = _clips()
    context = metrics.MetricContext.from_clips(clips, clusters={"exp": 5, "pose": 4})
    with pytest.raises(ValueError, match=r"clip 1: samples must be \[K,60,56\]"):
        truncated = [clips[0].listener[None], clips[1].listener[None, :50], clips[2].listener[None]]
        metrics.evaluate_method(context, truncated)
    with pytest.raises(ValueError, match="samples for 1 clips"):
        metrics.evaluate_method(context, [clips[0].listener[None]])


def test_pose_rpcc_pairs_listener_pose_with_leading_speaker_components():
    clips = _clips(frames=80)
    for clip in clips:  # a listener whose pose copies the speaker's first components has real coupling
        clip.listener[:, 50:56] = clip.speaker_exp[:, :6]
    context = metrics.MetricContext.from_clips(clips, clusters={"exp": 5, "pose": 4})
    uncoupled = [np.random.default_rng(i).standard_normal((1, *c.listener.shape)) for i, c in enumerate(clips)]
    assert metrics.evaluate_method(context, uncoupled)["rpcc_pose"] == pytest.approx(1.0, abs=0.1)
    assert EXP.stop == 50  # the pose block this test writes is the one the metric reads
