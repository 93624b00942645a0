"""The diffusion process around a :class:`~brain.denoiser.ListenerDenoiser`: noise levels, loss, sampling.

Continuous noise levels σ in EDM's formulation (Karras et al. 2022), all in normalised listener units:

* a noisy window is ``x = x0 + σ·n``; the network sees it scaled to unit variance,
  ``c_in·x = x / sqrt(σ² + σ_data²)``, with the noise level ``ln σ`` as its "timestep";
* it predicts x0 through a skip: ``D(x, σ) = c_skip·x + c_out·F(c_in·x, ln σ)``, ``c_skip = σ_data² / (σ² +
  σ_data²)``, ``c_out = σ·σ_data / sqrt(σ² + σ_data²)``. ``c_skip·x`` is the best linear guess of x0, so the
  network only supplies a unit-scale correction;
* training draws ``ln σ ~ N(p_mean, p_std²)`` and weights the loss by ``1 / c_out²`` (``loss_weighting="edm"``:
  a unit-weighted loss on ``F``, every noise level down to the small ones that shape a window's fine detail
  learned equally) or by 1 (``"x0"``: plain x0 L2).

Why not the discrete VP schedule (cosine, T = 50) with DDIM that this module used before: with the *exact*
x0 predictor of Gaussian data, that sampler's output std is 0.72 × the data's at 15 steps for a direction of
std 0.1 (0.86 × at 50 steps, 0.53 × at 5), because DDIM is a first-order solver and T = 50's least-noisy
level (σ ≈ 0.044) is not small next to such a direction. Given clean history, a listener window's
near frames are such directions, and autoregressive windows compound the loss: that is the
under-dispersion the brain showed (docs/BRAIN.md, "Sampler"; ``tests/test_brain_model.py`` pins the
analytic numbers).

* Loss (normalised units, weighted per sample by ``1 / c_out²``): x0 L2 + ``velocity_weight`` · L2 of first
  differences + ``acceleration_weight`` · L2 of second differences. The differences include the step from
  the last history frame into the window, which is what teaches seamless chunk joins.
* Sampling: ``sampler="dpmpp_2m"`` (DPM-Solver++(2M), Lu et al. 2022: second order, one network
  evaluation per step) or ``"ddim"`` (its first-order special case), over Karras's noise levels
  ``σ_max → σ_min`` (``rho``) and a final step to σ = 0. ``steps`` is the number of network evaluations per
  window; ``eta`` in [0, 1] re-draws that share of each step's noise (0: the deterministic ODE solver; 1 with
  ``ddim``: DDPM's ancestral sampling; with ``dpmpp_2m``: DPM-Solver++(2M) SDE).
* Classifier-free guidance per modality. Training drops audio, expression or both (exclusive, with
  ``drop_audio``/``drop_speaker_exp``/``drop_both``) and, independently, the history (``drop_history``) and
  the attitude (``drop_attitude``). Sampling evaluates three branches in one batched forward — none, audio
  only, audio + expression, each with the requested attitude, intensity ``c`` and the listener's history
  ``h`` — and, for attitude guidance, audio + expression without the attitude, and for history guidance,
  audio + expression without the history. It combines the x0 predictions

      x0 = x0(∅|c,h) + g_audio · (x0(audio|c,h) − x0(∅|c,h)) + g_exp · (x0(audio, exp|c,h) − x0(audio|c,h))
           + (g_attitude − 1) · (x0(audio, exp|c,h) − x0(audio, exp|no attitude,h))
           + (g_history − 1) · (x0(audio, exp|c,h) − x0(audio, exp|c,no history))

  so ``g_audio = g_exp = g_attitude = g_history = 1`` is plain conditional sampling (then only one branch is
  run), ``g_attitude = 0`` (with the others 1) samples as if no attitude were asked for, and ``g_history > 1``
  makes each window follow the listener's own past more than the speaker-driven average of what follows it
  (history guidance, as in Song et al. 2025's history-guided video diffusion: windows strung together
  autoregressively revert to that average a little at every window, which narrows what a listener does over
  seconds). Only the branches a guidance term needs are run: with ``g_audio = g_exp = 1`` the speaker's ∅
  and audio branches are left out (two branches for attitude guidance alone).
* ``objective="regression"`` trains the same network deterministically: input window all zeros,
  noise level σ_data, no condition dropout; sampling is one forward pass.
"""
from __future__ import annotations

