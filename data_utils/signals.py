"""Small signal shapes the synthetic worlds are built from: smoothed noise, eased plateaus, events in time.

Every function returns a float64 curve ``[frames]`` at 25 fps (``utils.flame.FPS``) and draws its randomness
only from the ``rng`` it is given, so a world that hands each actor its own generator stays reproducible.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from utils.flame import FPS


def smooth_noise(rng: np.random.Generator, frames: int, sigma_s: float) -> np.ndarray:
    """Low-pass noise ``[frames]``: white noise through a Gaussian kernel of ``sigma_s`` seconds, scaled to unit
    std in expectation (not per draw, so a short draw of slow noise keeps its own level and spread)."""
    sigma = sigma_s * FPS
    pad = int(4 * sigma) + 1
    noise = gaussian_filter1d(rng.standard_normal(frames + 2 * pad), sigma)[pad:pad + frames]
    return noise * np.sqrt(2 * np.sqrt(np.pi) * sigma)  # the filtered white noise has variance 1/(2 sqrt(pi) sigma)


def bump(frames: int, start: float, duration: float, attack: float = 0.25) -> np.ndarray:
    """A smooth plateau of height 1 from ``start`` for ``duration`` seconds, with raised-cosine edges."""
    t = np.arange(frames) / FPS - start
    edge = max(1e-3, min(attack, duration / 2))
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / edge, 0, 1))
    fall = 0.5 - 0.5 * np.cos(np.pi * np.clip((duration - t) / edge, 0, 1))
    return rise * fall


def poisson_times(rng: np.random.Generator, seconds: float, mean_interval: float) -> np.ndarray:
    """Sorted event times (seconds) of a Poisson process with ``mean_interval`` seconds between events."""
    count = rng.poisson(seconds / mean_interval)
    return np.sort(rng.uniform(0, seconds, count))


def blinks(rng: np.random.Generator, frames: int, times) -> np.ndarray:
    """Eye closure ``[frames]`` in 0..1: a 0.15–0.25 s pulse towards 1 at each of ``times`` (seconds)."""
    eye = np.zeros(frames)
    for time in times:
        eye = np.maximum(eye, bump(frames, time, rng.uniform(0.15, 0.25), attack=0.08))
    return eye


def oscillation(frames: int, start: float, cycles: int, frequency: float, amplitude: float,
                *, signed: bool = False) -> np.ndarray:
    """``cycles`` cycles of ``frequency`` Hz from ``start``, zero elsewhere. Unsigned: down-and-back movements
    ``amplitude * (1 - cos) / 2`` in ``[0, amplitude]`` (a nod); signed: ``amplitude * sin`` (a head shake)."""
    tau = np.arange(frames) / FPS - start
    inside = (tau >= 0) & (tau <= cycles / frequency)
    phase = 2 * np.pi * frequency * tau
    wave = np.sin(phase) if signed else 0.5 * (1 - np.cos(phase))
    return amplitude * inside * wave
