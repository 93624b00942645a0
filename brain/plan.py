"""The slow plan: a small latent per window that the sampler draws and training infers (``model.plan_dim``).

Why: a listener's slow course (a smile held for seconds, brows that stay raised) outlasts the 0.64-s window,
so a rollout strings it together from many short windows, each continuing its history — and each reverting
a little towards the speaker-driven average, which narrows how differently two samples of one clip move
over seconds (docs/RESULTS.md: the slow band). The plan is a state the samples *choose*: a Gaussian latent
``z [B,Z]`` per window, which the denoiser reads through its adaLN modulation (added to the reaction
embedding, brain/denoiser.py), chained from window to window by a learned prior:

    prior      p(z_t | z_{t-1}, the window's condition)          at sampling: z_t = μ + σ·ε, ε ~ N(0, I)
    posterior  q(z_t | the listener's next P frames)             training only (P = model.plan_frames)

Training (a conditional VAE around the diffusion loss, as CVAE motion models do): each window gets
``z_t ~ q(z_t | frames [s, s+P))`` and pays ``plan_kl_weight · KL(q_t || p_t)`` in nats, where the prior sees
``z_{t-1} ~ q(z_{t-1} | frames [s-C, s-C+P))`` — the previous window's plan — so it learns how plans persist
and change from chunk to chunk. The posterior sees the span as ``P / C`` segment means of ``C`` frames
(``C`` = ``model.chunk_frames``), so a plan holds the course, not the frame-level detail the diffusion draws.
A stream keeps its last plan (brain/policy.py); its first window's prior has no previous plan (a flag).

The prior reads what the denoiser reads, summarised (:meth:`PlanModel.prior_features`): the history's last
chunk, the speaker's expression and audio over the chunk and over the context before it (segment means), the
long memories when the model has them, and the attitude. Without the speaker, a first CPU probe's prior drew
courses that ignored it: the samples spread on the slow band (0.23 → 0.84 of the oracle's) but their shared
slow bias rose (1.97 → 2.65 V) with them (docs/RESULTS.md).
"""
from __future__ import annotations

import torch
from torch import nn

from brain.conditions import NO_ATTITUDE
from brain.config import ModelConfig
from utils.config import ConfigError
from utils.flame import AUDIO_DIM, FLAME_DIM, SPEAKER_EXP_DIM

LOG_VARIANCE_RANGE = (-8.0, 4.0)  # keeps exp(log σ²) finite in bf16 and the KL bounded early in training


