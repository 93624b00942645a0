"""Training windows cut from a :class:`~brain.data.DyadicCorpus`, gathered in bulk on any device.

A window starting at frame ``s`` of a clip is the triple the denoiser sees (``H`` history, ``W`` window,
``C`` chunk frames, see :mod:`brain.denoiser`):

    history        listener  [s-H, s)     frames before the clip start are marked invalid
    target         listener  [s, s+W)     always inside the clip
    speaker        audio/exp [s-S, s+C)   S = model.speaker_history_frames (H unless speaker_context_frames);
                                          frames before the clip start are marked invalid
    attitude       the clip's attitude index in ``model.attitudes`` (``NO_ATTITUDE`` when unlabelled)
    intensity      log2(motion energy of the frames around the window / the attitude's typical energy),
                   when ``model.intensity_frames`` > 0 (brain/conditions.py)
    memory         moving averages of the listener and the speaker expression over the clip's frames [start, s),
                   when ``model.memory_seconds`` is set (brain/memory.py); computed once per frame here

Every clip is validated by ``DyadicCorpus.load_clip(min_frames=W)``, so a broken clip stops training with
the contract's error naming the clip, the file and the numbers. The whole split lives in a few tensors
(a 200 × 60 s corpus is ~1 GB, fine on a GPU) and a batch is one fancy-index, no Python per window.
"""
from __future__ import annotations

import dataclasses

import torch

from brain.conditions import NO_ATTITUDE, attitude_index, typical_energies, window_energies
from brain.config import ModelConfig
from brain.data import Clip, CorpusError, DyadicCorpus
from brain.denoiser import Conditioning
from brain.memory import causal_memory
from brain.normalizer import Normalizer
from utils.errors import UsageError


def load_split_clips(corpus: DyadicCorpus, split: str, cfg: ModelConfig) -> list[Clip]:
    """Validated clips of ``split``; each must be at least one window long."""
    return corpus.load_split(split, min_frames=cfg.window_frames)


