"""The denoiser: a 1D transformer that predicts a clean listener window from a noisy one.

Tokens, on one time axis relative to the window start ``s`` (``H`` history, ``W`` window, ``C`` chunk,
``S`` = ``model.speaker_history_frames`` speaker frames before the window, ``H`` unless set longer):

    listener tokens  [s-H .. s-1 | s .. s+W-1]   clean history (or a learned null) | noisy window
    speaker tokens   [s-S .. s+C-1]               LayerNorm(audio)→Linear + exp→Linear, summed per frame

Each block: AdaLN-modulated self-attention over the listener tokens, cross-attention to the speaker
tokens, AdaLN-modulated MLP; the noise level (ln σ) drives the modulation (DiT's adaLN-zero). The
cross-attention mask lets a listener token at time ``t`` see speaker frames ``<= min(t, s+C-1)`` only, so
emitting the chunk ``[s, s+C)`` never needs speaker frames past it: that is what makes streaming causal.
A learned always-visible "sink" speaker token keeps rows whose speaker frames are all missing (the start
of a clip) well defined.

``forward`` = ``denoise(noisy, t, encode(cond))``: the speaker stream, the history tokens and the masks
(``encode``) do not depend on the noisy window or the noise level, so sampling encodes them once per window
and runs only ``denoise`` per DDIM step.

Long memory (brain/memory.py), when ``model.memory_seconds`` is set: per time constant, one token for the
moving average of the listener's own past and one for the speaker's expression's, each blended with a learned
null by its coverage and tagged with a learned embedding per source and time constant. They join the listener
tokens in front (``[memory | history | window]``), take part in self-attention, and see only the sink in
cross-attention (the speaker's past is already in the speaker memory tokens).

Reaction controls (brain/conditions.py), when the model has them: the attitude (a learned embedding per
``model.attitudes`` name, or a null one) and the intensity (an MLP of the scalar ``log2(energy/typical)``)
are summed into the noise-level embedding, so like the noise level they drive every block's adaLN modulation
(DiT's class conditioning). They are encoded once per window with the rest of the condition.

Classifier-free guidance drops the audio, the expression, the history and/or the attitude per sample by
swapping in learned null embeddings (``torch.where``, no branches: the same graph serves every guidance
branch). Dropping the history drops the listener memory with it, dropping the expression the speaker memory:
"without the listener's past" means all of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from brain.conditions import NO_ATTITUDE
from brain.config import ModelConfig
from utils.config import ConfigError
from utils.flame import AUDIO_DIM, FLAME_DIM, SPEAKER_EXP_DIM

# The intensity input log2(energy / typical) spans about ±1 in the data; scaled by this, the noise level's sinusoidal
# embedding (as SDXL embeds its size micro-conditioning) tells intensities 5 % apart.
INTENSITY_EMBEDDING_SCALE = 25.0


@dataclass
class Conditioning:
    """What a window is generated from; all tensors share the batch size ``B`` and device."""
    history: torch.Tensor  # [B,H,56] normalised clean listener frames (any value where invalid)
    history_valid: torch.Tensor  # [B,H] bool: False before the clip starts
    speaker_audio: torch.Tensor  # [B,S+C,768] wav2vec2 features, raw
    speaker_exp: torch.Tensor  # [B,S+C,50] normalised speaker expression
    speaker_valid: torch.Tensor  # [B,S+C] bool: False before the clip starts / past the last frame
    attitude: torch.Tensor | None = None  # [B] long index into model.attitudes, NO_ATTITUDE = none
    intensity: torch.Tensor | None = None  # [B] float log2(motion energy / typical); None: 0, the typical
    listener_memory: torch.Tensor | None = None  # [B,M,56] moving averages of the normalised listener (memory.py)
    speaker_memory: torch.Tensor | None = None  # [B,M,50] the same of the normalised speaker expression
    memory_coverage: torch.Tensor | None = None  # [B,M] float in [0,1): 1 - a^(frames since the clip start)

    def repeat(self, copies: int) -> "Conditioning":
        """Stack ``copies`` of the batch: ``[B,...] -> [copies*B,...]`` (guidance branches)."""
        return self.map(lambda value: value.repeat(copies, *([1] * (value.dim() - 1))))

    @staticmethod
    def cat(parts: list["Conditioning"]) -> "Conditioning":
        """The batches of ``parts`` one after another: ``[B1,...] + [B2,...] -> [B1+B2,...]``; the optional
        tensors must be present in all parts or in none."""
        fields = list(zip(*(part.fields() for part in parts)))
        if any((value is None) != (values[0] is None) for values in fields for value in values):
            raise ValueError("Conditioning.cat: an optional condition is present in some parts and not in others")
        return Conditioning(*(None if values[0] is None else torch.cat(values) for values in fields))

    def map(self, function) -> "Conditioning":
        """A Conditioning with ``function`` applied to every tensor (the optional ones only where present)."""
        return Conditioning(*(None if value is None else function(value) for value in self.fields()))

    def fields(self) -> tuple[torch.Tensor | None, ...]:
        return (self.history, self.history_valid, self.speaker_audio, self.speaker_exp, self.speaker_valid,
                self.attitude, self.intensity, self.listener_memory, self.speaker_memory, self.memory_coverage)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The tensors that are present, in field order."""
        return tuple(value for value in self.fields() if value is not None)

    @property
    def batch_size(self) -> int:
        return self.history.shape[0]


