"""The slow plan (brain/plan.py): its KL and segment means by hand, training windows that carry the listener's
next frames, a denoiser that reads the plan in every guidance branch, streams that chain their plans, and a
loss that pays the KL at its weight."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from brain.config import BrainConfig, DiffusionConfig, ModelConfig
from brain.data import DyadicCorpus
from brain.dataset import WindowDataset, load_split_clips
from brain.diffusion import build_denoiser_and_diffusion
from brain.normalizer import Normalizer
from brain.plan import PlanModel, gaussian_kl, segment_means
from brain.policy import ListenerPolicy
from data_utils.synthetic_dyadic import write_synthetic_corpus
from utils.config import ConfigError

PLAN = ModelConfig(width=32, layers=2, heads=4, ff_mult=2, dropout=0.0, history_frames=10, window_frames=12,
                   chunk_frames=4, attitudes=[], plan_dim=3, plan_frames=16)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("brain_plan") / "corpus", clips=4, seconds=6, seed=0)


@pytest.fixture(scope="module")
def windows(corpus):
    clips = load_split_clips(DyadicCorpus(corpus), "train", PLAN)
    normalizer = Normalizer.fit([c.listener for c in clips], [c.speaker_exp for c in clips])
    return clips, normalizer, WindowDataset(clips, normalizer, PLAN, stride=1)


def test_kl_and_segment_means_equal_a_hand_computation():
    rng = np.random.default_rng(0)
    mean_q, log_var_q, mean_p, log_var_p = (rng.normal(size=(2, 3)) for _ in range(4))
    expected = [sum(0.5 * (log_var_p[b, z] - log_var_q[b, z] - 1) + (math.exp(log_var_q[b, z])
                    + (mean_q[b, z] - mean_p[b, z]) ** 2) / (2 * math.exp(log_var_p[b, z])) for z in range(3))
                for b in range(2)]
    as_tensors = [torch.from_numpy(value) for value in (mean_q, log_var_q, mean_p, log_var_p)]
    np.testing.assert_allclose(gaussian_kl(*as_tensors).numpy(), expected, rtol=1e-10)
    assert gaussian_kl(as_tensors[0], as_tensors[1], as_tensors[0], as_tensors[1]).abs().max() < 1e-12

    frames = rng.normal(size=(1, 8, 2))
    valid = np.array([[True, True, False, True, False, False, False, False]])
    features = segment_means(torch.from_numpy(frames), torch.from_numpy(valid), segment=4).numpy()[0]
    first = frames[0, [0, 1, 3]].mean(0)  # the valid frames of the first segment; the second has none
    np.testing.assert_allclose(features, [*first, 0.75, 0.0, 0.0, 0.0], atol=1e-12)


def test_training_windows_carry_the_listeners_next_frames(windows):
    clips, normalizer, dataset = windows
    chunk, span = PLAN.chunk_frames, PLAN.plan_frames
    clip_starts = dataset.clip_start.unique()
    last_of_first_clip = int((dataset.clip_start == clip_starts[0]).nonzero()[-1])
    for index in (0, 9, last_of_first_clip, int((dataset.window_start == clip_starts[1] + 2).nonzero()[0])):
        cond, _ = dataset.gather(torch.tensor([index]))
        start, clip_start = int(dataset.window_start[index]), int(dataset.clip_start[index])
        clip = clips[int((clip_starts == clip_start).nonzero()[0])]
        listener = normalizer.normalize_listener(torch.from_numpy(clip.listener)).numpy()
        for offset in range(-chunk, span):  # span row offset + chunk is clip frame start - clip_start + offset
            frame = start - clip_start + offset
            inside = 0 <= frame < clip.num_frames
            assert bool(cond.plan_span_valid[0, offset + chunk]) == inside, (index, offset)
            expected = listener[frame] if inside else np.zeros(listener.shape[1])
            np.testing.assert_allclose(cond.plan_span[0, offset + chunk].numpy(), expected, atol=1e-6)
    assert not bool(dataset.gather(torch.tensor([0]))[0].plan_span_valid[0, :chunk].any())  # before the clip
    assert not bool(dataset.gather(torch.tensor([last_of_first_clip]))[0].plan_span_valid[0, -1])  # past its end


def _denoiser():
    torch.manual_seed(0)
    denoiser, diffusion = build_denoiser_and_diffusion(BrainConfig(model=PLAN))
    for layer in (denoiser.out, denoiser.out_modulation, *[b.modulation for b in denoiser.blocks]):
        torch.nn.init.normal_(layer.weight, std=0.05)
    return denoiser.eval(), diffusion


def test_the_denoiser_reads_the_plan_in_every_guidance_branch(windows):
    _, _, dataset = windows
    cond, target = dataset.gather(torch.tensor([20, 40]))
    denoiser, _ = _denoiser()
    level = torch.tensor([0.5, 0.5])
    planned = dataclasses.replace(cond, plan=torch.zeros(2, PLAN.plan_dim))
    other = dataclasses.replace(cond, plan=torch.ones(2, PLAN.plan_dim))
    every = torch.tensor([True, True])
    with torch.no_grad():
        for drops in ({}, {"drop_history": every}, {"drop_audio": every, "drop_speaker_exp": every}):
            assert not torch.allclose(denoiser(target, level, planned, **drops), denoiser(target, level, other, **drops),
                                      atol=1e-4), drops
    with pytest.raises(ValueError, match="plan: expected shape"):
        denoiser(target, level, cond)


def test_a_stream_draws_each_plan_given_the_last(windows):
    clips, normalizer, _ = windows
    denoiser, diffusion = _denoiser()
    cfg = BrainConfig(model=PLAN)
    policy = ListenerPolicy(denoiser, diffusion, normalizer, cfg)
    draws = []
    original = PlanModel.draw

    def recording_draw(plan, previous, has_previous, cond, noise):
        drawn = original(plan, previous, has_previous, cond, noise)
        draws.append((previous.clone(), has_previous.clone(), drawn.clone()))
        return drawn

    clip = clips[0]
    offline = policy.generate(clip.speaker_audio[:30], clip.speaker_exp[:30], num_samples=2, seed=1, steps=2)
    PlanModel.draw = recording_draw
    try:
        stream = policy.stream(num_samples=2, seed=1, steps=2)
        pieces = [stream.push(clip.speaker_audio[start:start + 5], clip.speaker_exp[start:start + 5])
                  for start in range(0, 30, 5)]
        streamed = np.concatenate([*pieces, stream.flush()], axis=1)
    finally:
        PlanModel.draw = original
    np.testing.assert_array_equal(offline, streamed)
    assert len(draws) == 8  # 7 windows of 4 frames and the last 2
    assert not draws[0][1].any() and all(has.all() for _, has, _ in draws[1:])
    for (_, _, drawn), (previous, _, _) in zip(draws, draws[1:]):
        torch.testing.assert_close(previous, drawn)
    assert not torch.allclose(draws[0][2], draws[1][2])  # a fresh draw per window, not one held plan


def test_the_loss_pays_the_plans_kl_at_its_weight(windows):
    _, _, dataset = windows
    cond, target = dataset.gather(torch.arange(0, 64, 4))
    denoiser, _ = _denoiser()
    losses = {}
    for weight in (0.0, 0.5):
        _, diffusion = build_denoiser_and_diffusion(BrainConfig(model=PLAN, diffusion=DiffusionConfig(plan_kl_weight=weight)))
        with torch.no_grad():
            losses[weight] = diffusion.loss(denoiser, target, cond, generator=torch.Generator().manual_seed(5))
    assert float(losses[0.0]["plan_kl"]) > 0
    torch.testing.assert_close(losses[0.5]["plan_kl"], losses[0.0]["plan_kl"])
    torch.testing.assert_close(losses[0.5]["loss"], losses[0.0]["loss"] + 0.5 * losses[0.0]["plan_kl"])


def test_plan_settings_that_cannot_work_are_refused():
    with pytest.raises(ConfigError, match="multiple of model.chunk_frames"):
        build_denoiser_and_diffusion(BrainConfig(model=dataclasses.replace(PLAN, plan_frames=6)))
    with pytest.raises(ConfigError, match="needs model.objective diffusion"):
        build_denoiser_and_diffusion(BrainConfig(model=dataclasses.replace(PLAN, objective="regression")))


def test_a_brain_with_a_plan_trains_with_own_history_logs_its_kl_and_reloads(corpus, tmp_path):
    import train_diffusion
    from utils.config import load_config

    cfg = load_config(BrainConfig, "configs/brain_tiny.yaml", [
        f"data={corpus}", f"out={tmp_path / 'run'}", "model.plan_dim=4", "model.width=32", "model.layers=1",
        "train.batch_size=16", "train.max_steps=12", "train.val_every=6", "train.val_windows=16",
        "train.checkpoint_every=6", "train.device=cpu", "diffusion.own_history=0.5", "diffusion.own_history_steps=2"])
    policy = ListenerPolicy.from_checkpoint(train_diffusion.train(cfg, progress=False))
    assert policy.cfg.model.plan_dim == 4
    logged = (tmp_path / "run" / "scalars.csv").read_text()
    assert ",plan_kl," in logged and ",val_plan_kl," in logged
    clip = load_split_clips(DyadicCorpus(corpus), "test", PLAN)[0]
    motion = policy.generate(clip.speaker_audio[:40], clip.speaker_exp[:40], num_samples=2, seed=0, steps=3,
                             attitude=clip.attitude)
    assert motion.shape == (2, 40, 56) and np.isfinite(motion).all()
