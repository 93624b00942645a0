"""The diffusion process around a :class:`~brain.denoiser.ListenerDenoiser`: schedule, loss, DDIM sampling.

* Cosine schedule with a short ``T`` (``diffusion.train_steps``, 50 by default); the model predicts x0,
  through a skip parameterisation (EDM's preconditioning for unit-variance data, written in VP terms):
  ``x0 = sqrt(ᾱ_t) · x_t + sqrt(1 − ᾱ_t) · F(x_t, t, cond)``. ``sqrt(ᾱ_t) · x_t`` is the best linear guess
  of x0, so the network only supplies a unit-scale correction: at small t it does not have to learn the
  identity first, which is what leaves residual noise (too much amplitude, jitter) in an undertrained
  model's few-step samples.
* Loss (normalised units): x0 L2 + ``velocity_weight`` · L2 of first differences + ``acceleration_weight``
  · L2 of second differences. The differences include the step from the last history frame into the
  window, which is what teaches seamless chunk joins.
* Classifier-free guidance per modality. Training drops audio, expression or both (exclusive, with
  ``drop_audio``/``drop_speaker_exp``/``drop_both``) and, independently, the history (``drop_history``) and
  the attitude (``drop_attitude``). Sampling evaluates three branches in one batched forward — none, audio
  only, audio + expression, each with the requested attitude and intensity ``c`` — and, for attitude
  guidance, a fourth: audio + expression without the attitude. It combines

      x0 = x0(∅|c) + g_audio · (x0(audio|c) − x0(∅|c)) + g_exp · (x0(audio, exp|c) − x0(audio|c))
           + (g_attitude − 1) · (x0(audio, exp|c) − x0(audio, exp|no attitude))

  so ``g_audio = g_exp = g_attitude = 1`` is plain conditional sampling (then only one branch is run) and
  ``g_attitude = 0`` (with the others 1) samples as if no attitude were asked for.
* ``objective="regression"`` trains the same network deterministically: input window all zeros,
  timestep 0, no condition dropout; sampling is one forward pass.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from brain.config import DiffusionConfig
from brain.denoiser import Conditioning, EncodedCondition, ListenerDenoiser


def cosine_alpha_bar(steps: int, offset: float = 0.008) -> torch.Tensor:
    """``[steps]`` cumulative signal fraction ᾱ for t = 1..steps (Nichol & Dhariwal's cosine schedule)."""
    def f(t):
        return math.cos((t / steps + offset) / (1 + offset) * math.pi / 2) ** 2

    alpha_bar = [f(t) / f(0) for t in range(1, steps + 1)]
    return torch.tensor(alpha_bar, dtype=torch.float64).clamp(min=1e-5, max=1.0).float()


def motion_loss(predicted: torch.Tensor, target: torch.Tensor, previous: torch.Tensor, previous_valid: torch.Tensor,
                velocity_weight: float, acceleration_weight: float) -> dict[str, torch.Tensor]:
    """x0, velocity and acceleration L2 of ``[B,W,56]`` windows; ``previous [B,1,56]`` is the last history frame.

    The differences that reach into ``previous`` count only where ``previous_valid [B]`` is True.
    """
    pred_seq = torch.cat([previous, predicted], dim=1)  # [B,1+W,56]
    target_seq = torch.cat([previous, target], dim=1)
    weight = torch.ones_like(pred_seq[:, :, :1])  # [B,1+W,1]: validity of each frame
    weight[:, 0, 0] = previous_valid.float()
    velocity_error = (pred_seq.diff(dim=1) - target_seq.diff(dim=1)) ** 2  # [B,W,56]
    velocity_weight_map = weight[:, 1:] * weight[:, :-1]
    acceleration_error = (pred_seq.diff(n=2, dim=1) - target_seq.diff(n=2, dim=1)) ** 2  # [B,W-1,56]
    acceleration_weight_map = velocity_weight_map[:, 1:] * velocity_weight_map[:, :-1]
    x0 = F.mse_loss(predicted, target)
    velocity = (velocity_error * velocity_weight_map).sum() / (velocity_weight_map.sum() * target.shape[-1])
    acceleration = (acceleration_error * acceleration_weight_map).sum() / (
        acceleration_weight_map.sum().clamp(min=1) * target.shape[-1])
    total = x0 + velocity_weight * velocity + acceleration_weight * acceleration
    return {"loss": total, "x0": x0, "velocity": velocity, "acceleration": acceleration}


class ListenerDiffusion(nn.Module):
    """Schedule buffers plus ``loss(denoiser, target, cond)`` and ``sample(denoiser, cond, ...)``."""

    def __init__(self, cfg: DiffusionConfig, objective: str = "diffusion"):
        super().__init__()
        if objective not in ("diffusion", "regression"):
            raise ValueError(f"model.objective must be 'diffusion' or 'regression', got {objective!r}")
        self.cfg = cfg
        self.objective = objective
        self.register_buffer("alpha_bar", cosine_alpha_bar(cfg.train_steps))  # [T], t=0 is the least noisy

    @property
    def num_steps(self) -> int:
        return self.cfg.train_steps

    def add_noise(self, clean: torch.Tensor, timestep: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) for ``clean [B,W,56]`` at ``timestep [B]``."""
        alpha_bar = self.alpha_bar[timestep][:, None, None]
        return alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * noise

    def predict_x0(self, denoiser: nn.Module, noisy: torch.Tensor, timestep: torch.Tensor, cond: Conditioning,
                   **drops: torch.Tensor) -> torch.Tensor:
        """x0 ``[B,W,56]`` from ``noisy [B,W,56]`` at ``timestep [B]`` (see the module docstring)."""
        if self.objective == "regression":
            return denoiser(torch.zeros_like(noisy), torch.zeros_like(timestep), cond).float()
        return self._skip(noisy, timestep, denoiser(noisy, timestep, cond, **drops))

    def _skip(self, noisy: torch.Tensor, timestep: torch.Tensor, correction: torch.Tensor) -> torch.Tensor:
        alpha_bar = self.alpha_bar[timestep][:, None, None]
        return alpha_bar.sqrt() * noisy + (1 - alpha_bar).sqrt() * correction.float()

    def _condition_drops(self, batch: int, generator: torch.Generator | None, device) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        draw = torch.rand(batch, generator=generator, device=device)
        drop_audio = draw < cfg.drop_audio
        drop_speaker_exp = (draw >= cfg.drop_audio) & (draw < cfg.drop_audio + cfg.drop_speaker_exp)
        both = (draw >= cfg.drop_audio + cfg.drop_speaker_exp) & (draw < cfg.drop_audio + cfg.drop_speaker_exp + cfg.drop_both)
        drop_history = torch.rand(batch, generator=generator, device=device) < cfg.drop_history
        drop_attitude = torch.rand(batch, generator=generator, device=device) < cfg.drop_attitude
        return {"drop_audio": drop_audio | both, "drop_speaker_exp": drop_speaker_exp | both, "drop_history": drop_history,
                "drop_attitude": drop_attitude}

    def loss(self, denoiser: nn.Module, target: torch.Tensor, cond: Conditioning, *,
             generator: torch.Generator | None = None, drop_conditions: bool = True) -> dict[str, torch.Tensor]:
        """Training loss of ``target [B,W,56]`` (normalised); returns ``loss`` and its parts (scalars)."""
        batch, device = target.shape[0], target.device
        if self.objective == "regression":
            timestep = torch.zeros(batch, dtype=torch.long, device=device)
            predicted = self.predict_x0(denoiser, torch.zeros_like(target), timestep, cond)
        else:
            timestep = torch.randint(0, self.num_steps, (batch,), generator=generator, device=device)
            noise = torch.randn(target.shape, generator=generator, device=device)
            drops = self._condition_drops(batch, generator, device) if drop_conditions else {}
            model_cond = cond
            if drop_conditions and self.cfg.history_noise > 0:
                scale = self.cfg.history_noise * torch.rand((batch, 1, 1), generator=generator, device=device)
                history_noise = scale * torch.randn(cond.history.shape, generator=generator, device=device)
                model_cond = dataclasses.replace(cond, history=cond.history + history_noise)
            predicted = self.predict_x0(denoiser, self.add_noise(target, timestep, noise), timestep, model_cond,
                                        **drops)
        return motion_loss(predicted, target, cond.history[:, -1:], cond.history_valid[:, -1],
                           self.cfg.velocity_weight, self.cfg.acceleration_weight)

    def sampling_timesteps(self, steps: int) -> list[int]:
        """``steps`` timesteps from ``T-1`` down to 0, evenly spaced (DDIM respacing)."""
        if not 1 <= steps <= self.num_steps:
            raise ValueError(f"steps must be in 1..{self.num_steps} (the schedule's length), got {steps}")
        return sorted({round(x) for x in torch.linspace(self.num_steps - 1, 0, steps).tolist()}, reverse=True)

    def guided_x0(self, denoiser: ListenerDenoiser, x: torch.Tensor, timestep: int, encoded: EncodedCondition,
                  guidance_audio: float, guidance_speaker_exp: float, guidance_attitude: float = 1.0) -> torch.Tensor:
        """x0 for ``x [B,W,56]``; ``encoded`` from :meth:`encode_for_sampling` (3B or 4B rows when guided)."""
        batch = x.shape[0]
        branches = encoded.speaker.shape[0] // batch
        t = torch.full((branches * batch,), timestep, dtype=torch.long, device=x.device)
        x_in = x.repeat(branches, 1, 1)
        x0 = self._skip(x_in, t, denoiser.denoise(x_in, t, encoded))
        if branches == 1:
            return x0
        none, audio, both, *no_attitude = x0.chunk(branches)
        guided = none + guidance_audio * (audio - none) + guidance_speaker_exp * (both - audio)
        if no_attitude:
            guided = guided + (guidance_attitude - 1) * (both - no_attitude[0])
        return guided

    @staticmethod
    def guidance_branches(guidance_audio: float, guidance_speaker_exp: float, guidance_attitude: float) -> int:
        """1 (plain conditional), 3 (∅, audio, audio+exp) or 4 (and audio+exp without the attitude)."""
        if guidance_attitude != 1.0:
            return 4
        return 1 if guidance_audio == 1.0 and guidance_speaker_exp == 1.0 else 3

    @staticmethod
    def encode_for_sampling(denoiser: ListenerDenoiser, cond: Conditioning, branches: int) -> EncodedCondition:
        """The condition encoded once per window: the ``branches`` of :meth:`guidance_branches` stacked along
        the batch — ∅, audio, audio+exp, audio+exp without the attitude (flags built on the device:
        CUDA-graph capturable)."""
        if branches == 1:
            return denoiser.encode(cond)
        batch = cond.batch_size
        branch = torch.arange(branches * batch, device=cond.history.device)
        return denoiser.encode(cond.repeat(branches), drop_audio=branch < batch, drop_speaker_exp=branch < 2 * batch,
                               drop_attitude=branch >= 3 * batch)

    @torch.no_grad()
    def sample(self, denoiser: ListenerDenoiser, cond: Conditioning, *, steps: int = 15, eta: float = 0.0,
               guidance_audio: float = 1.0, guidance_speaker_exp: float = 1.0, guidance_attitude: float = 1.0,
               noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """DDIM from ``noise [B,W,56]`` (drawn from ``generator`` if None) -> clean window ``[B,W,56]``."""
        batch, device = cond.batch_size, cond.history.device
        window = denoiser.cfg.window_frames
        if self.objective == "regression":
            timestep = torch.zeros(batch, dtype=torch.long, device=device)
            zeros = torch.zeros(batch, window, cond.history.shape[-1], device=device)
            return self.predict_x0(denoiser, zeros, timestep, cond)
        if noise is None:
            noise = torch.randn((batch, window, cond.history.shape[-1]), generator=generator, device=device)
        encoded = self.encode_for_sampling(
            denoiser, cond, self.guidance_branches(guidance_audio, guidance_speaker_exp, guidance_attitude))
        x = noise
        timesteps = self.sampling_timesteps(steps)
        for index, timestep in enumerate(timesteps):
            x0 = self.guided_x0(denoiser, x, timestep, encoded, guidance_audio, guidance_speaker_exp, guidance_attitude)
            alpha_bar = self.alpha_bar[timestep]
            last = index + 1 == len(timesteps)
            alpha_bar_prev = torch.ones_like(alpha_bar) if last else self.alpha_bar[timesteps[index + 1]]
            eps = (x - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()
            sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)).sqrt()
            x = alpha_bar_prev.sqrt() * x0 + (1 - alpha_bar_prev - sigma ** 2).clamp(min=0).sqrt() * eps
            if eta > 0 and not last:
                x = x + sigma * torch.randn(x.shape, generator=generator, device=device)
        return x


def build_denoiser_and_diffusion(cfg) -> tuple[ListenerDenoiser, ListenerDiffusion]:
    """The two modules a :class:`~brain.config.BrainConfig` describes (on CPU; move them with ``.to``)."""
    return ListenerDenoiser(cfg.model), ListenerDiffusion(cfg.diffusion, cfg.model.objective)