@dataclass
class EncodedCondition:
    """:meth:`ListenerDenoiser.encode` output: everything that stays fixed across a window's DDIM steps."""
    history_tokens: torch.Tensor  # [B,H,D] embedded history (null where invalid or dropped), with type embedding
    speaker: torch.Tensor  # [B,1+S,D] sink token + speaker tokens
    cross_mask: torch.Tensor  # [B,1,L+H+W,1+S] bool, True = may attend (L memory tokens, 0 without memory)
    reaction: torch.Tensor | None = None  # [B,D] attitude + intensity embedding, added to the noise level's
    memory_tokens: torch.Tensor | None = None  # [B,L,D] long-memory tokens (L = 2 x len(memory_seconds))


def noise_level_embedding(noise_level: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the noise level ``ln σ``: ``[B] -> [B,dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=noise_level.device, dtype=torch.float32) / half)
    angles = noise_level.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x [B,L,D]`` shifted and scaled per sample by ``[B,D]``."""
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B,L,D]`` attends to ``context [B,S,D]``; ``mask [B,1,L,S]`` bool, True = may attend."""
        batch, length, width = x.shape
        q = self.query(x).view(batch, length, self.heads, -1).transpose(1, 2)  # [B,h,L,d]
        k, v = self.key_value(context).view(batch, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B,h,L,d]
        return self.out(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        width = cfg.width
        self.self_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.self_attention = Attention(width, cfg.heads)
        self.cross_norm = nn.LayerNorm(width)
        self.cross_attention = Attention(width, cfg.heads)
        self.mlp_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, cfg.ff_mult * width), nn.GELU(approximate="tanh"),
                                 nn.Dropout(cfg.dropout), nn.Linear(cfg.ff_mult * width, width))
        self.dropout = nn.Dropout(cfg.dropout)
        # shift/scale/gate for self-attention and MLP, gate for cross-attention; zero init = identity block
        self.modulation = nn.Linear(width, 7 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, speaker: torch.Tensor, cross_mask: torch.Tensor,
                time: torch.Tensor) -> torch.Tensor:
        """``x [B,L,D]``, ``speaker [B,1+S,D]``, ``cross_mask [B,1,L,1+S]``, ``time [B,D]`` -> ``[B,L,D]``."""
        shift_a, scale_a, gate_a, gate_c, shift_m, scale_m, gate_m = self.modulation(time).chunk(7, dim=-1)
        h = modulate(self.self_norm(x), shift_a, scale_a)
        x = x + gate_a[:, None] * self.dropout(self.self_attention(h, h))
        x = x + gate_c[:, None] * self.dropout(self.cross_attention(self.cross_norm(x), speaker, cross_mask))
        h = modulate(self.mlp_norm(x), shift_m, scale_m)
        return x + gate_m[:, None] * self.dropout(self.mlp(h))