import dataclasses
import math
import typing

import torch
from torch import nn

from brain.config import DiffusionConfig
from brain.denoiser import Conditioning, EncodedCondition, ListenerDenoiser
from utils.config import ConfigError
from utils.errors import UsageError

SAMPLERS = ("dpmpp_2m", "ddim")


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """``steps`` noise levels from ``sigma_max`` down to ``sigma_min`` (Karras et al.'s spacing), then 0."""
    if steps == 1:
        return [sigma_max, 0.0]
    ramp = [i / (steps - 1) for i in range(steps)]
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(top + r * (bottom - top)) ** rho for r in ramp] + [0.0]


def motion_loss(predicted: torch.Tensor, target: torch.Tensor, previous: torch.Tensor, previous_valid: torch.Tensor,
                velocity_weight: float, acceleration_weight: float,
                sample_weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """x0, velocity and acceleration L2 of ``[B,W,56]`` windows; ``previous [B,1,56]`` is the last history frame.

    The differences that reach into ``previous`` count only where ``previous_valid [B]`` is True.
    ``sample_weight [B]`` (None: 1) weights each window's three terms in ``loss``; the reported parts
    ``x0``/``velocity``/``acceleration`` are unweighted, so their curves read the same for any weighting.
    """
    weight = torch.ones(predicted.shape[0], device=predicted.device) if sample_weight is None else sample_weight
    pred_seq = torch.cat([previous, predicted], dim=1)  # [B,1+W,56]
    target_seq = torch.cat([previous, target], dim=1)
    valid = torch.ones_like(pred_seq[:, :, :1])  # [B,1+W,1]: validity of each frame
    valid[:, 0, 0] = previous_valid.float()
    velocity_valid = valid[:, 1:] * valid[:, :-1]  # [B,W,1]
    acceleration_valid = velocity_valid[:, 1:] * velocity_valid[:, :-1]  # [B,W-1,1]
    x0_error = ((predicted - target) ** 2).mean(dim=(1, 2))  # [B]
    velocity_error = ((pred_seq.diff(dim=1) - target_seq.diff(dim=1)) ** 2 * velocity_valid).sum(dim=(1, 2))
    acceleration_error = ((pred_seq.diff(n=2, dim=1) - target_seq.diff(n=2, dim=1)) ** 2
                          * acceleration_valid).sum(dim=(1, 2))
    velocity_count = velocity_valid.sum() * target.shape[-1]
    acceleration_count = acceleration_valid.sum().clamp(min=1) * target.shape[-1]
    batch = predicted.shape[0]

    def reduce(per_sample: torch.Tensor, count, w: torch.Tensor) -> torch.Tensor:
        return (per_sample * w).sum() / count

    x0, velocity = x0_error.mean(), velocity_error.sum() / velocity_count
    acceleration = acceleration_error.sum() / acceleration_count
    total = (reduce(x0_error, batch, weight) + velocity_weight * reduce(velocity_error, velocity_count, weight)
             + acceleration_weight * reduce(acceleration_error, acceleration_count, weight))
    return {"loss": total, "x0": x0, "velocity": velocity, "acceleration": acceleration}


class Branches(typing.NamedTuple):
    """Which guidance branches a sampling step runs besides audio + expression (:meth:`ListenerDiffusion.
    guidance_branches`)."""
    speaker: bool  # ∅ and audio-only before it
    attitude: bool  # audio + expression without the attitude after it
    history: bool  # audio + expression without the history, last

    @property
    def count(self) -> int:
        return (3 if self.speaker else 1) + self.attitude + self.history


class ListenerDiffusion(nn.Module):
    """Noise-level preconditioning plus ``loss(denoiser, target, cond)`` and ``sample(denoiser, cond, ...)``."""

    def __init__(self, cfg: DiffusionConfig, objective: str = "diffusion"):
        super().__init__()
        if objective not in ("diffusion", "regression"):
            raise ConfigError(f"model.objective must be 'diffusion' or 'regression', got {objective!r}")
        if not 0 < cfg.sigma_min < cfg.sigma_max:
            raise ConfigError(f"diffusion.sigma_min ({cfg.sigma_min}) must be > 0 and below diffusion.sigma_max "
                             f"({cfg.sigma_max})")
        if cfg.own_history_every < 1 or cfg.own_history_ease_frames < 0:
            raise ConfigError(f"diffusion.own_history_every must be >= 1 and own_history_ease_frames >= 0, got "
                              f"{cfg.own_history_every} and {cfg.own_history_ease_frames}")
        self.cfg = cfg
        self.objective = objective

    def _preconditioning(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``sigma [B]`` -> ``c_in``, ``c_skip``, ``c_out`` ``[B,1,1]`` and the network's noise level ``ln σ [B]``."""
        sigma_data = self.cfg.sigma_data
        sigma = sigma.float()
        norm = (sigma ** 2 + sigma_data ** 2).sqrt()[:, None, None]
        return 1 / norm, (sigma_data / norm) ** 2, sigma[:, None, None] * sigma_data / norm, sigma.log()

    def denoise(self, denoiser: ListenerDenoiser, noisy: torch.Tensor, sigma: torch.Tensor,
                encoded: EncodedCondition) -> torch.Tensor:
        """``D(x, σ)`` for sampling: x0 ``[B,W,56]`` from ``noisy [B,W,56]`` at ``sigma [B]``, the condition
        encoded once per window (:meth:`encode_for_sampling`)."""
        c_in, c_skip, c_out, level = self._preconditioning(sigma)
        return c_skip * noisy + c_out * denoiser.denoise(c_in * noisy, level, encoded).float()

    def predict_x0(self, denoiser: nn.Module, noisy: torch.Tensor, sigma: torch.Tensor, cond: Conditioning,
                   **drops: torch.Tensor) -> torch.Tensor:
        """``D(x, σ)`` for training: through the module's own forward (so a DDP-wrapped denoiser syncs its
        gradients), with optional condition drops."""
        if self.objective == "regression":
            return self._regress(denoiser, cond, noisy.shape)
        c_in, c_skip, c_out, level = self._preconditioning(sigma)
        return c_skip * noisy + c_out * denoiser(c_in * noisy, level, cond, **drops).float()

    def _regress(self, denoiser: nn.Module, cond: Conditioning, shape) -> torch.Tensor:
        """The regression objective's one forward: an all-zero window at noise level σ_data."""
        level = torch.full((shape[0],), math.log(self.cfg.sigma_data), device=cond.history.device)
        return denoiser(cond.history.new_zeros(shape), level, cond).float()

    def _condition_drops(self, batch: int, generator: torch.Generator | None, device) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        draw = torch.rand(batch, generator=generator, device=device)
        drop_audio = draw < cfg.drop_audio
        drop_speaker_exp = (draw >= cfg.drop_audio) & (draw < cfg.drop_audio + cfg.drop_speaker_exp)
        both = ((draw >= cfg.drop_audio + cfg.drop_speaker_exp)
                & (draw < cfg.drop_audio + cfg.drop_speaker_exp + cfg.drop_both))
        drop_history = torch.rand(batch, generator=generator, device=device) < cfg.drop_history
        drop_attitude = torch.rand(batch, generator=generator, device=device) < cfg.drop_attitude
        return {"drop_audio": drop_audio | both, "drop_speaker_exp": drop_speaker_exp | both,
                "drop_history": drop_history, "drop_attitude": drop_attitude}

    def training_sigmas(self, batch: int, generator: torch.Generator | None, device) -> torch.Tensor:
        """``[B]`` noise levels: ``ln σ ~ N(p_mean, p_std²)``."""
        normal = torch.randn(batch, generator=generator, device=device)
        return (self.cfg.p_mean + self.cfg.p_std * normal).exp()

    def loss(self, denoiser: nn.Module, target: torch.Tensor, cond: Conditioning, *,
             generator: torch.Generator | None = None, drop_conditions: bool = True) -> dict[str, torch.Tensor]:
        """Training loss of ``target [B,W,56]`` (normalised); returns ``loss`` and its parts (scalars)."""
        batch, device = target.shape[0], target.device
        previous, previous_valid = cond.history[:, -1:], cond.history_valid[:, -1]
        if self.objective == "regression":
            return motion_loss(self._regress(denoiser, cond, target.shape), target, previous, previous_valid,
                               self.cfg.velocity_weight, self.cfg.acceleration_weight)
        sigma = self.training_sigmas(batch, generator, device)
        noise = torch.randn(target.shape, generator=generator, device=device)
        drops = self._condition_drops(batch, generator, device) if drop_conditions else {}
        model_cond = cond
        if drop_conditions and self.cfg.history_noise > 0:
            scale = self.cfg.history_noise * torch.rand((batch, 1, 1), generator=generator, device=device)
            history_noise = scale * torch.randn(cond.history.shape, generator=generator, device=device)
            model_cond = dataclasses.replace(cond, history=cond.history + history_noise)
        predicted = self.predict_x0(denoiser, target + sigma[:, None, None] * noise, sigma, model_cond, **drops)
        sigma_data = self.cfg.sigma_data
        weight = (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2 if self.cfg.loss_weighting == "edm" else None
        return motion_loss(predicted, target, previous, previous_valid, self.cfg.velocity_weight,
                           self.cfg.acceleration_weight, sample_weight=weight)

    @staticmethod
    def check_sampling_options(steps: int, sampler: str, eta: float) -> None:
        """Refuse a step count, sampler or eta that :meth:`sample` cannot run (UsageError)."""
        if not 1 <= steps <= 1000:
            raise UsageError(f"steps (network evaluations per window) must be in 1..1000, got {steps}")
        if sampler not in SAMPLERS:
            raise UsageError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if not 0 <= eta <= 1:
            raise UsageError(f"eta must be in [0, 1], got {eta}")

    def sampling_sigmas(self, steps: int) -> list[float]:
        """The noise levels of a ``steps``-evaluation sampling run, ``sigma_max`` → 0 (``steps + 1`` values)."""
        return karras_sigmas(steps, self.cfg.sigma_min, self.cfg.sigma_max, self.cfg.rho)

    def guided_x0(self, denoiser: ListenerDenoiser, x: torch.Tensor, sigma: float, encoded: EncodedCondition,
                  guidance_audio: float, guidance_speaker_exp: float, guidance_attitude: float = 1.0,
                  guidance_history: float = 1.0) -> torch.Tensor:
        """x0 for ``x [B,W,56]`` at noise level ``sigma``; ``encoded`` from :meth:`encode_for_sampling` with the
        branches of :meth:`guidance_branches` for the same scales (B rows each)."""
        branches = self.guidance_branches(guidance_audio, guidance_speaker_exp, guidance_attitude, guidance_history)
        batch = x.shape[0]
        if encoded.speaker.shape[0] != branches.count * batch:
            raise ValueError(f"the condition was encoded for {encoded.speaker.shape[0] // batch} branches, "
                             f"these guidance scales need {branches.count}")
        level = torch.full((branches.count * batch,), sigma, device=x.device)
        x0 = list(self.denoise(denoiser, x.repeat(branches.count, 1, 1), level, encoded).chunk(branches.count))
        if branches.speaker:
            none, audio, both = x0[:3]
            guided = none + guidance_audio * (audio - none) + guidance_speaker_exp * (both - audio)
        else:
            both = guided = x0[0]
        if branches.history:
            guided = guided + (guidance_history - 1) * (both - x0.pop())
        if branches.attitude:
            guided = guided + (guidance_attitude - 1) * (both - x0.pop())
        return guided

    @staticmethod
    def guidance_branches(guidance_audio: float, guidance_speaker_exp: float, guidance_attitude: float = 1.0,
                          guidance_history: float = 1.0) -> Branches:
        """Network branches per evaluation: audio+exp, preceded by ∅ and audio when the speaker is guided
        (either scale ≠ 1), followed by audio+exp without the attitude when the attitude is (scale ≠ 1) and
        by audio+exp without the history when the history is: 1 to 5."""
        return Branches(speaker=not (guidance_audio == 1.0 and guidance_speaker_exp == 1.0),
                        attitude=guidance_attitude != 1.0, history=guidance_history != 1.0)

    @staticmethod
    def encode_for_sampling(denoiser: ListenerDenoiser, cond: Conditioning, branches: Branches) -> EncodedCondition:
        """The condition encoded once per window for ``branches`` (:meth:`guidance_branches`), stacked along
        the batch in that order (flags built on the device: CUDA-graph capturable)."""
        if branches.count == 1:
            return denoiser.encode(cond)
        index = torch.arange(branches.count * cond.batch_size, device=cond.history.device) // cond.batch_size
        # Slots: [∅ (drops audio and expression), audio (drops the expression)] when the speaker is guided, then
        # audio + expression, then [no attitude], then [no history].
        audio_dropped, expression_dropped = (1, 2) if branches.speaker else (0, 0)
        attitude_slot = branches.count - 1 - branches.history if branches.attitude else -1
        history_slot = branches.count - 1 if branches.history else -1
        return denoiser.encode(cond.repeat(branches.count), drop_audio=index < audio_dropped,
                               drop_speaker_exp=index < expression_dropped, drop_attitude=index == attitude_slot,
                               drop_history=index == history_slot)

    @torch.no_grad()
    def sample(self, denoiser: ListenerDenoiser, cond: Conditioning, *, steps: int = 15, sampler: str = "dpmpp_2m",
               eta: float = 0.0, guidance_audio: float = 1.0, guidance_speaker_exp: float = 1.0,
               guidance_attitude: float = 1.0, guidance_history: float = 1.0, noise: torch.Tensor | None = None,
               step_noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``steps`` network evaluations from ``noise [B,W,56]`` (unit normal; drawn from ``generator`` if
        None) -> clean window ``[B,W,56]``.

        ``eta`` in [0, 1] makes the solver stochastic: each step re-draws that share of its noise
        (``ddim``: ancestral sampling; ``dpmpp_2m``: DPM-Solver++(2M) SDE), from ``step_noise [steps,B,W,56]``
        (unit normal; drawn from ``generator`` if None — passing it in keeps the loop CUDA-graph capturable).
        ``eta = 0`` is the deterministic ODE solver.
        """
        if self.objective == "regression":
            return self._regress(denoiser, cond, (cond.batch_size, denoiser.cfg.window_frames, cond.history.shape[-1]))
        self.check_sampling_options(steps, sampler, eta)
        batch, device = cond.batch_size, cond.history.device
        shape = (batch, denoiser.cfg.window_frames, cond.history.shape[-1])
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=device)
        if eta and step_noise is None:
            step_noise = torch.randn((steps, *shape), generator=generator, device=device)
        encoded = self.encode_for_sampling(denoiser, cond, self.guidance_branches(
            guidance_audio, guidance_speaker_exp, guidance_attitude, guidance_history))
        sigmas = self.sampling_sigmas(steps)
        x = noise * sigmas[0]
        previous_x0, previous_step = None, None
        for index, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
            x0 = self.guided_x0(denoiser, x, sigma, encoded, guidance_audio, guidance_speaker_exp,
                                guidance_attitude, guidance_history)
            if sigma_next == 0:
                x = x0
                break
            step = math.log(sigma / sigma_next)  # h: the step in λ = −ln σ
            # The step's exact solution for a constant x0 (the solver's first order), with a share eta of
            # the noise re-drawn: x' = (σ'/σ)·e^(−ηh)·x + (1 − e^(−(1+η)h))·x0 + σ'·sqrt(1 − e^(−2ηh))·z.
            gain = -math.expm1(-(1 + eta) * step)
            direction = x0
            if sampler == "dpmpp_2m" and previous_x0 is not None:  # second order: x0's slope over the last step
                direction = x0 + (x0 - previous_x0) * previous_step_share(previous_step, step)
            x = (sigma_next / sigma) * math.exp(-eta * step) * x + gain * direction
            if eta:
                x = x + sigma_next * math.sqrt(-math.expm1(-2 * eta * step)) * step_noise[index]
            previous_x0, previous_step = x0, step
        return x


def previous_step_share(previous_step: float, step: float) -> float:
    """DPM-Solver++(2M)'s weight of ``x0 − x0_previous``: half the ratio of this step to the last (in λ)."""
    return step / (2 * previous_step)


def build_denoiser_and_diffusion(cfg) -> tuple[ListenerDenoiser, ListenerDiffusion]:
    """The two modules a :class:`~brain.config.BrainConfig` describes (on CPU; move them with ``.to``)."""
    return ListenerDenoiser(cfg.model), ListenerDiffusion(cfg.diffusion, cfg.model.objective)