class WindowDataset(torch.utils.data.Dataset):
    """Windows every ``stride`` frames of every clip; ``gather(indices)`` -> ``(Conditioning, target)``.

    ``typical_energy [A+1]`` (see :func:`brain.conditions.typical_energies`) is what intensities are relative
    to; None fits it on these clips (the training set; the validation set is given the training set's).
    """

    def __init__(self, clips: list[Clip], normalizer: Normalizer, cfg: ModelConfig, *, stride: int = 1,
                 typical_energy: torch.Tensor | None = None):
        if not clips:
            raise ValueError("WindowDataset needs at least one clip")
        if stride < 1:
            raise ValueError(f"window stride must be >= 1, got {stride}")
        self.cfg = cfg
        with torch.no_grad():
            self.listener = normalizer.normalize_listener(torch.cat([torch.from_numpy(c.listener) for c in clips]))
            self.speaker_exp = normalizer.normalize_speaker_exp(torch.cat([torch.from_numpy(c.speaker_exp) for c in clips]))
        self.speaker_audio = torch.cat([torch.from_numpy(c.speaker_audio) for c in clips])
        starts, clip_offsets, clip_ends, attitudes, offset = [], [], [], [], 0
        for clip in clips:
            window_starts = torch.arange(0, clip.num_frames - cfg.window_frames + 1, stride)
            starts.append(offset + window_starts)
            clip_offsets.append(torch.full_like(window_starts, offset))
            clip_ends.append(torch.full_like(window_starts, offset + clip.num_frames))
            attitudes.append(torch.full_like(window_starts, self._attitude_index(clip)))
            offset += clip.num_frames
        self.listener_memory = self.speaker_memory = self.memory_coverage = None
        if cfg.memory_seconds:
            self._fit_memory(clips, cfg.memory_seconds)
        self.window_start = torch.cat(starts)  # [N] global frame index of each window's first frame
        self.clip_start = torch.cat(clip_offsets)  # [N] global frame index of its clip's first frame
        self.attitude = torch.cat(attitudes)  # [N] attitude index, NO_ATTITUDE for an unlabelled clip
        self.typical_energy, self.intensity = None, None
        if cfg.intensity_frames > 0:
            energy = window_energies(self.listener, self.clip_start, torch.cat(clip_ends), self.window_start,
                                     cfg.window_frames, cfg.intensity_frames)  # [N]
            if typical_energy is None:
                typical_energy = typical_energies(energy, self.attitude, len(cfg.attitudes))
            self.typical_energy = typical_energy.cpu()  # [A+1]
            self.intensity = torch.log2(energy / self.typical_energy[self.attitude])  # [N]

    def _fit_memory(self, clips: list[Clip], seconds: list[float]) -> None:
        """Per global frame f: the averages of its clip's frames before f (``[F,M,56]``, ``[F,M,50]``) and their
        coverage ``[F,M]``."""
        listener, speaker, coverage, offset = [], [], [], 0
        for clip in clips:
            frames = slice(offset, offset + clip.num_frames)
            memory, covered = causal_memory(self.listener[frames].numpy(), seconds)
            listener.append(torch.from_numpy(memory))
            speaker.append(torch.from_numpy(causal_memory(self.speaker_exp[frames].numpy(), seconds)[0]))
            coverage.append(torch.from_numpy(covered))
            offset += clip.num_frames
        self.listener_memory, self.speaker_memory = torch.cat(listener), torch.cat(speaker)
        self.memory_coverage = torch.cat(coverage)

    def _attitude_index(self, clip: Clip) -> int:
        if not self.cfg.attitudes or clip.attitude is None:
            return NO_ATTITUDE
        try:
            return attitude_index(self.cfg.attitudes, clip.attitude)
        except UsageError as error:
            raise CorpusError(f"clip {clip.clip_id}: {error}") from None

    def __len__(self) -> int:
        return len(self.window_start)

    def to(self, device) -> "WindowDataset":
        for name in ("listener", "speaker_exp", "speaker_audio", "window_start", "clip_start", "attitude", "intensity",
                     "listener_memory", "speaker_memory", "memory_coverage"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))
        return self

    def __getitem__(self, index: int) -> tuple[Conditioning, torch.Tensor]:
        cond, target = self.gather(torch.tensor([index], device=self.window_start.device))
        return cond.map(lambda value: value[0]), target[0]

    def gather(self, indices: torch.Tensor) -> tuple[Conditioning, torch.Tensor]:
        """``indices [B]`` -> ``(Conditioning, target [B,W,56])`` on the dataset's device."""
        indices = indices.to(self.window_start.device)
        return self._gather_at(self.window_start[indices], indices)

    def gather_previous(self, indices: torch.Tensor, frames: int) -> tuple[Conditioning, torch.Tensor]:
        """The conditioning of the windows starting ``frames`` earlier in the same clips (same attitude and
        intensity) and ``exists [B]`` bool; where that start would precede the clip, the clip's first window
        stands in and ``exists`` is False."""
        indices = indices.to(self.window_start.device)
        start = self.window_start[indices] - frames
        exists = start >= self.clip_start[indices]
        cond, _ = self._gather_at(torch.maximum(start, self.clip_start[indices]), indices)
        return cond, exists

    def _gather_at(self, window_start: torch.Tensor, indices: torch.Tensor) -> tuple[Conditioning, torch.Tensor]:
        """Windows starting at the global frames ``window_start [B]`` of the clips of windows ``indices [B]``."""
        cfg = self.cfg
        start, clip_start = window_start[:, None], self.clip_start[indices, None]  # [B,1]
        listener_frames = start + torch.arange(-cfg.history_frames, cfg.window_frames, device=start.device)
        speaker_frames = start + torch.arange(-cfg.speaker_history_frames, cfg.chunk_frames, device=start.device)
        listener_valid = listener_frames >= clip_start  # [B,H+W]
        speaker_valid = speaker_frames >= clip_start  # [B,S+C]
        listener = self.listener[torch.maximum(listener_frames, clip_start)]
        listener = listener * listener_valid[..., None]  # [B,H+W,56]
        speaker_index = torch.maximum(speaker_frames, clip_start)
        valid = speaker_valid[..., None]
        cond = Conditioning(history=listener[:, :cfg.history_frames],
                            history_valid=listener_valid[:, :cfg.history_frames],
                            speaker_audio=self.speaker_audio[speaker_index] * valid,
                            speaker_exp=self.speaker_exp[speaker_index] * valid,
                            speaker_valid=speaker_valid,
                            attitude=self.attitude[indices] if cfg.attitudes else None,
                            intensity=None if self.intensity is None else self.intensity[indices])
        if self.listener_memory is not None:
            cond = dataclasses.replace(cond, listener_memory=self.listener_memory[window_start],
                                       speaker_memory=self.speaker_memory[window_start],
                                       memory_coverage=self.memory_coverage[window_start])
        return cond, listener[:, cfg.history_frames:]
