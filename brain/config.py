"""The brain's typed config: one dataclass tree shared by training, the checkpoint and the policy.

A checkpoint stores ``config_to_dict(cfg)``; :class:`brain.policy.ListenerPolicy` rebuilds the same model
from it, so ``configs/*.yaml`` and ``key=value`` overrides (``model.width=64``) are the only knobs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelConfig:
    objective: Literal["diffusion", "regression"] = "diffusion"  # regression: same net, L2, no noise
    width: int = 256
    layers: int = 6
    heads: int = 8
    ff_mult: int = 4
    dropout: float = 0.1
    history_frames: int = 25  # clean listener frames the window is conditioned on
    # Speaker frames before the window start the denoiser sees (0: history_frames). Longer than the listener's
    # history, it lets slow speaker-driven state (rapport, whether a pause ends a long turn) be read off the real
    # speaker at every window instead of carried through the model's own output, where it drifts.
    speaker_context_frames: int = 0
    window_frames: int = 16  # frames denoised per step; the first chunk_frames are emitted
    chunk_frames: int = 8  # frames emitted per streaming step; the speaker is seen up to the chunk's end
    # Reaction controls (brain/conditions.py). A labelled corpus is conditioned on when use_attitude_labels;
    # training then records the corpus's names in ``attitudes`` (leave it empty in presets).
    use_attitude_labels: bool = True
    attitudes: list[str] = field(default_factory=list)
    intensity_frames: int = 0  # span of the motion-energy condition centred on each window; 0: no intensity input
    # Long memory (brain/memory.py): time constants (seconds) of causal moving averages of the listener's own and
    # the speaker's expression over the whole clip before each window, one token each; []: none (1 s of context).
    memory_seconds: list[float] = field(default_factory=list)

    @property
    def speaker_history_frames(self) -> int:
        """Speaker frames seen before the window start: the speaker tokens span ``[s - this, s + chunk)``."""
        return self.speaker_context_frames or self.history_frames


@dataclass
class DiffusionConfig:
    # Noise levels σ in normalised listener units (EDM's formulation, see brain/diffusion.py).
    sigma_data: float = 1.0  # the data's std: the listener is z-scored per dimension
    sigma_min: float = 0.005  # the sampler's least and largest noise levels
    sigma_max: float = 10.0
    rho: float = 7.0  # Karras spacing of the sampling noise levels (larger: more steps at small σ)
    p_mean: float = -1.2  # training noise levels: ln σ ~ N(p_mean, p_std²)
    p_std: float = 1.6
    # Loss weight per noise level: "edm" = 1 / c_out² (a unit-weighted loss on the network's output F,
    # EDM's choice); "x0" = 1 (plain x0 L2, as MDM-style motion models train).
    loss_weighting: Literal["edm", "x0"] = "edm"
    velocity_weight: float = 1.0
    acceleration_weight: float = 0.1
    # Classifier-free guidance dropout (per sample; audio / exp / both are exclusive, history independent).
    drop_audio: float = 0.1
    drop_speaker_exp: float = 0.1
    drop_both: float = 0.1
    drop_history: float = 0.1
    drop_attitude: float = 0.1  # independent of the others; only matters when the model has attitudes
    # Training-only noise on the clean history, std ~ U(0, history_noise) per window (normalised units): the
    # model learns not to copy its own past errors forward, against drift in long autoregressive rollouts.
    history_noise: float = 0.0
    # Scheduled sampling against drift: for this share of the training windows the last chunk of the history
    # is the EMA model's own sample of it (the window ``chunk_frames`` earlier, sampled in ``own_history_steps``
    # network evaluations from its true history), so the model learns to continue from output like its own.
    own_history: float = 0.0
    own_history_steps: int = 4
    # Own histories are made every ``own_history_every`` steps, for ``min(1, own_history * every)`` of that
    # step's windows: the same share of all windows, but the sampling (small batches, bound by launch latency)
    # runs k times less often at k times the batch, so it costs about k times less.
    own_history_every: int = 1
    # A window continued from its own history has its target eased from the own last frame back to the truth
    # over this many frames (linearly; 0: the true target, which jumps where the own history ends), so the
    # model learns to correct a drifted history smoothly instead of jumping at its first frame.
    own_history_ease_frames: int = 0


@dataclass
class SampleConfig:
    """Defaults the policy uses when a caller passes ``None``."""
    steps: int = 15  # network evaluations per window
    sampler: Literal["dpmpp_2m", "ddim"] = "dpmpp_2m"
    eta: float = 0.0  # ddim only: share of each step's noise drawn afresh
    guidance_audio: float = 1.0  # 1.0 = plain conditional sampling
    guidance_speaker_exp: float = 1.0
    guidance_attitude: float = 1.0  # 1: plain; > 1 exaggerates the requested attitude (one more branch)
    guidance_history: float = 1.0  # 1: plain; > 1 follows the listener's own past more (one more branch)


@dataclass
class TrainConfig:
    batch_size: int = 256  # per process
    lr: float = 4e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    max_steps: int = 20000
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    window_stride: int = 2  # frames between window starts in the training index
    val_every: int = 1000
    val_windows: int = 512
    log_every: int = 50
    checkpoint_every: int = 2000
    # Every this many steps also keep checkpoint_<step>.pth, a slim copy (EMA weights, what sampling and
    # brain.evaluate load): the checkpoints of a learning curve, since checkpoint.pth is overwritten. 0: none.
    keep_every: int = 0
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU


@dataclass
class BrainConfig:
    data: str = ""  # corpus folder (DESIGN.md §3.1); set by --data
    out: str = ""  # run folder; set by --out
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