def gaussian_kl(mean_q: torch.Tensor, log_var_q: torch.Tensor, mean_p: torch.Tensor,
                log_var_p: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean_q, e^log_var_q) || N(mean_p, e^log_var_p))`` summed over the last dim: ``[B,Z] -> [B]``."""
    return 0.5 * (log_var_p - log_var_q + (log_var_q.exp() + (mean_q - mean_p) ** 2) / log_var_p.exp() - 1).sum(-1)


def segment_means(frames: torch.Tensor, valid: torch.Tensor, segment: int) -> torch.Tensor:
    """``frames [B,L,D]``, ``valid [B,L]`` bool -> ``[B, L/segment * (D+1)]``: each segment's mean over its
    valid frames (0 where it has none) and the share of its frames that are valid."""
    batch, length, dim = frames.shape
    weight = valid.to(frames.dtype).view(batch, length // segment, segment, 1)
    total = (frames.view(batch, length // segment, segment, dim) * weight).sum(2)
    count = weight.sum(2)  # [B,L/segment,1]
    means = total / count.clamp(min=1)
    return torch.cat([means, count / segment], dim=-1).flatten(1)


class PlanModel(nn.Module):
    """Posterior, prior and embedding of the plan latent (module docstring); part of the denoiser's weights."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.objective != "diffusion":
            raise ConfigError("model.plan_dim needs model.objective diffusion: a plan is drawn, regression draws nothing")
        if cfg.plan_frames <= 0 or cfg.plan_frames % cfg.chunk_frames:
            raise ConfigError(f"model.plan_frames ({cfg.plan_frames}) must be a positive multiple of "
                              f"model.chunk_frames ({cfg.chunk_frames})")
        self.dim, self.frames, self.segment = cfg.plan_dim, cfg.plan_frames, cfg.chunk_frames
        self.attitudes, self.memory_length = len(cfg.attitudes), len(cfg.memory_seconds)
        width, span_features = cfg.width, cfg.plan_frames // cfg.chunk_frames * (FLAME_DIM + 1)
        self.posterior_net = nn.Sequential(nn.Linear(span_features, width), nn.SiLU(), nn.Linear(width, width),
                                           nn.SiLU(), nn.Linear(width, 2 * self.dim))
        self.audio_norm = nn.LayerNorm(AUDIO_DIM)
        condition_features = (FLAME_DIM + 1 + 2 * (SPEAKER_EXP_DIM + 1) + 2 * (AUDIO_DIM + 1)
                              + self.memory_length * (FLAME_DIM + SPEAKER_EXP_DIM + 1) + self.attitudes + 1)
        # previous plan, "has a previous plan", the condition's summary
        self.prior_net = nn.Sequential(nn.Linear(self.dim + 1 + condition_features, width), nn.SiLU(),
                                       nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2 * self.dim))
        nn.init.zeros_(self.prior_net[-1].weight)  # the prior starts as N(0, I)
        nn.init.zeros_(self.prior_net[-1].bias)
        self.embed = nn.Linear(self.dim, width)

    @staticmethod
    def _split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = params.float().chunk(2, dim=-1)
        return mean, log_var.clamp(*LOG_VARIANCE_RANGE)

    def posterior(self, span: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``span [B,P,56]`` listener frames from the window start, ``valid [B,P]`` -> mean, log σ² ``[B,Z]``."""
        return self._split(self.posterior_net(segment_means(span, valid, self.segment)))

    def prior_features(self, cond) -> torch.Tensor:
        """``[B,F]``: the window's :class:`~brain.denoiser.Conditioning` as the prior reads it (module docstring)."""
        chunk, batch = self.segment, cond.batch_size
        context = cond.speaker_exp.shape[1] - chunk  # S speaker frames before the window
        valid = cond.speaker_valid
        audio = self.audio_norm(cond.speaker_audio)
        parts = [segment_means(cond.history[:, -chunk:], cond.history_valid[:, -chunk:], chunk)]
        for frames in (cond.speaker_exp, audio):
            parts += [segment_means(frames[:, :context], valid[:, :context], context),
                      segment_means(frames[:, context:], valid[:, context:], chunk)]
        if self.memory_length:
            parts += [cond.listener_memory.flatten(1), cond.speaker_memory.flatten(1), cond.memory_coverage]
        attitude = torch.full((batch,), NO_ATTITUDE, device=valid.device) if cond.attitude is None else cond.attitude
        parts.append(nn.functional.one_hot(torch.where(attitude == NO_ATTITUDE, self.attitudes, attitude),
                                           self.attitudes + 1).float())
        return torch.cat([part.float() for part in parts], dim=-1)

    def prior(self, previous: torch.Tensor, has_previous: torch.Tensor, cond) -> tuple[torch.Tensor, torch.Tensor]:
        """``previous [B,Z]`` (the last window's plan; ignored where ``has_previous [B]`` is False) and the
        window's Conditioning -> mean, log σ² ``[B,Z]``."""
        has_previous = has_previous.to(previous.dtype)[:, None]
        features = [previous * has_previous, has_previous, self.prior_features(cond)]
        return self._split(self.prior_net(torch.cat(features, dim=-1)))

    def draw(self, previous: torch.Tensor, has_previous: torch.Tensor, cond, noise: torch.Tensor) -> torch.Tensor:
        """A plan ``[B,Z]`` from the prior, ``noise [B,Z]`` unit normal (sampling time)."""
        mean, log_var = self.prior(previous, has_previous, cond)
        return mean + (0.5 * log_var).exp() * noise

    def infer(self, cond, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: from ``cond.plan_span [B,C+P,56]`` (listener frames ``[s-C, s+P)``) and ``plan_span_valid``,
        the window's plan drawn from its posterior ``[B,Z]`` and ``KL(q_t || p_t)`` ``[B]`` (nats; the prior
        given the previous window's plan drawn from its own posterior, absent where ``s-C`` precedes the clip)."""
        span, span_valid, chunk = cond.plan_span, cond.plan_span_valid, self.segment
        mean_prev, log_var_prev = self.posterior(span[:, :self.frames], span_valid[:, :self.frames])
        mean, log_var = self.posterior(span[:, chunk:], span_valid[:, chunk:])
        noise = torch.randn((2, *mean.shape), generator=generator, device=span.device)
        previous = mean_prev + (0.5 * log_var_prev).exp() * noise[0]
        prior_mean, prior_log_var = self.prior(previous, span_valid[:, 0], cond)
        plan = mean + (0.5 * log_var).exp() * noise[1]
        return plan, gaussian_kl(mean, log_var, prior_mean, prior_log_var)

    def posterior_mean(self, span: torch.Tensor, span_valid: torch.Tensor) -> torch.Tensor:
        """The window's posterior mean ``[B,Z]`` from its training span ``[B,C+P,56]`` (own-history sampling)."""
        return self.posterior(span[:, self.segment:], span_valid[:, self.segment:])[0]


def plan_model(module: nn.Module) -> PlanModel | None:
    """The :class:`PlanModel` of a denoiser, through DDP's ``.module`` and ``torch.compile``'s ``._orig_mod``
    wrappers; None for a denoiser without a plan."""
    while True:
        inner = getattr(module, "module", None) or getattr(module, "_orig_mod", None)
        if inner is None:
            return getattr(module, "plan", None)
        module = inner
