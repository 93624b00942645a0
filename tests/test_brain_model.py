"""Brain building blocks without training: dataset, normaliser, denoiser, diffusion sampling."""
import numpy as np
import pytest
import torch

from brain.config import BrainConfig, ModelConfig
from brain.data import CorpusError, DyadicCorpus
from brain.dataset import WindowDataset, load_split_clips
from brain.denoiser import Conditioning
from brain.diffusion import build_denoiser_and_diffusion
from brain.normalizer import Normalizer
from data_utils.synthetic_dyadic import write_synthetic_corpus
from utils.checkpoint import load_checkpoint, save_checkpoint

SMALL = ModelConfig(width=32, layers=2, heads=4, ff_mult=2, dropout=0.0, history_frames=10, window_frames=12,
                    chunk_frames=4)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("brain_model") / "corpus", clips=4, seconds=6, seed=0)


@pytest.fixture(scope="module")
def dataset(corpus):
    clips = load_split_clips(DyadicCorpus(corpus), "train", SMALL)
    normalizer = Normalizer.fit([c.listener for c in clips], [c.speaker_exp for c in clips])
    return WindowDataset(clips, normalizer, SMALL, stride=1), clips, normalizer


def _modules(objective="diffusion"):
    cfg = BrainConfig(model=ModelConfig(**{**SMALL.__dict__, "objective": objective}))
    torch.manual_seed(0)
    denoiser, diffusion = build_denoiser_and_diffusion(cfg)
    # Zero-initialised output layers would make every prediction 0; randomise them so outputs depend on inputs.
    for layer in (denoiser.out, denoiser.out_modulation, *[b.modulation for b in denoiser.blocks]):
        torch.nn.init.normal_(layer.weight, std=0.05)
    return denoiser.eval(), diffusion


