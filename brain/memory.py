"""Long memory: causal moving averages of the listener's and the speaker's whole past, a few tokens per window.

A window sees ``history_frames`` (1 s) of the listener and of the speaker. What a listener does over many
seconds — how warmly it has been smiling, how closely it follows the speaker's brows, a posture it took up —
is carried from window to window only by that second, so every window re-draws it a little, and two samples
of one speaker drift back towards the same speaker-driven course (docs/RESULTS.md: the missing diversity is
slow). ``model.memory_seconds`` (e.g. ``[2, 6, 20]``) gives the denoiser, per time constant τ, the
exponential moving average of everything before the window start ``s``:

    memory_τ(s)   = Σ_{u<s} a^(s-1-u) x_u  /  Σ_{u<s} a^(s-1-u)     a = exp(−1 / (τ · fps)), u from the clip start
    coverage_τ(s) = 1 − a^(s − clip start)                            0 at the clip start, → 1 after a few τ

of the listener's own normalised motion (56 dims: at sampling time, the frames the model itself emitted)
and of the speaker's normalised expression (50 dims). The speaker's audio is left out: its 768 dims per τ
per frame would multiply the training set's memory, and the world's slow speaker state (the rapport) is in
the expression. The cost at sampling is constant per frame — :class:`MemoryState` keeps the two running sums —
so a five-minute live session pays what its first window does.

The denoiser turns each average into one token (:mod:`brain.denoiser`), blended with a learned null by the
coverage, so a clip's first windows, whose averages hold few frames, are told so.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.signal import lfilter

from utils.config import ConfigError
from utils.flame import FPS


def memory_decays(seconds: list[float]) -> list[float]:
    """Per-frame decay ``a = exp(−1/(τ·fps))`` of each time constant τ (seconds, > 0)."""
    for tau in seconds:
        if not (math.isfinite(tau) and tau > 0):
            raise ConfigError(f"model.memory_seconds must hold positive numbers of seconds, got {seconds}")
    return [math.exp(-1.0 / (tau * FPS)) for tau in seconds]


def causal_memory(sequence: np.ndarray, seconds: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """``sequence [T,D]`` (one clip) -> ``memory [T,M,D]`` and ``coverage [T,M]`` (float32): row ``s`` is the
    average of frames ``< s`` (module docstring), zeros with coverage 0 at ``s = 0``."""
    sequence = np.asarray(sequence, dtype=np.float64)
    frames = len(sequence)
    memory = np.zeros((frames, len(seconds), sequence.shape[1]))
    coverage = np.zeros((frames, len(seconds)))
    counts = np.arange(frames)  # frames before row s
    for index, decay in enumerate(memory_decays(seconds)):
        running = lfilter([1.0], [1.0, -decay], sequence, axis=0)  # [T,D]: Σ_{u<=t} a^(t-u) x_u
        covered = -np.expm1(counts[1:] * np.log(decay))  # 1 - a^s, s >= 1
        memory[1:, index] = running[:-1] / (covered / (1 - decay))[:, None]  # over Σ_{u<s} a^(s-1-u)
        coverage[1:, index] = covered
    return memory.astype(np.float32), coverage.astype(np.float32)


class MemoryState:
    """The running averages of one stream of ``[K,n,D]`` frames, updated a chunk at a time, equal to
    :func:`causal_memory` of everything pushed so far."""

    def __init__(self, seconds: list[float], batch: int, dim: int, device: torch.device | str = "cpu"):
        self.decay = torch.tensor(memory_decays(seconds), dtype=torch.float64, device=device)  # [M]
        self.total = torch.zeros(batch, len(seconds), dim, dtype=torch.float64, device=device)  # Σ a^(s-1-u) x_u
        self.frames = 0

    def push(self, frames: torch.Tensor) -> None:
        """Append ``frames [K,n,D]`` (n may be 0)."""
        count = frames.shape[1]
        if count == 0:
            return
        ages = torch.arange(count - 1, -1, -1, dtype=torch.float64, device=self.decay.device)  # [n]: n-1 .. 0
        weights = self.decay[:, None] ** ages  # [M,n]
        self.total = (self.decay ** count)[None, :, None] * self.total + torch.einsum(
            "mn,knd->kmd", weights, frames.to(torch.float64))
        self.frames += count

    def read(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(memory [K,M,D], coverage [M])`` float32 at the next frame."""
        covered = -torch.expm1(self.frames * torch.log(self.decay))  # [M] = 1 - a^frames
        if self.frames == 0:
            return torch.zeros_like(self.total, dtype=torch.float32), covered.float()
        weight = covered / (1 - self.decay)  # [M]
        return (self.total / weight[None, :, None]).float(), covered.float()
