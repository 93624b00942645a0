"""Long memory (brain/memory.py): the averages by hand, the same numbers in training and streaming, and a
denoiser that reads them only where guidance says it may."""
import dataclasses

import numpy as np
import pytest
import torch

from brain.config import BrainConfig, ModelConfig
from brain.data import DyadicCorpus
from brain.dataset import WindowDataset, load_split_clips
from brain.diffusion import build_denoiser_and_diffusion
from brain.memory import MemoryState, causal_memory
from brain.normalizer import Normalizer
from brain.policy import ListenerPolicy
from data_utils.synthetic_dyadic import write_synthetic_corpus
from utils.config import ConfigError
from utils.flame import FPS

SECONDS = [0.2, 1.0, 4.0]
SMALL = ModelConfig(width=32, layers=2, heads=4, ff_mult=2, dropout=0.0, history_frames=10, window_frames=12,
                    chunk_frames=4, memory_seconds=SECONDS)


def hand_memory(sequence: np.ndarray, tau: float, row: int) -> tuple[np.ndarray, float]:
    """The average of frames < row weighted a^(row-1-u), and 1 - a^row, written out as a loop."""
    decay = np.exp(-1 / (tau * FPS))
    total, weight = np.zeros(sequence.shape[1]), 0.0
    for u in range(row):
        total += decay ** (row - 1 - u) * sequence[u]
        weight += decay ** (row - 1 - u)
    return (total / weight if row else total), 1 - decay ** row


def test_causal_memory_equals_the_loop():
    sequence = np.random.default_rng(0).normal(size=(60, 5))
    memory, coverage = causal_memory(sequence, SECONDS)
    assert memory.shape == (60, 3, 5) and coverage.shape == (60, 3)
    for row in (0, 1, 2, 17, 59):
        for index, tau in enumerate(SECONDS):
            expected, covered = hand_memory(sequence, tau, row)
            np.testing.assert_allclose(memory[row, index], expected, atol=1e-5)
            assert coverage[row, index] == pytest.approx(covered, abs=1e-6)
    with pytest.raises(ConfigError, match="positive numbers of seconds"):
        causal_memory(sequence, [2.0, 0.0])


def test_streamed_memory_equals_the_whole_sequence_at_every_push():
    sequence = np.random.default_rng(1).normal(size=(2, 70, 4))
    state = MemoryState(SECONDS, batch=2, dim=4)
    # one frame more than is pushed, so row 70 (the average of all 70) exists; its own value never counts
    reference = [causal_memory(np.concatenate([sample, sample[:1]]), SECONDS) for sample in sequence]
    done = 0
    for size in (0, 3, 8, 1, 8, 25, 25):
        state.push(torch.from_numpy(sequence[:, done:done + size]))
        done += size
        memory, coverage = state.read()
        for sample in range(2):
            np.testing.assert_allclose(memory[sample].numpy(), reference[sample][0][done], atol=1e-5)
            np.testing.assert_allclose(coverage.numpy(), reference[sample][1][done], atol=1e-6)
    assert state.frames == 70


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("brain_memory") / "corpus", clips=4, seconds=6, seed=0)


def test_training_windows_carry_their_own_clips_memory(corpus):
    clips = load_split_clips(DyadicCorpus(corpus), "train", SMALL)
    assert len(clips) >= 2
    normalizer = Normalizer.fit([c.listener for c in clips], [c.speaker_exp for c in clips])
    windows = WindowDataset(clips, normalizer, SMALL, stride=1)
    second_clip = windows.clip_start.unique()[1]
    for index in (0, 7, int((windows.window_start == second_clip).nonzero()[0]),
                  int((windows.window_start == second_clip + 30).nonzero()[0])):
        cond, _ = windows.gather(torch.tensor([index]))
        start, clip_start = int(windows.window_start[index]), int(windows.clip_start[index])
        clip = clips[int((windows.clip_start.unique() == clip_start).nonzero()[0])]
        listener = normalizer.normalize_listener(torch.from_numpy(clip.listener)).numpy()
        speaker = normalizer.normalize_speaker_exp(torch.from_numpy(clip.speaker_exp)).numpy()
        row = start - clip_start  # frames of this clip before the window: none of the clip before it counts
        for tau_index, tau in enumerate(SECONDS):
            expected, covered = hand_memory(listener, tau, row)
            np.testing.assert_allclose(cond.listener_memory[0, tau_index].numpy(), expected, atol=1e-4)
            np.testing.assert_allclose(cond.speaker_memory[0, tau_index].numpy(), hand_memory(speaker, tau, row)[0],
                                       atol=1e-4)
            assert float(cond.memory_coverage[0, tau_index]) == pytest.approx(covered, abs=1e-5)


def _denoiser():
    torch.manual_seed(0)
    denoiser, _ = build_denoiser_and_diffusion(BrainConfig(model=SMALL))
    for layer in (denoiser.out, denoiser.out_modulation, *[b.modulation for b in denoiser.blocks]):
        torch.nn.init.normal_(layer.weight, std=0.05)
    return denoiser.eval()