def test_broken_clip_is_refused_through_the_dataset(corpus, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(corpus, broken)
    train_id = DyadicCorpus(broken).split_ids("train")[1]
    listener = np.load(broken / "clips" / train_id / "listener.npy")
    np.save(broken / "clips" / train_id / "listener.npy", listener[:-3])
    with pytest.raises(CorpusError, match=f"clip {train_id}: length mismatch: .*listener.npy has {len(listener) - 3}"):
        load_split_clips(DyadicCorpus(broken), "train", SMALL)
    other_names = ModelConfig(**{**SMALL.__dict__, "attitudes": ["calm", "eager"]})
    clips = load_split_clips(DyadicCorpus(corpus), "train", SMALL)
    with pytest.raises(CorpusError, match=f"clip {clips[0].clip_id}: unknown attitude '{clips[0].attitude}'; "
                                          "this model knows calm, eager"):
        WindowDataset(clips, Normalizer(), other_names)
    long_window = ModelConfig(window_frames=10_000)
    with pytest.raises(CorpusError, match="shorter than the 10000 the model needs"):
        load_split_clips(DyadicCorpus(corpus), "train", long_window)


def test_windows_hold_the_right_frames(dataset):
    windows, clips, normalizer = dataset
    h, w, c = SMALL.history_frames, SMALL.window_frames, SMALL.chunk_frames
    assert len(windows) == sum(clip.num_frames - w + 1 for clip in clips)
    first_clip = clips[0]
    cond, target = windows[3]  # clip 0, starting at frame 3: 7 history frames are before the clip
    expected = normalizer.normalize_listener(torch.from_numpy(first_clip.listener[3:3 + w]))
    torch.testing.assert_close(target, expected)
    assert cond.history_valid.tolist() == [False] * (h - 3) + [True] * 3
    torch.testing.assert_close(cond.history[-3:], normalizer.normalize_listener(torch.from_numpy(first_clip.listener[:3])))
    assert cond.speaker_valid.tolist() == [False] * (h - 3) + [True] * (3 + c)
    torch.testing.assert_close(cond.speaker_audio[h - 3:], torch.from_numpy(first_clip.speaker_audio[:3 + c]))
    batch_cond, batch_target = windows.gather(torch.tensor([3, 0, 5]))
    assert batch_target.shape == (3, w, 56) and batch_cond.speaker_exp.shape == (3, h + c, 50)
    torch.testing.assert_close(batch_target[0], target)


def test_normalizer_round_trip_through_a_checkpoint(dataset, tmp_path):
    _, clips, normalizer = dataset
    listener = torch.from_numpy(clips[0].listener)
    normalized = normalizer.normalize_listener(torch.from_numpy(np.concatenate([c.listener for c in clips])))
    torch.testing.assert_close(normalized.mean(0), torch.zeros(56), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalized.std(0, unbiased=False), torch.ones(56), atol=1e-3, rtol=0)
    save_checkpoint({"normalizer": normalizer.state_dict()}, tmp_path / "n.pth", kind="brain")
    restored = Normalizer.from_state_dict(load_checkpoint(tmp_path / "n.pth", kind="brain")["normalizer"])
    torch.testing.assert_close(restored.denormalize_listener(normalizer.normalize_listener(listener)), listener)
    assert not torch.equal(restored.listener_std, Normalizer().listener_std)


def test_a_longer_speaker_context_is_gathered_seen_and_streamed(dataset):
    """model.speaker_context_frames = S > H: windows carry speaker frames [s-S, s+C), the denoiser reads the
    earliest of them, and a stream (speaker buffer pruned as it goes) emits what a rollout built window by
    window from the whole arrays emits."""
    from brain.policy import ListenerPolicy

    _, clips, normalizer = dataset
    cfg = ModelConfig(**{**SMALL.__dict__, "speaker_context_frames": 18})
    s, c = cfg.speaker_history_frames, cfg.chunk_frames
    windows = WindowDataset(clips, normalizer, cfg, stride=1)
    cond, _ = windows[20]
    torch.testing.assert_close(cond.speaker_audio, torch.from_numpy(clips[0].speaker_audio[20 - s:20 + c]))
    assert cond.speaker_valid.all() and windows[3][0].speaker_valid.tolist() == [False] * (s - 3) + [True] * (3 + c)

    torch.manual_seed(0)
    denoiser, diffusion = build_denoiser_and_diffusion(BrainConfig(model=cfg))
    for layer in (denoiser.out, denoiser.out_modulation, *[b.modulation for b in denoiser.blocks]):
        torch.nn.init.normal_(layer.weight, std=0.05)
    denoiser.eval()
    batch, target = windows.gather(torch.tensor([20]))
    audio = batch.speaker_audio.clone()
    audio[:, 0] += torch.randn(768)  # 18 frames before the window: outside the 10-frame listener history
    with torch.no_grad():
        reference = denoiser(target, torch.tensor([0.5]), batch)
        changed = denoiser(target, torch.tensor([0.5]), Conditioning(batch.history, batch.history_valid, audio,
                                                                    batch.speaker_exp, batch.speaker_valid))
    assert not torch.allclose(changed, reference), "the earliest speaker frame changed nothing"

    policy = ListenerPolicy(denoiser, diffusion, normalizer, BrainConfig(model=cfg))
    frames = 48
    speaker_audio, speaker_exp = clips[0].speaker_audio[:frames], clips[0].speaker_exp[:frames]
    stream = policy.stream(num_samples=1, seed=3, sampler="dpmpp_2m", eta=0.0)
    streamed = np.concatenate([stream.push(speaker_audio[i:i + 5], speaker_exp[i:i + 5]) for i in range(0, frames, 5)]
                              + [stream.flush()], axis=1)
    generator = torch.Generator().manual_seed(3)
    audio_all = torch.from_numpy(speaker_audio)
    exp_all = normalizer.normalize_speaker_exp(torch.from_numpy(speaker_exp))
    history, h = torch.zeros(1, 0, 56), cfg.history_frames
    for start in range(0, frames, c):
        span = torch.arange(start - s, start + c)
        valid = (span >= 0) & (span < frames)
        index = span.clamp(0, frames - 1)
        window_cond = Conditioning(
            history=torch.cat([torch.zeros(1, h - history.shape[1], 56), history], dim=1),
            history_valid=(torch.arange(h) >= h - history.shape[1])[None],
            speaker_audio=(audio_all[index] * valid[:, None])[None], speaker_exp=(exp_all[index] * valid[:, None])[None],
            speaker_valid=valid[None])
        noise = torch.randn((1, cfg.window_frames, 56), generator=generator)
        window = policy.sample_window(window_cond, noise, None, policy._sampling_options(eta=0.0, sampler="dpmpp_2m"))
        history = torch.cat([history, window[:, :c]], dim=1)[:, -h:]
        expected = normalizer.denormalize_listener(window[:, :c]).numpy()
        np.testing.assert_allclose(streamed[:, start:start + c], expected, rtol=0, atol=1e-5)


def test_generate_many_equals_one_clip_at_a_time(dataset):
    """Batched offline sampling (the evaluation's path) gives every clip what ``generate`` gives it alone:
    its own seed's noise, its own attitude, its own length (clips end at different chunks), eta 1's per-step
    noise and the guidance branches included; and batches cut by ``max_batch`` change nothing."""
    from brain.policy import ListenerPolicy

    _, clips, normalizer = dataset
    cfg = ModelConfig(**{**SMALL.__dict__, "attitudes": ["warm", "cold"], "intensity_frames": 20})
    torch.manual_seed(0)
    denoiser, diffusion = build_denoiser_and_diffusion(BrainConfig(model=cfg))
    for layer in (denoiser.out, denoiser.out_modulation, *[b.modulation for b in denoiser.blocks]):
        torch.nn.init.normal_(layer.weight, std=0.05)
    torch.nn.init.normal_(denoiser.attitude_embedding.weight, std=1.0)  # attitudes must change the output
    policy = ListenerPolicy(denoiser.eval(), diffusion, normalizer, BrainConfig(model=cfg))
    lengths, seeds, attitudes = [30, 21, 30, 9], [5, 6, 7, 8], ["warm", "cold", None, "warm"]
    starts = [0, 0, 40, 60]  # four speakers cut from the corpus's training clips
    speakers = [(clips[i % len(clips)].speaker_audio[a:a + n], clips[i % len(clips)].speaker_exp[a:a + n])
                for i, (a, n) in enumerate(zip(starts, lengths))]
    options = dict(steps=3, eta=1.0, guidance_audio=2.0, intensity=1.5)
    alone = [policy.generate(audio, exp, num_samples=2, seed=seed, attitude=attitude, **options)
             for (audio, exp), seed, attitude in zip(speakers, seeds, attitudes)]
    for max_batch in (256, 4):  # every clip in one batch per option group; two clips per batch
        together = policy.generate_many(speakers, num_samples=2, seeds=seeds, attitudes=attitudes,
                                        max_batch=max_batch, **options)
        assert [motion.shape for motion in together] == [(2, n, 56) for n in lengths]
        for one, batched in zip(alone, together):
            np.testing.assert_allclose(batched, one, rtol=0, atol=1e-5)
    assert not np.allclose(alone[0], policy.generate(*speakers[0], num_samples=2, seed=5, attitude="cold", **options))


def test_own_history_puts_the_models_sample_of_the_previous_window_in_the_last_chunk(dataset):
    """diffusion.own_history (scheduled sampling): a chosen window's history ends with the model's sample of
    the window one chunk earlier (sampled from that window's true history); older history frames, and a window
    at its clip's start (no earlier window), keep the truth."""
    from brain.config import DiffusionConfig
    from train_diffusion import with_own_history

    windows, _, _ = dataset
    c = SMALL.chunk_frames
    indices = torch.tensor([0, 20, 40])  # window 0 starts its clip
    previous, exists = windows.gather_previous(indices, c)
    assert exists.tolist() == [False, True, True]
    earlier, _ = windows.gather(indices[1:] - c)  # stride 1 and the same clip: the window index c before
    for field in ("history", "history_valid", "speaker_audio", "speaker_exp", "speaker_valid"):
        torch.testing.assert_close(getattr(previous, field)[1:], getattr(earlier, field))
    cfg = BrainConfig(model=SMALL, diffusion=DiffusionConfig(own_history=1.0, own_history_steps=2))
    denoiser, diffusion = _modules()
    truth, target = windows.gather(indices)
    cond, same_target = with_own_history(denoiser, diffusion, windows, indices, truth, target, cfg, 0,
                                         torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(same_target, target)  # no easing asked: the true continuation
    assert torch.equal(cond.history[0], truth.history[0])
    torch.testing.assert_close(cond.history[1:, :-c], truth.history[1:, :-c], rtol=0, atol=0)
    generator = torch.Generator().manual_seed(0)
    torch.rand(3, generator=generator)  # the share's draw comes first
    own = diffusion.sample(denoiser, previous.map(lambda value: value[1:]), steps=2, sampler=cfg.sample.sampler,
                           eta=cfg.sample.eta, generator=generator)
    torch.testing.assert_close(cond.history[1:, -c:], own[:, :c])
    assert not torch.allclose(cond.history[1:, -c:], truth.history[1:, -c:])

    # Made every 4th step only (for 4x the share, capped at all windows); in between the truth is kept.
    cfg.diffusion.own_history, cfg.diffusion.own_history_every = 0.25, 4
    for step in (1, 2, 3, 5):
        untouched, _ = with_own_history(denoiser, diffusion, windows, indices, truth, target, cfg, step,
                                        torch.Generator().manual_seed(0), torch.device("cpu"))
        assert untouched is truth
    every4, _ = with_own_history(denoiser, diffusion, windows, indices, truth, target, cfg, 8,
                                 torch.Generator().manual_seed(0), torch.device("cpu"))
    torch.testing.assert_close(every4.history, cond.history)  # share 0.25 x 4 = all windows, the same draws

    # Easing: the target moves by the jump at the history's end, linearly back to the truth over E frames.
    cfg.diffusion.own_history_ease_frames = 3
    eased_cond, eased = with_own_history(denoiser, diffusion, windows, indices, truth, target, cfg, 0,
                                         torch.Generator().manual_seed(0), torch.device("cpu"))
    jump = eased_cond.history[1:, -1] - truth.history[1:, -1]  # [2,56]
    for t, weight in enumerate([0.75, 0.5, 0.25, 0.0, 0.0]):
        torch.testing.assert_close(eased[1:, t], target[1:, t] + weight * jump)
    assert torch.equal(eased[0], target[0])  # the clip's first window has no own history: its target is true


def test_each_process_trains_on_its_own_windows_and_resumes_mid_epoch_the_same(dataset):
    """train_diffusion.WindowBatches under DDP: in every epoch the ranks' batches are disjoint, no window comes
    twice, and the batches of a step are a pure function of (seed, step, rank), so a resumed run replays them."""
    from types import SimpleNamespace

    from train_diffusion import WindowBatches

    windows, _, _ = dataset
    cfg = BrainConfig(model=SMALL)
    cfg.train.batch_size = 16
    ranks = [WindowBatches(windows, cfg, SimpleNamespace(world_size=2, rank=rank)) for rank in (0, 1)]
    steps = ranks[0].steps_per_epoch
    assert steps >= 2 and steps == ranks[1].steps_per_epoch
    for epoch in (0, 1):
        seen = [torch.cat([batches.indices(epoch * steps + i) for i in range(steps)]) for batches in ranks]
        assert all(len(set(indices.tolist())) == steps * 16 for indices in seen)  # no window twice on a rank
        assert not set(seen[0].tolist()) & set(seen[1].tolist())  # nor on both
    assert not torch.equal(ranks[0].indices(0), ranks[0].indices(steps))  # reshuffled per epoch
    fresh = WindowBatches(windows, cfg, SimpleNamespace(world_size=2, rank=1))
    torch.testing.assert_close(fresh.indices(steps + 1), ranks[1].indices(steps + 1))


def _batch(dataset, n=2):
    windows, _, _ = dataset
    return windows.gather(torch.arange(n) * 7 + 20)  # windows with some history


@pytest.mark.parametrize("drop", [None, "drop_audio", "drop_speaker_exp", "drop_history"])
def test_denoiser_shapes_and_each_condition_matters(dataset, drop):
    denoiser, _ = _modules()
    cond, target = _batch(dataset)
    noise_level = torch.tensor([-3.0, 1.5])  # ln σ
    with torch.no_grad():
        full = denoiser(target, noise_level, cond)
        assert full.shape == target.shape and torch.isfinite(full).all()
        if drop is not None:
            dropped = denoiser(target, noise_level, cond, **{drop: torch.tensor([True, False])})
            assert not torch.allclose(dropped[0], full[0]), f"{drop} changed nothing"
            torch.testing.assert_close(dropped[1], full[1])  # only the flagged sample is affected


def test_denoiser_refuses_wrong_shapes(dataset):
    denoiser, _ = _modules()
    cond, target = _batch(dataset)
    with pytest.raises(ValueError, match=r"noisy_window: expected shape \[2, 12, 56\], got \[2, 11, 56\]"):
        denoiser(target[:, :11], torch.tensor([0.0, 0.0]), cond)


def test_denoiser_never_sees_speaker_frames_past_the_chunk(dataset):
    denoiser, _ = _modules()
    cond, target = _batch(dataset, 1)
    h, c = SMALL.history_frames, SMALL.chunk_frames
    with torch.no_grad():
        reference = denoiser(target, torch.tensor([0.5]), cond)
        for frame in (h + c - 1, h - 2):  # the chunk's last frame and a history frame are both seen
            audio = cond.speaker_audio.clone()
            audio[:, frame] += torch.randn(768)  # LayerNorm ignores a constant shift
            changed = denoiser(target, torch.tensor([0.5]), Conditioning(cond.history, cond.history_valid, audio,
                                                                        cond.speaker_exp, cond.speaker_valid))
            assert not torch.allclose(changed, reference), f"speaker frame {frame} changed nothing"
        # A speaker frame marked invalid (before the clip start) is ignored, whatever it holds.
        invalid = cond.speaker_valid.clone()
        invalid[:, 0] = False
        audio = cond.speaker_audio.clone()
        audio[:, 0] += torch.randn(768)
        masked = denoiser(target, torch.tensor([0.5]), Conditioning(cond.history, cond.history_valid,
                                                                   cond.speaker_audio, cond.speaker_exp, invalid))
        masked_changed = denoiser(target, torch.tensor([0.5]), Conditioning(cond.history, cond.history_valid, audio,
                                                                           cond.speaker_exp, invalid))
        torch.testing.assert_close(masked_changed, masked)


def test_cross_attention_mask_is_causal_per_frame(dataset):
    """In one block (self-attention before cross-attention) the window's first frame (time 0) sees speaker
    frames up to time 0 only. Deeper stacks mix frames through self-attention, which is allowed: causality
    is owed per emitted chunk (the speaker input ends with the chunk)."""
    one_block = ModelConfig(**{**SMALL.__dict__, "layers": 1})
    torch.manual_seed(0)
    denoiser, _ = build_denoiser_and_diffusion(BrainConfig(model=one_block))
    for layer in (denoiser.out, denoiser.out_modulation, denoiser.blocks[0].modulation):
        torch.nn.init.normal_(layer.weight, std=0.05)
    cond, target = _batch(dataset, 1)
    h, c = SMALL.history_frames, SMALL.chunk_frames
    audio = cond.speaker_audio.clone()
    audio[:, h + 1:] += torch.randn(c - 1, 768)
    with torch.no_grad():
        reference = denoiser(target, torch.tensor([0.5]), cond)
        changed = denoiser(target, torch.tensor([0.5]), Conditioning(cond.history, cond.history_valid, audio,
                                                                    cond.speaker_exp, cond.speaker_valid))
    torch.testing.assert_close(changed[:, 0], reference[:, 0], rtol=0, atol=1e-6)
    assert not torch.allclose(changed[:, 2:], reference[:, 2:])


@pytest.mark.parametrize("sampler,eta,guidance", [("dpmpp_2m", 0.0, (1.0, 1.0)), ("dpmpp_2m", 0.0, (2.0, 1.5)),
                                                  ("ddim", 0.5, (2.0, 1.5)), ("dpmpp_2m", 1.0, (2.0, 1.5))])
def test_sampling_is_seeded_and_finite(dataset, sampler, eta, guidance):
    denoiser, diffusion = _modules()
    cond, _ = _batch(dataset)
    samples = []
    for seed in (0, 0, 1):
        generator = torch.Generator().manual_seed(seed)
        samples.append(diffusion.sample(denoiser, cond, steps=6, sampler=sampler, eta=eta,
                                        guidance_audio=guidance[0], guidance_speaker_exp=guidance[1],
                                        generator=generator))
    assert samples[0].shape == (2, SMALL.window_frames, 56) and torch.isfinite(samples[0]).all()
    torch.testing.assert_close(samples[0], samples[1], rtol=0, atol=0)
    assert (samples[0] - samples[2]).abs().mean() > 1e-3


def test_guidance_branches_combine_as_documented(dataset):
    denoiser, diffusion = _modules()
    cond, _ = _batch(dataset)
    x = torch.randn(2, SMALL.window_frames, 56)
    sigma = torch.full((2,), 0.5)
    with torch.no_grad():
        none = diffusion.predict_x0(denoiser, x, sigma, cond, drop_audio=torch.ones(2, dtype=torch.bool),
                                    drop_speaker_exp=torch.ones(2, dtype=torch.bool))
        audio = diffusion.predict_x0(denoiser, x, sigma, cond, drop_speaker_exp=torch.ones(2, dtype=torch.bool))
        both = diffusion.predict_x0(denoiser, x, sigma, cond)
        guided = diffusion.guided_x0(denoiser, x, 0.5, diffusion.encode_for_sampling(
            denoiser, cond, diffusion.guidance_branches(2.0, 3.0)), 2.0, 3.0)
        plain = diffusion.guided_x0(denoiser, x, 0.5, diffusion.encode_for_sampling(
            denoiser, cond, diffusion.guidance_branches(1.0, 1.0)), 1.0, 1.0)
    torch.testing.assert_close(guided, none + 2.0 * (audio - none) + 3.0 * (both - audio), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(plain, both)


def test_regression_objective_is_one_deterministic_forward(dataset):
    denoiser, diffusion = _modules("regression")
    cond, target = _batch(dataset)
    first = diffusion.sample(denoiser, cond, generator=torch.Generator().manual_seed(0))
    second = diffusion.sample(denoiser, cond, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    losses = diffusion.loss(denoiser, target, cond)
    assert set(losses) == {"loss", "x0", "velocity", "acceleration"} and losses["loss"] > 0


@pytest.mark.parametrize("options,message", [((0, "dpmpp_2m", 0.0), "steps .* must be in 1..1000, got 0"),
                                             ((15, "euler", 0.0), "sampler must be one of dpmpp_2m, ddim"),
                                             ((15, "ddim", 1.5), r"eta must be in \[0, 1\]")])
def test_bad_sampling_options_are_refused(options, message):
    _, diffusion = _modules()
    with pytest.raises(ValueError, match=message):
        diffusion.check_sampling_options(*options)


def test_sampling_noise_levels_run_from_sigma_max_to_zero():
    _, diffusion = _modules()
    sigmas = diffusion.sampling_sigmas(15)
    assert len(sigmas) == 16 and sigmas[-1] == 0.0
    assert sigmas[0] == pytest.approx(diffusion.cfg.sigma_max) and sigmas[-2] == pytest.approx(diffusion.cfg.sigma_min)
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))


@pytest.mark.gpu
@pytest.mark.parametrize("eta", [0.0, 1.0])  # eta 1: the per-step noise is drawn outside the graph, copied in
def test_cuda_graph_sampler_matches_eager_and_bf16_is_finite(dataset, eta):
    from brain.policy import ListenerPolicy

    denoiser, diffusion = _modules()
    cfg = BrainConfig(model=SMALL)
    _, _, normalizer = dataset
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((50, 768)).astype(np.float32)
    exp = rng.standard_normal((50, 50)).astype(np.float32)
    options = dict(num_samples=2, seed=0, steps=10, guidance_audio=2.0, guidance_speaker_exp=1.5, eta=eta)
    eager = ListenerPolicy(denoiser, diffusion, normalizer, cfg, "cuda").generate(audio, exp, **options)
    graphed = ListenerPolicy(denoiser, diffusion, normalizer, cfg, "cuda", cuda_graphs=True).generate(audio, exp, **options)
    np.testing.assert_allclose(graphed, eager, atol=1e-4, rtol=1e-4)
    bf16 = ListenerPolicy(denoiser, diffusion, normalizer, cfg, "cuda", precision="bf16").generate(audio, exp, **options)
    assert bf16.shape == eager.shape and np.isfinite(bf16).all()


@pytest.mark.gpu
def test_generate_many_on_cuda_graphs_equals_one_clip_at_a_time(dataset):
    """The evaluation's GPU path: clips batched into one captured graph (and a second, smaller one for the
    clip that runs on alone) give what each clip's own graphed run gives."""
    from brain.policy import ListenerPolicy

    denoiser, diffusion = _modules()
    _, _, normalizer = dataset
    policy = ListenerPolicy(denoiser, diffusion, normalizer, BrainConfig(model=SMALL), "cuda", cuda_graphs=True)
    rng = np.random.default_rng(0)
    speakers = [(rng.standard_normal((n, 768)).astype(np.float32), rng.standard_normal((n, 50)).astype(np.float32))
                for n in (50, 50, 70)]
    options = dict(num_samples=3, steps=10, guidance_audio=2.0, eta=1.0)
    together = policy.generate_many(speakers, seeds=[1, 2, 3], **options)
    for (audio, exp), seed, batched in zip(speakers, [1, 2, 3], together):
        np.testing.assert_allclose(batched, policy.generate(audio, exp, seed=seed, **options), atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_one_training_step_on_gpu_is_finite(dataset):
    denoiser, diffusion = _modules()
    denoiser, diffusion = denoiser.cuda().train(), diffusion.cuda()
    windows, _, _ = dataset
    cond, target = windows.gather(torch.arange(8) * 5)
    cond, target = cond.map(lambda value: value.cuda()), target.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        losses = diffusion.loss(denoiser, target, cond)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and all(torch.isfinite(p.grad).all() for p in denoiser.parameters()
                                                  if p.grad is not None)


def test_history_noise_perturbs_training_only(dataset):
    from brain.config import DiffusionConfig
    from brain.diffusion import ListenerDiffusion

    denoiser, _ = _modules()
    cond, target = _batch(dataset, 4)
    losses = {}
    for history_noise in (0.0, 0.5):
        diffusion = ListenerDiffusion(DiffusionConfig(history_noise=history_noise))
        for training in (True, False):
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                losses[history_noise, training] = diffusion.loss(denoiser, target, cond, generator=generator,
                                                                 drop_conditions=training)["x0"]
    assert losses[0.0, True] != losses[0.5, True]
    assert losses[0.0, False] == losses[0.5, False]  # validation sees the clean history
