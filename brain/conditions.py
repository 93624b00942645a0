"""The listener's reaction controls: its attitude (a label) and its intensity (a motion-energy scalar).

**Attitude.** A labelled corpus (``brain.data``) names its attitudes; training records them in
``model.attitudes`` and the denoiser learns one embedding per name plus a null one, which stands for "no
attitude" (an unlabelled clip, a dropped condition, ``attitude=None`` at sampling). The index ``-1`` means
that null everywhere (:data:`NO_ATTITUDE`).

**Intensity** is how much the listener moves, measured the same way at training and at evaluation:

    displacement(t) = mean over the 56 dims of (x[t + 5] - x[t])²       x: the z-scored listener (Normalizer)
    motion energy   = sqrt(mean of displacement(t) over a span of frames)

so it is the RMS change of the normalised FLAME vector over 0.2 s (:data:`ENERGY_LAG_FRAMES`). The lag
makes it count motion — smiles, nods, blinks, sway — rather than per-frame tracking noise, which a 1-frame
difference would be dominated by (and which a model could then raise by jittering). A training window
starting at ``s`` gets the energy of the ``model.intensity_frames`` frames centred on the window,
``[s + W/2 - L/2, s + W/2 + L/2)`` cut to its clip: a local activity level (4 s in the presets) rather
than the window's own 16 frames, so that holding it constant over a whole rollout still asks for natural,
bursty motion instead of a fixed amount in every window.

The condition the denoiser sees is ``log2(energy / typical)``, ``typical`` being the median window energy of
the training clips *of the same attitude* (of all training clips for an unlabelled clip). A user's
``intensity=X`` is that ratio: 1 (the default) asks for the data's typical activity of the requested
attitude, 2 for twice its motion, 0.5 for half. Nothing about the corpus is needed at sampling time.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from utils.errors import UsageError

NO_ATTITUDE = -1  # the attitude index of "no attitude": the null embedding
ENERGY_LAG_FRAMES = 5  # 0.2 s at 25 fps: the displacement lag of the motion energy


def attitude_index(attitudes: list[str], attitude: str | None) -> int:
    """The embedding index of ``attitude`` (``NO_ATTITUDE`` for None); UsageError listing the valid names."""
    if attitude is None:
        return NO_ATTITUDE
    if not attitudes:
        raise UsageError(f"attitude {attitude!r} asked of a model trained without attitude labels; it takes "
                         f"no attitude (use None)")
    if attitude not in attitudes:
        raise UsageError(f"unknown attitude {attitude!r}; this model knows {', '.join(attitudes)}")
    return attitudes.index(attitude)


def intensity_condition(intensity: float | None) -> float:
    """The denoiser's intensity input ``log2(intensity)`` (None: 1, the typical); UsageError unless > 0."""
    intensity = 1.0 if intensity is None else float(intensity)
    if not (math.isfinite(intensity) and intensity > 0):
        raise UsageError(f"intensity must be a positive number (1 = the data's typical motion), got {intensity}")
    return math.log2(intensity)


def displacement_energy(normalized_listener: torch.Tensor) -> torch.Tensor:
    """``[...,T,56]`` (z-scored) -> ``[...,T-lag]``: mean squared 0.2-s displacement starting at each frame."""
    lag = ENERGY_LAG_FRAMES
    return (normalized_listener[..., lag:, :] - normalized_listener[..., :-lag, :]).pow(2).mean(-1)


def motion_energy(normalized_listener: np.ndarray | torch.Tensor) -> np.ndarray:
    """The motion energy of whole sequences ``[...,T,56]`` (z-scored, T > lag) -> ``[...]`` (float64)."""
    motion = torch.as_tensor(np.asarray(normalized_listener, dtype=np.float64))
    if motion.shape[-2] <= ENERGY_LAG_FRAMES:
        raise UsageError(f"motion energy needs more than {ENERGY_LAG_FRAMES} frames, got {motion.shape[-2]}")
    return displacement_energy(motion).mean(-1).sqrt().numpy()


def window_energies(normalized_listener: torch.Tensor, clip_start: torch.Tensor, clip_end: torch.Tensor,
                    window_start: torch.Tensor, window_frames: int, span_frames: int) -> torch.Tensor:
    """Motion energy ``[N]`` of the span of ``span_frames`` centred on each window (module docstring).

    ``normalized_listener [F,56]``: every clip's frames concatenated; ``clip_start``, ``clip_end``,
    ``window_start [N]``: global frame indices of each window's clip bounds and first frame. A displacement
    pair counts when both its frames lie in the span and in the clip.
    """
    lag = ENERGY_LAG_FRAMES
    per_frame = torch.zeros(len(normalized_listener), dtype=torch.float64, device=normalized_listener.device)
    per_frame[:-lag] = displacement_energy(normalized_listener.double())  # pair (t, t+lag) stored at t
    prefix = torch.cat([per_frame.new_zeros(1), per_frame.cumsum(0)])
    centre = window_start + window_frames // 2
    first = torch.maximum(centre - span_frames // 2, clip_start)
    stop = torch.minimum(centre - span_frames // 2 + span_frames, clip_end) - lag  # pairs starting before stop
    if (stop <= first).any():
        raise UsageError(f"a window's intensity span holds no {lag}-frame displacement: use "
                         f"model.intensity_frames > {lag} and clips longer than {lag} frames")
    return ((prefix[stop] - prefix[first]) / (stop - first)).sqrt().float()


def typical_energies(energies: torch.Tensor, attitude: torch.Tensor, num_attitudes: int) -> torch.Tensor:
    """``[A+1]`` median window energy per attitude index, the last entry for all windows together; an
    attitude without windows (or ``NO_ATTITUDE``'s windows) falls back to that overall median."""
    overall = energies.median()
    typical = overall.repeat(num_attitudes + 1)
    for index in range(num_attitudes):
        chosen = energies[attitude == index]
        if len(chosen):
            typical[index] = chosen.median()
    return typical
