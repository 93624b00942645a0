"""The sampler against cases with a known answer.

With Gaussian data, ``x0 ~ N(0, diag(s²))``, the exact denoiser is ``E[x0 | x0 + σn] = s² / (s² + σ²) · x``. A
sampler that solves the diffusion ODE well must then turn unit noise into samples of std ``s`` in every
direction, for every ``s`` a listener window has (the near frames of a window given its history have std
~0.05 in normalised units, whole-window motion ~1). The denoiser below is that exact predictor, written as
the network's correction ``F`` so that it runs through :meth:`ListenerDiffusion.sample` unchanged.
"""
import math
from types import SimpleNamespace

import pytest
import torch

from brain.config import DiffusionConfig
from brain.denoiser import Conditioning
from brain.diffusion import ListenerDiffusion
from utils.flame import AUDIO_DIM, FLAME_DIM, SPEAKER_EXP_DIM

WINDOW = 4
DATA_STDS = torch.tensor([0.05, 0.1, 0.3, 1.0, 2.0]).repeat_interleave(FLAME_DIM // 5 + 1)[:FLAME_DIM]


class ExactGaussianDenoiser:
    """Stands in for :class:`ListenerDenoiser`: returns the ``F`` that makes ``D(x, σ)`` exact for
    zero-mean Gaussian data of per-dimension std ``stds [56]`` (or any ``x0_of(x, σ)`` given)."""

    def __init__(self, diffusion: ListenerDiffusion, x0_of=None, stds: torch.Tensor = DATA_STDS):
        self.cfg = SimpleNamespace(window_frames=WINDOW)
        self.diffusion = diffusion
        self.x0_of = x0_of or (lambda x, sigma: stds ** 2 / (stds ** 2 + sigma ** 2) * x)
        self.calls = 0

    def encode(self, cond, **drops):
        return SimpleNamespace(speaker=torch.zeros(cond.batch_size, 1, 1))

    def denoise(self, scaled, noise_level, encoded):
        self.calls += 1
        sigma_data = self.diffusion.cfg.sigma_data
        sigma = noise_level.exp()[:, None, None].double()
        x = scaled.double() * (sigma ** 2 + sigma_data ** 2).sqrt()
        c_skip = sigma_data ** 2 / (sigma ** 2 + sigma_data ** 2)
        c_out = sigma * sigma_data / (sigma ** 2 + sigma_data ** 2).sqrt()
        return ((self.x0_of(x, sigma) - c_skip * x) / c_out).float()


def _conditioning(batch: int) -> Conditioning:
    return Conditioning(history=torch.zeros(batch, 2, FLAME_DIM), history_valid=torch.ones(batch, 2, dtype=torch.bool),
                        speaker_audio=torch.zeros(batch, 3, AUDIO_DIM),
                        speaker_exp=torch.zeros(batch, 3, SPEAKER_EXP_DIM),
                        speaker_valid=torch.ones(batch, 3, dtype=torch.bool))


def _sample_std_ratio(diffusion, denoiser, steps, sampler, batch=4000, seed=0) -> torch.Tensor:
    """Per-dimension std of the samples over the data std ``[56]``."""
    generator = torch.Generator().manual_seed(seed)
    samples = diffusion.sample(denoiser, _conditioning(batch), steps=steps, sampler=sampler, generator=generator)
    return samples.reshape(-1, FLAME_DIM).std(0) / DATA_STDS


def test_default_sampler_reproduces_gaussian_data_at_every_scale():
    diffusion = ListenerDiffusion(DiffusionConfig())
    denoiser = ExactGaussianDenoiser(diffusion)
    ratio = _sample_std_ratio(diffusion, denoiser, steps=15, sampler="dpmpp_2m")
    assert denoiser.calls == 15  # one network evaluation per step
    # Sampling error of a std from 16,000 draws is ~0.6%; the solver's own error is what is bounded here.
    assert ratio.min() > 0.96 and ratio.max() < 1.07, ratio


def test_first_order_sampler_under_disperses_small_scales():
    """The failure the default sampler fixes: first-order DDIM at 15 steps shrinks a std-0.1 direction."""
    diffusion = ListenerDiffusion(DiffusionConfig())
    ratio = _sample_std_ratio(diffusion, ExactGaussianDenoiser(diffusion), steps=15, sampler="ddim")
    small = DATA_STDS == 0.1
    assert ratio[small].mean() < 0.85
    assert ratio[DATA_STDS == 2.0].mean() > 0.8


def test_dpmpp_2m_update_by_hand():
    """Three steps of DPM-Solver++(2M) with a linear stand-in denoiser ``D(x, σ) = a(σ)·x``, written out."""
    cfg = DiffusionConfig(sigma_min=0.1, sigma_max=4.0, rho=1.0)  # rho 1: evenly spaced σ = 4, 2.05, 0.1, 0
    diffusion = ListenerDiffusion(cfg)
    gain = {4.0: 0.2, 2.05: 0.5, 0.1: 0.9}

    def x0_of(x, sigma):
        return torch.tensor([gain[round(float(s), 4)] for s in sigma.flatten()], dtype=x.dtype)[:, None, None] * x

    noise = torch.randn(3, WINDOW, FLAME_DIM, generator=torch.Generator().manual_seed(0))
    out = diffusion.sample(ExactGaussianDenoiser(diffusion, x0_of), _conditioning(3), steps=3, noise=noise)
    s0, s1, s2 = 4.0, 2.05, 0.1
    x = noise.double() * s0
    d0 = 0.2 * x
    x = (s1 / s0) * x + (1 - s1 / s0) * d0  # first step: first order (no earlier x0 to extrapolate from)
    d1 = 0.5 * x
    h0, h1 = math.log(s0 / s1), math.log(s1 / s2)
    r = h0 / h1
    x = (s2 / s1) * x + (1 - s2 / s1) * ((1 + 1 / (2 * r)) * d1 - 1 / (2 * r) * d0)
    x = 0.9 * x  # last step to σ = 0: the denoised estimate itself
    torch.testing.assert_close(out.double(), x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sampler,eta", [("ddim", 0.0), ("ddim", 1.0), ("dpmpp_2m", 1.0)])
def test_stochastic_update_by_hand(sampler, eta):
    """Three steps with the same stand-in denoiser, written out, with eta the share of each step's noise
    re-drawn from the given step noise z: x' = (σ'/σ)·e^(−ηh)·x + (1 − e^(−(1+η)h))·d + σ'·sqrt(1 − e^(−2ηh))·z,
    h = ln(σ/σ'), where d = x0 for ddim and, for DPM-Solver++(2M) SDE after its first step,
    d = x0 + (x0 − x0_previous)·h / (2·h_previous)."""
    cfg = DiffusionConfig(sigma_min=0.1, sigma_max=4.0, rho=1.0)
    diffusion = ListenerDiffusion(cfg)
    gain = {4.0: 0.2, 2.05: 0.5, 0.1: 0.9}

    def x0_of(x, sigma):
        return torch.tensor([gain[round(float(s), 4)] for s in sigma.flatten()], dtype=x.dtype)[:, None, None] * x

    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(3, WINDOW, FLAME_DIM, generator=generator)
    step_noise = torch.randn(3, 3, WINDOW, FLAME_DIM, generator=generator)
    out = diffusion.sample(ExactGaussianDenoiser(diffusion, x0_of), _conditioning(3), steps=3, sampler=sampler,
                           eta=eta, noise=noise, step_noise=step_noise if eta else None)
    x = noise.double() * 4.0
    previous = None
    for index, (sigma, sigma_next) in enumerate([(4.0, 2.05), (2.05, 0.1)]):
        h = math.log(sigma / sigma_next)
        x0 = gain[sigma] * x
        direction = x0
        if sampler == "dpmpp_2m" and previous is not None:
            direction = x0 + (x0 - previous[0]) * h / (2 * previous[1])
        x = ((sigma_next / sigma) * math.exp(-eta * h) * x + (1 - math.exp(-(1 + eta) * h)) * direction
             + sigma_next * math.sqrt(1 - math.exp(-2 * eta * h)) * step_noise[index].double())
        previous = (x0, h)
    x = 0.9 * x  # last step to σ = 0: the denoised estimate itself
    torch.testing.assert_close(out.double(), x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sampler,steps,low,high", [("dpmpp_2m", 15, 0.95, 1.12), ("ddim", 100, 0.93, 1.06)])
def test_stochastic_samplers_keep_the_marginal(sampler, steps, low, high):
    """eta = 1 redraws each step's noise: DPM-Solver++(2M) SDE at the default budget, and DDPM's ancestral
    sampling (first order) with fine steps, still land on the data distribution."""
    diffusion = ListenerDiffusion(DiffusionConfig())
    generator = torch.Generator().manual_seed(1)
    samples = diffusion.sample(ExactGaussianDenoiser(diffusion), _conditioning(2000), steps=steps, sampler=sampler,
                               eta=1.0, generator=generator)
    ratio = samples.reshape(-1, FLAME_DIM).std(0) / DATA_STDS
    assert ratio[DATA_STDS >= 0.3].min() > low and ratio.max() < high, ratio


def test_step_noise_given_equals_step_noise_drawn():
    """The per-step noise can be passed in (what makes a stochastic loop CUDA-graph capturable): the same
    numbers as drawing it from the generator."""
    diffusion = ListenerDiffusion(DiffusionConfig())
    denoiser, cond = ExactGaussianDenoiser(diffusion), _conditioning(3)
    generator = torch.Generator().manual_seed(5)
    drawn = diffusion.sample(denoiser, cond, steps=6, eta=0.7, generator=generator)
    generator = torch.Generator().manual_seed(5)
    noise = torch.randn(3, WINDOW, FLAME_DIM, generator=generator)
    step_noise = torch.randn(6, 3, WINDOW, FLAME_DIM, generator=generator)
    given = diffusion.sample(denoiser, cond, steps=6, eta=0.7, noise=noise, step_noise=step_noise)
    torch.testing.assert_close(given, drawn, rtol=0, atol=0)
    other = diffusion.sample(denoiser, cond, steps=6, eta=0.7, noise=noise, step_noise=torch.randn_like(step_noise))
    assert not torch.allclose(other, given)


@pytest.mark.parametrize("sampler,max_off_mode", [("dpmpp_2m", 0.01), ("ddim", 0.03)])
def test_bimodal_data_keeps_both_modes(sampler, max_off_mode):
    """Listeners choose (nod or not): with two modes ±1 of width 0.1, samples must land on a mode, not between."""
    width = 0.1

    def x0_of(x, sigma):
        variance = width ** 2 + sigma ** 2
        logit = ((x + 1) ** 2 - (x - 1) ** 2) / (2 * variance)  # log p(+1 | x) - log p(-1 | x)
        p_plus = torch.sigmoid(logit)
        mode = 2 * p_plus - 1
        return mode + width ** 2 / variance * (x - mode)

    diffusion = ListenerDiffusion(DiffusionConfig())
    samples = diffusion.sample(ExactGaussianDenoiser(diffusion, x0_of), _conditioning(1000), steps=15,
                               sampler=sampler, generator=torch.Generator().manual_seed(2))
    off_mode = ((samples.abs() - 1).abs() > 0.3).float().mean()  # the data itself: 0.3%
    positive = (samples > 0).float().mean()
    assert off_mode < max_off_mode and abs(positive - 0.5) < 0.03
    assert 0.9 < (samples.abs() - 1).std() / width < 1.15
