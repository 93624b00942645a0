"""Per-dimension z-scores fitted on the training split and carried in the checkpoint.

The listener motion and the speaker expression are normalised; the speaker audio goes through the
denoiser's own LayerNorm (wav2vec2 features differ in scale per layer and model, not per dimension).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from utils.flame import FLAME_DIM, SPEAKER_EXP_DIM

MIN_STD = 1e-3  # a dimension that never moves is scaled as if it moved this much, not divided by ~0


class Normalizer(nn.Module):
    """``normalize_listener [...,56]``, ``denormalize_listener``, ``normalize_speaker_exp [...,50]``."""

    def __init__(self):
        super().__init__()
        self.register_buffer("listener_mean", torch.zeros(FLAME_DIM))
        self.register_buffer("listener_std", torch.ones(FLAME_DIM))
        self.register_buffer("speaker_exp_mean", torch.zeros(SPEAKER_EXP_DIM))
        self.register_buffer("speaker_exp_std", torch.ones(SPEAKER_EXP_DIM))

    @classmethod
    def fit(cls, listener: list[np.ndarray], speaker_exp: list[np.ndarray]) -> "Normalizer":
        """Fit on lists of ``[T_i,56]`` and ``[T_i,50]`` arrays (all frames of the training clips)."""
        normalizer = cls()
        for name, arrays in (("listener", listener), ("speaker_exp", speaker_exp)):
            frames = np.concatenate(arrays, axis=0).astype(np.float64)
            getattr(normalizer, f"{name}_mean").copy_(torch.from_numpy(frames.mean(0)))
            getattr(normalizer, f"{name}_std").copy_(torch.from_numpy(np.maximum(frames.std(0), MIN_STD)))
        return normalizer

    def normalize_listener(self, listener: torch.Tensor) -> torch.Tensor:
        return (listener - self.listener_mean) / self.listener_std

    def denormalize_listener(self, listener: torch.Tensor) -> torch.Tensor:
        return listener * self.listener_std + self.listener_mean

    def normalize_speaker_exp(self, speaker_exp: torch.Tensor) -> torch.Tensor:
        return (speaker_exp - self.speaker_exp_mean) / self.speaker_exp_std

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "Normalizer":
        normalizer = cls()
        normalizer.load_state_dict(state)
        return normalizer
