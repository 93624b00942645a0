"""Listener baselines: shapes, seeds, what each one is defined to return, and clear refusals."""
import numpy as np
import pytest

from brain.baselines import DATA_BASELINES, MIRROR_DELAY_FRAMES, build_baselines
from brain.data import Clip, CorpusError


def _clip(clip_id, frames, seed):
    rng = np.random.default_rng(seed)
    return Clip(clip_id, rng.standard_normal((frames, 768)).astype(np.float32),
                rng.standard_normal((frames, 50)).astype(np.float32),
                rng.standard_normal((frames, 56)).astype(np.float32))


@pytest.fixture(scope="module")
def train_clips():
    return [_clip(f"train{i}", 120 + 10 * i, i) for i in range(4)]


@pytest.mark.parametrize("name", DATA_BASELINES)
@pytest.mark.parametrize("frames", [37, 300])  # shorter than a window, longer than every training clip
def test_every_baseline_returns_k_motions_of_the_speakers_length(train_clips, name, frames):
    query = _clip("query", frames, 99)
    baseline = build_baselines([name], train_clips)[name]
    motion = baseline.generate(query.speaker_audio, query.speaker_exp, num_samples=3, seed=0, steps=5)
    assert motion.shape == (3, frames, 56) and motion.dtype == np.float32 and np.isfinite(motion).all()
    again = baseline.generate(query.speaker_audio, query.speaker_exp, num_samples=3, seed=0)
    np.testing.assert_array_equal(motion, again)


def test_random_baseline_draws_training_listeners_and_differs_by_seed(train_clips):
    query = _clip("query", 60, 99)
    baseline = build_baselines(["random"], train_clips)["random"]
    first = baseline.generate(query.speaker_audio, query.speaker_exp, num_samples=4, seed=1)
    second = baseline.generate(query.speaker_audio, query.speaker_exp, num_samples=4, seed=2)
    assert not np.array_equal(first, second)
    training_frames = {row.tobytes() for c in train_clips for row in c.listener}
    assert all(row.tobytes() in training_frames for row in first.reshape(-1, 56))


def test_mirror_copies_the_delayed_speaker_expression_with_neutral_pose(train_clips):
    query = _clip("query", 80, 3)
    motion = build_baselines(["mirror"], train_clips)["mirror"].generate(query.speaker_audio, query.speaker_exp)
    d = MIRROR_DELAY_FRAMES
    np.testing.assert_array_equal(motion[0, d:, :50], query.speaker_exp[:-d])
    assert (motion[0, :, 50:] == 0).all()


def test_nearest_neighbour_finds_the_training_listener_of_a_seen_speaker(train_clips):
    seen = train_clips[2]
    baseline = build_baselines(["nearest"], train_clips)["nearest"]
    motion = baseline.generate(seen.speaker_audio[:50], seen.speaker_exp[:50], num_samples=2)
    np.testing.assert_array_equal(motion[0], seen.listener[:50])  # its own window is the nearest
    assert not np.array_equal(motion[1], seen.listener[:50])  # the second sample uses the next neighbour


def test_mean_baseline_is_the_training_mean_held_still(train_clips):
    query = _clip("query", 30, 5)
    motion = build_baselines(["mean"], train_clips)["mean"].generate(query.speaker_audio, query.speaker_exp)
    expected = np.concatenate([c.listener for c in train_clips]).mean(0)
    np.testing.assert_allclose(motion[0], np.broadcast_to(expected, (30, 56)), rtol=1e-6)


def test_bad_names_inputs_and_missing_checkpoints_are_refused(train_clips):
    with pytest.raises(ValueError, match="unknown baseline\\(s\\) median"):
        build_baselines(["median"], train_clips)
    with pytest.raises(ValueError, match="needs --regression_checkpoint"):
        build_baselines(["regression"], train_clips)
    with pytest.raises(ValueError, match="none were given"):
        build_baselines(["nearest"], [])
    assert set(build_baselines(["all"], train_clips)) == set(DATA_BASELINES)
    query = _clip("query", 30, 5)
    with pytest.raises(CorpusError, match="audio has 30 frames but speaker_exp has 29"):
        build_baselines(["mean"], train_clips)["mean"].generate(query.speaker_audio, query.speaker_exp[:29])