class ListenerDenoiser(nn.Module):
    """``(scaled noisy window [B,W,56], noise level ln σ [B], Conditioning) -> correction F [B,W,56]``
    (:class:`brain.diffusion.ListenerDiffusion` turns F into the clean window).

    All listener values are in normalised units (:class:`brain.normalizer.Normalizer`).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        width, history, window, chunk = cfg.width, cfg.history_frames, cfg.window_frames, cfg.chunk_frames
        speaker_history = cfg.speaker_history_frames
        if chunk > window:
            raise ConfigError(f"model.chunk_frames ({chunk}) cannot exceed model.window_frames ({window})")
        if width % cfg.heads:
            raise ConfigError(f"model.width ({width}) must be divisible by model.heads ({cfg.heads})")
        self.listener_in = nn.Linear(FLAME_DIM, width)
        self.null_history = nn.Parameter(torch.zeros(width))
        self.token_type = nn.Parameter(torch.zeros(2, width))  # 0: history, 1: window
        # One learned position per frame of the shared time axis [s - max(H, S), s + W); the listener tokens
        # take its last H + W, the speaker tokens its first S + C past their own start.
        self.origin = max(history, speaker_history)
        self.position = nn.Parameter(0.02 * torch.randn(self.origin + window, width))
        self.audio_norm = nn.LayerNorm(AUDIO_DIM)
        self.audio_in = nn.Linear(AUDIO_DIM, width)
        self.speaker_exp_in = nn.Linear(SPEAKER_EXP_DIM, width)
        self.null_audio = nn.Parameter(torch.zeros(width))
        self.null_speaker_exp = nn.Parameter(torch.zeros(width))
        self.speaker_sink = nn.Parameter(0.02 * torch.randn(width))
        self.speaker_mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(approximate="tanh"),
                                         nn.Linear(width, width))
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        if cfg.attitudes:
            # PyTorch's N(0, 1) init, not DiT's 0.02: with 0.02 a tiny 300-step CPU model had not yet learned
            # to use the label (it can read the attitude off the history instead); with N(0, 1) it had.
            self.attitude_embedding = nn.Embedding(len(cfg.attitudes), width)
            self.null_attitude = nn.Parameter(torch.zeros(width))
        if cfg.intensity_frames > 0:
            self.intensity_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.memory_length = len(cfg.memory_seconds)
        if self.memory_length:
            self.listener_memory_in = nn.Linear(FLAME_DIM, width)
            self.speaker_memory_in = nn.Linear(SPEAKER_EXP_DIM, width)
            self.null_memory = nn.Parameter(torch.zeros(2, width))  # 0: listener, 1: speaker
            self.memory_embedding = nn.Parameter(0.02 * torch.randn(2 * self.memory_length, width))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.out_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.out_modulation = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, FLAME_DIM)
        for layer in (self.out_modulation, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        # Frame offsets from the window start s: listener token i is at i - H, speaker token j at j - S; a
        # listener frame t may see speaker frames u <= min(t, C-1).
        listener_time = torch.arange(history + window)[:, None] - history
        speaker_time = torch.arange(speaker_history + chunk)[None, :] - speaker_history
        causal = speaker_time <= torch.clamp(listener_time, max=chunk - 1)  # [H+W, S+C]
        self.register_buffer("causal_mask", causal, persistent=False)

    def forward(self, noisy_window: torch.Tensor, noise_level: torch.Tensor, cond: Conditioning,
                drop_audio: torch.Tensor | None = None, drop_speaker_exp: torch.Tensor | None = None,
                drop_history: torch.Tensor | None = None, drop_attitude: torch.Tensor | None = None) -> torch.Tensor:
        """``noisy_window [B,W,56]``, ``noise_level [B]`` (ln σ); ``drop_* [B]`` bool (None: keep) -> ``[B,W,56]``."""
        encoded = self.encode(cond, drop_audio=drop_audio, drop_speaker_exp=drop_speaker_exp, drop_history=drop_history,
                              drop_attitude=drop_attitude)
        return self.denoise(noisy_window, noise_level, encoded)

    def encode(self, cond: Conditioning, drop_audio: torch.Tensor | None = None, drop_speaker_exp: torch.Tensor | None = None,
               drop_history: torch.Tensor | None = None, drop_attitude: torch.Tensor | None = None) -> EncodedCondition:
        """The part of the forward pass that does not depend on the noisy window or the noise level: computed
        once per window and reused by every DDIM step."""
        cfg = self.cfg
        batch = cond.batch_size
        speaker_frames = cfg.speaker_history_frames + cfg.chunk_frames
        expected = {"history": (cond.history, (batch, cfg.history_frames, FLAME_DIM)),
                    "speaker_audio": (cond.speaker_audio, (batch, speaker_frames, AUDIO_DIM)),
                    "speaker_exp": (cond.speaker_exp, (batch, speaker_frames, SPEAKER_EXP_DIM))}
        for name, (value, shape) in expected.items():
            if tuple(value.shape) != shape:
                raise ValueError(f"denoiser input {name}: expected shape {list(shape)}, got {list(value.shape)}")
        # Every null embedding takes part in every forward (an all-False mask when not dropping), so DDP
        # never sees an unused parameter and one captured graph serves all guidance branches.
        keep = torch.zeros(batch, dtype=torch.bool, device=cond.history.device)
        drop_audio = keep if drop_audio is None else drop_audio
        drop_speaker_exp = keep if drop_speaker_exp is None else drop_speaker_exp
        drop_history = keep if drop_history is None else drop_history
        history_valid = cond.history_valid & ~drop_history[:, None]
        history_tokens = torch.where(history_valid[..., None], self.listener_in(cond.history), self.null_history)

        audio = self.audio_in(self.audio_norm(cond.speaker_audio))  # [B,S+C,D]
        exp = self.speaker_exp_in(cond.speaker_exp)  # [B,S+C,D]
        audio = torch.where(drop_audio[:, None, None], self.null_audio, audio)
        exp = torch.where(drop_speaker_exp[:, None, None], self.null_speaker_exp, exp)
        speaker_start = self.origin - cfg.speaker_history_frames
        speaker = audio + exp + self.position[speaker_start:speaker_start + speaker_frames]
        speaker = speaker + self.speaker_mlp(speaker)
        speaker = torch.cat([self.speaker_sink.expand(batch, 1, -1), speaker], dim=1)  # [B,1+S+C,D]
        visible = self.causal_mask[None] & cond.speaker_valid[:, None, :]  # [B,H+W,S+C]
        sink = torch.ones_like(visible[..., :1])
        cross_mask = torch.cat([sink, visible], dim=-1)[:, None]  # [B,1,H+W,1+S+C]
        reaction = self.encode_reaction(cond, keep if drop_attitude is None else drop_attitude)
        memory = None
        if self.memory_length:
            memory = self.encode_memory(cond, drop_history, drop_speaker_exp)
            memory_rows = torch.zeros_like(cross_mask[:, :, :self.memory_length * 2])  # [B,1,L,1+S+C]: ...
            memory_rows[..., 0] = True  # ... the sink only
            cross_mask = torch.cat([memory_rows, cross_mask], dim=2)
        return EncodedCondition(history_tokens + self.token_type[0], speaker, cross_mask, reaction, memory)

    def encode_memory(self, cond: Conditioning, drop_history: torch.Tensor,
                      drop_speaker_exp: torch.Tensor) -> torch.Tensor:
        """``[B,2M,D]``: the listener memory tokens then the speaker's, each ``coverage · Linear(average) +
        (1 − coverage) · null`` (the null alone where its source is dropped) plus its embedding."""
        batch, length = cond.batch_size, self.memory_length
        expected = {"listener_memory": (cond.listener_memory, (batch, length, FLAME_DIM)),
                    "speaker_memory": (cond.speaker_memory, (batch, length, SPEAKER_EXP_DIM)),
                    "memory_coverage": (cond.memory_coverage, (batch, length))}
        for name, (value, shape) in expected.items():
            if value is None or tuple(value.shape) != shape:
                raise ValueError(f"denoiser input {name}: expected shape {list(shape)} (model.memory_seconds is "
                                 f"set), got {None if value is None else list(value.shape)}")
        coverage = cond.memory_coverage[..., None]  # [B,M,1]
        tokens = []
        for source, (average, project, dropped) in enumerate(
                ((cond.listener_memory, self.listener_memory_in, drop_history),
                 (cond.speaker_memory, self.speaker_memory_in, drop_speaker_exp))):
            null = self.null_memory[source]
            token = coverage * project(average) + (1 - coverage) * null  # [B,M,D]
            tokens.append(torch.where(dropped[:, None, None], null, token))
        return torch.cat(tokens, dim=1) + self.memory_embedding

    def encode_reaction(self, cond: Conditioning, drop_attitude: torch.Tensor) -> torch.Tensor | None:
        """``[B,D]`` attitude (null where ``NO_ATTITUDE``, absent or dropped) + intensity embedding; None for a
        model with neither."""
        cfg, batch, device = self.cfg, cond.batch_size, cond.history.device
        reaction = None
        if cfg.attitudes:
            attitude = cond.attitude if cond.attitude is not None else torch.full((batch,), NO_ATTITUDE, device=device)
            known = (attitude != NO_ATTITUDE) & ~drop_attitude
            reaction = torch.where(known[:, None], self.attitude_embedding(attitude.clamp(min=0)), self.null_attitude)
        if cfg.intensity_frames > 0:
            intensity = cond.intensity if cond.intensity is not None else torch.zeros(batch, device=device)
            embedded = self.intensity_mlp(noise_level_embedding(INTENSITY_EMBEDDING_SCALE * intensity, cfg.width))
            reaction = embedded if reaction is None else reaction + embedded
        return reaction

    def denoise(self, noisy_window: torch.Tensor, noise_level: torch.Tensor, encoded: EncodedCondition) -> torch.Tensor:
        """``noisy_window [B,W,56]``, ``noise_level [B]`` (ln σ) and an :meth:`encode` result -> ``[B,W,56]``."""
        cfg = self.cfg
        batch = encoded.speaker.shape[0]
        if tuple(noisy_window.shape) != (batch, cfg.window_frames, FLAME_DIM):
            raise ValueError(f"denoiser input noisy_window: expected shape {[batch, cfg.window_frames, FLAME_DIM]}, "
                             f"got {list(noisy_window.shape)}")
        window_tokens = self.listener_in(noisy_window) + self.token_type[1]
        x = torch.cat([encoded.history_tokens, window_tokens], dim=1)
        x = x + self.position[self.origin - cfg.history_frames:]  # [B,H+W,D]
        lead = 0
        if encoded.memory_tokens is not None:
            x = torch.cat([encoded.memory_tokens, x], dim=1)  # [B,L+H+W,D]
            lead = encoded.memory_tokens.shape[1]
        time = self.time_mlp(noise_level_embedding(noise_level, cfg.width))  # [B,D]
        time = F.silu(time if encoded.reaction is None else time + encoded.reaction)
        for block in self.blocks:
            x = block(x, encoded.speaker, encoded.cross_mask, time)
        shift, scale = self.out_modulation(time).chunk(2, dim=-1)
        x = modulate(self.out_norm(x[:, lead + cfg.history_frames:]), shift, scale)
        return self.out(x)  # [B,W,56]
