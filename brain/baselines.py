"""Baselines for listener generation, behind the same ``generate`` as :class:`brain.policy.ListenerPolicy`.

    baselines = build_baselines(["random", "mirror", "nearest", "mean"], train_clips)
    motion = baselines["nearest"].generate(speaker_audio, speaker_exp, num_samples=3, seed=0)   # [K,T,56]

* ``random``: a random training clip's listener, from a random start, tiled when shorter than T.
* ``mirror``: the speaker's expression copied with a delay (``MIRROR_DELAY_FRAMES``), neutral (zero) pose.
* ``nearest``: for every 2 s window of the speaker, the training window whose speaker looks and sounds
  most alike, and that window's listener; sample k uses the k-th nearest neighbour.
* ``mean``: the training listeners' mean frame, held still.
* ``regression``: the brain's transformer trained with L2 (``model.objective=regression``), loaded with
  ``ListenerPolicy`` — the deterministic L2L/RLHG-style regressor.

Baselines that need data are fitted on the train split only. The sampling options of the policy
(``steps``, ``eta``, ``guidance_*``) are accepted and ignored, so one evaluation loop serves every method.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from brain.data import Clip, check_speaker_inputs
from utils.errors import UsageError
from utils.flame import EXP, FLAME_DIM

MIRROR_DELAY_FRAMES = 10  # 0.4 s at 25 fps: a plausible listener reaction lag
NEAREST_WINDOW_FRAMES = 50  # 2 s of speaker behaviour per nearest-neighbour query
NEAREST_STRIDE_FRAMES = 10  # spacing of the training windows searched
DATA_BASELINES = ("random", "mirror", "nearest", "mean")  # what ``--baselines all`` builds without a checkpoint


class MotionGenerator(Protocol):
    """Anything that turns a speaker into K listener motions: the policy and every baseline."""

    def generate(self, speaker_audio: np.ndarray, speaker_exp: np.ndarray, num_samples: int = 1, seed: int = 0,
                 **sampling_options) -> np.ndarray: ...


class Baseline:
    """Validates the speaker input and hands a seeded generator to :meth:`_generate`."""

    def generate(self, speaker_audio: np.ndarray, speaker_exp: np.ndarray, num_samples: int = 1, seed: int = 0,
                 **sampling_options) -> np.ndarray:
        """``[T,768]``, ``[T,50]`` -> ``[K,T,56]``; the diffusion policy's sampling options (steps, sampler,
        guidance, ...) mean nothing to a baseline and are ignored."""
        speaker_audio, speaker_exp = check_speaker_inputs(speaker_audio, speaker_exp)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        motion = self._generate(speaker_audio, speaker_exp, num_samples, np.random.default_rng(seed))
        return motion.astype(np.float32, copy=False)  # [K,T,56]

    def _generate(self, speaker_audio, speaker_exp, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


def fit_to_length(motion: np.ndarray, start: int, frames: int) -> np.ndarray:
    """``frames`` consecutive rows of ``motion [N,D]`` from ``start``, wrapping around when it runs out."""
    return motion[(start + np.arange(frames)) % len(motion)]


class RandomClipBaseline(Baseline):
    def __init__(self, train_clips: Sequence[Clip]):
        self.listeners = [c.listener for c in _require(train_clips, "random")]

    def _generate(self, speaker_audio, speaker_exp, num_samples, rng):
        frames = len(speaker_exp)
        out = []
        for _ in range(num_samples):
            listener = self.listeners[rng.integers(len(self.listeners))]
            start = rng.integers(max(1, len(listener) - frames + 1))
            out.append(fit_to_length(listener, int(start), frames))
        return np.stack(out)


class MirrorBaseline(Baseline):
    def __init__(self, delay_frames: int = MIRROR_DELAY_FRAMES):
        self.delay_frames = delay_frames

    def _generate(self, speaker_audio, speaker_exp, num_samples, rng):
        frames = len(speaker_exp)
        motion = np.zeros((frames, FLAME_DIM), dtype=np.float32)  # zero rotations and jaw: neutral pose
        source = np.clip(np.arange(frames) - self.delay_frames, 0, None)  # listener[t] = speaker[t - delay]
        motion[:, EXP] = speaker_exp[source]
        return np.repeat(motion[None], num_samples, axis=0)


class MeanBaseline(Baseline):
    def __init__(self, train_clips: Sequence[Clip]):
        self.mean_frame = np.concatenate([c.listener for c in _require(train_clips, "mean")]).mean(0)

    def _generate(self, speaker_audio, speaker_exp, num_samples, rng):
        return np.broadcast_to(self.mean_frame, (num_samples, len(speaker_exp), FLAME_DIM)).copy()


class NearestNeighbourBaseline(Baseline):
    """Window-level nearest neighbour in speaker features (z-scored on train; mean and std per window of the
    speaker's expression and audio, each block scaled by ``1/sqrt(width)`` so neither dominates)."""

    def __init__(self, train_clips: Sequence[Clip], window_frames: int = NEAREST_WINDOW_FRAMES,
                 stride_frames: int = NEAREST_STRIDE_FRAMES):
        train_clips = _require(train_clips, "nearest")
        self.window_frames = window_frames
        exp = np.concatenate([c.speaker_exp for c in train_clips])
        audio = np.concatenate([c.speaker_audio for c in train_clips])
        self.exp_stats = (exp.mean(0), exp.std(0) + 1e-6)
        self.audio_stats = (audio.mean(0), audio.std(0) + 1e-6)
        keys, listener_windows = [], []
        for clip in train_clips:
            length = min(window_frames, clip.num_frames)
            for start in range(0, clip.num_frames - length + 1, stride_frames):
                window = slice(start, start + length)
                keys.append(self._describe(clip.speaker_audio[window], clip.speaker_exp[window]))
                listener_windows.append(clip.listener[window])
        self.keys = np.stack(keys)  # [W, descriptor]
        self.listener_windows = listener_windows  # W arrays [<=window_frames, 56]

    def _describe(self, speaker_audio: np.ndarray, speaker_exp: np.ndarray) -> np.ndarray:
        exp = (speaker_exp - self.exp_stats[0]) / self.exp_stats[1]
        audio = (speaker_audio - self.audio_stats[0]) / self.audio_stats[1]
        blocks = [exp.mean(0), exp.std(0), audio.mean(0), audio.std(0)]
        return np.concatenate([b / np.sqrt(len(b)) for b in blocks])

    def _generate(self, speaker_audio, speaker_exp, num_samples, rng):
        frames = len(speaker_exp)
        motion = np.empty((num_samples, frames, FLAME_DIM), dtype=np.float32)
        for start in range(0, frames, self.window_frames):
            window = slice(start, min(frames, start + self.window_frames))
            query = self._describe(speaker_audio[window], speaker_exp[window])
            ranked = np.argsort(((self.keys - query) ** 2).sum(1))
            length = window.stop - window.start
            for k in range(num_samples):
                listener = self.listener_windows[ranked[k % len(ranked)]]
                motion[k, window] = fit_to_length(listener, 0, length)
        return motion


def _require(train_clips: Sequence[Clip], name: str) -> Sequence[Clip]:
    if not train_clips:
        raise ValueError(f"the {name} baseline is fitted on training clips, and none were given")
    return train_clips


def build_baselines(names: Sequence[str], train_clips: Sequence[Clip], *, regression_checkpoint=None,
                    device: str = "cpu") -> dict[str, MotionGenerator]:
    """``{name: generator}`` for ``names`` (``"all"`` = every data baseline, plus ``regression`` when a
    checkpoint is given). Unknown names and a ``regression`` without checkpoint are errors."""
    names = list(names)
    if "all" in names:
        names = list(DATA_BASELINES) + (["regression"] if regression_checkpoint else [])
    builders = {
        "random": lambda: RandomClipBaseline(train_clips),
        "mirror": lambda: MirrorBaseline(),
        "nearest": lambda: NearestNeighbourBaseline(train_clips),
        "mean": lambda: MeanBaseline(train_clips),
        "regression": lambda: _load_regression(regression_checkpoint, device),
    }
    unknown = [n for n in names if n not in builders]
    if unknown:
        raise UsageError(f"unknown baseline(s) {', '.join(unknown)}; known: all, {', '.join(builders)}")
    return {name: builders[name]() for name in names}


def _load_regression(checkpoint, device: str) -> MotionGenerator:
    if not checkpoint:
        raise UsageError("the regression baseline needs --regression_checkpoint (a brain trained with "
                         "model.objective=regression)")
    from brain.policy import ListenerPolicy

    return ListenerPolicy.from_checkpoint(checkpoint, device=device)