def test_the_denoiser_reads_the_memory_and_drops_it_with_its_source(corpus):
    clips = load_split_clips(DyadicCorpus(corpus), "train", SMALL)
    normalizer = Normalizer.fit([c.listener for c in clips], [c.speaker_exp for c in clips])
    cond, target = WindowDataset(clips, normalizer, SMALL, stride=1).gather(torch.tensor([60, 90]))
    denoiser, level = _denoiser(), torch.tensor([0.5, 0.5])
    other_listener = dataclasses.replace(cond, listener_memory=cond.listener_memory + 1.0)
    other_speaker = dataclasses.replace(cond, speaker_memory=cond.speaker_memory + 1.0)
    flags = {name: torch.tensor([True, True]) for name in ("drop_history", "drop_speaker_exp")}
    with torch.no_grad():
        plain = denoiser(target, level, cond)
        assert not torch.allclose(plain, denoiser(target, level, other_listener), atol=1e-4)
        assert not torch.allclose(plain, denoiser(target, level, other_speaker), atol=1e-4)
        no_history = denoiser(target, level, cond, drop_history=flags["drop_history"])
        torch.testing.assert_close(no_history, denoiser(target, level, other_listener,
                                                        drop_history=flags["drop_history"]))
        no_exp = denoiser(target, level, cond, drop_speaker_exp=flags["drop_speaker_exp"])
        torch.testing.assert_close(no_exp, denoiser(target, level, other_speaker,
                                                    drop_speaker_exp=flags["drop_speaker_exp"]))
    with pytest.raises(ValueError, match="listener_memory: expected shape"):
        denoiser(target, level, dataclasses.replace(cond, listener_memory=None))


def test_a_stream_remembers_what_it_emitted(corpus):
    clips = load_split_clips(DyadicCorpus(corpus), "train", SMALL)
    normalizer = Normalizer.fit([c.listener for c in clips], [c.speaker_exp for c in clips])
    cfg = BrainConfig(model=dataclasses.replace(SMALL, attitudes=[]))
    denoiser, diffusion = build_denoiser_and_diffusion(cfg)
    policy = ListenerPolicy(denoiser, diffusion, normalizer, cfg)
    clip = clips[0]
    stream = policy.stream(num_samples=2, seed=3, steps=2)
    emitted = np.concatenate([stream.push(clip.speaker_audio[:37], clip.speaker_exp[:37])], axis=1)  # 36 frames
    assert emitted.shape[1] == 36
    listener_memory, coverage = stream.listener_memory.read()
    own = normalizer.normalize_listener(torch.from_numpy(emitted)).numpy()
    speaker = normalizer.normalize_speaker_exp(torch.from_numpy(clip.speaker_exp)).numpy()
    for tau_index, tau in enumerate(SECONDS):
        for sample in range(2):
            np.testing.assert_allclose(listener_memory[sample, tau_index].numpy(),
                                       hand_memory(own[sample], tau, 36)[0], atol=1e-4)
        np.testing.assert_allclose(stream.speaker_memory.read()[0][0, tau_index].numpy(),
                                   hand_memory(speaker, tau, 36)[0], atol=1e-4)
        assert float(coverage[tau_index]) == pytest.approx(hand_memory(own[0], tau, 36)[1], abs=1e-5)


def test_a_brain_with_memory_trains_with_own_history_and_reloads(corpus, tmp_path):
    import train_diffusion
    from utils.config import load_config

    cfg = load_config(BrainConfig, "configs/brain_tiny.yaml", [
        f"data={corpus}", f"out={tmp_path / 'run'}", "model.memory_seconds=[0.4,2]", "model.width=32",
        "model.layers=1", "train.batch_size=16", "train.max_steps=12", "train.val_every=6", "train.val_windows=16",
        "train.checkpoint_every=6", "train.device=cpu", "diffusion.own_history=0.5", "diffusion.own_history_steps=2"])
    policy = ListenerPolicy.from_checkpoint(train_diffusion.train(cfg, progress=False))
    assert policy.cfg.model.memory_seconds == [0.4, 2.0]
    clip = load_split_clips(DyadicCorpus(corpus), "test", SMALL)[0]
    offline = policy.generate(clip.speaker_audio[:50], clip.speaker_exp[:50], num_samples=2, seed=4, steps=3,
                              attitude=clip.attitude)
    stream = policy.stream(num_samples=2, seed=4, steps=3, attitude=clip.attitude)
    ends = [min(start + 7, 50) for start in range(0, 50, 7)]
    pieces = [stream.push(clip.speaker_audio[start:end], clip.speaker_exp[start:end])
              for start, end in zip(range(0, 50, 7), ends)]
    np.testing.assert_array_equal(offline, np.concatenate([*pieces, stream.flush()], axis=1))
