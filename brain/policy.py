"""The listener policy: speaker features in, listener FLAME motion out, offline or streamed.

    policy = ListenerPolicy.from_checkpoint("output/brain/checkpoint.pth", device="cpu")
    motion = policy.generate(speaker_audio, speaker_exp, num_samples=3, seed=0)   # [T,768], [T,50] -> [3,T,56]

    stream = policy.stream(num_samples=1, seed=0)
    out = stream.push(audio_chunk, exp_chunk)    # [n,768], [n,50] -> [K,m,56], m a multiple of 8
    rest = stream.flush()                         # the last < 8 frames

    policy.attitudes                              # e.g. ["positive", "neutral", "negative"]; [] if trained unlabelled
    motion = policy.generate(speaker_audio, speaker_exp, attitude="positive", intensity=1.5)

``attitude`` None samples without one (the model's null attitude); ``intensity`` is the motion energy asked
for relative to the training data's typical for that attitude (1, the default; brain/conditions.py).

Both run the same loop: every ``chunk_frames`` (8) speaker frames, the window starting at the next frame
to emit is denoised, conditioned on the last ``history_frames`` emitted frames and on the speaker up to the
end of that chunk (and, with ``model.memory_seconds``, on the running averages of everything emitted and
heard before it: brain/memory.py); its first 8 frames are emitted. ``generate`` is ``push(everything)`` +
``flush()``, so the offline and streamed outputs of one seed are the same numbers, and no output frame ever
depends on a speaker frame after the chunk it was emitted in.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from brain.conditions import NO_ATTITUDE, attitude_index, intensity_condition
from brain.config import BrainConfig
from brain.data import check_speaker_inputs
from brain.denoiser import Conditioning, ListenerDenoiser
from brain.diffusion import ListenerDiffusion, build_denoiser_and_diffusion
from brain.memory import MemoryState
from brain.normalizer import Normalizer
from utils.checkpoint import load_checkpoint
from utils.config import config_from_dict
from utils.flame import AUDIO_DIM, FLAME_DIM, FPS, SPEAKER_EXP_DIM
from utils.errors import UsageError

MAX_BATCH_WINDOWS = 512  # generate_many's default batch: windows (clips x samples) denoised together


def fast_sampling_options(device: str | torch.device, *, live: bool = False) -> dict:
    """The sampling settings for speed on ``device``: on CUDA, bf16 autocast and each window's DDIM loop
    replayed as a CUDA graph (see docs/BENCHMARKS.md for what each buys); on CPU, plain fp32.

    ``live=True`` (a session on the real clock) also compiles the denoiser on CUDA: the chunk drops from
    ~15 to ~10 ms, which the live latency budget needs, and the compilation (tens of seconds) is paid once
    before the first chunk. Offline runs would pay it per file for less than it saves, so they skip it."""
    if torch.device(device).type == "cuda":
        return {"precision": "bf16", "cuda_graphs": True, "compile": live}
    return {"precision": "fp32", "cuda_graphs": False, "compile": False}


class ListenerPolicy:
    """A trained brain (EMA weights) ready to sample; see the module docstring."""

    fps = FPS

    def __init__(self, denoiser: ListenerDenoiser, diffusion: ListenerDiffusion, normalizer: Normalizer,
                 cfg: BrainConfig, device: str | torch.device = "cpu", *, precision: str = "fp32",
                 cuda_graphs: bool = False, compile: bool = False, training_step: int | None = None):
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.device = torch.device(device)
        self.precision = precision
        # CUDA graphs replay a captured sampling loop per (num_samples, options); every random number it uses
        # (the start noise, and with eta > 0 each step's) is drawn outside and copied in.
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict = {}
        self.denoiser = denoiser.to(self.device).eval()
        if compile:
            # Only the per-DDIM-step part is compiled: fusing its small element-wise and norm ops cuts the
            # kernel count, which is what bounds a graphed 15-step loop at this model size. The first call
            # pays the compilation (tens of seconds); later calls (and graph captures) reuse it.
            self.denoiser.denoise = torch.compile(self.denoiser.denoise, dynamic=False)
        self.diffusion = diffusion.to(self.device)
        self.normalizer = normalizer.to(self.device)
        self.cfg = cfg
        self.chunk_frames = cfg.model.chunk_frames
        self.history_frames = cfg.model.history_frames
        self.speaker_history_frames = cfg.model.speaker_history_frames
        # The optimiser step the weights are from (None when built in memory): evaluations record it, since
        # two checkpoints compared at one wall-clock budget can differ by thousands of steps (docs/RESULTS.md).
        self.training_step = training_step

    @property
    def attitudes(self) -> list[str]:
        """The attitude names the model was trained on (``[]`` for a checkpoint trained without labels)."""
        return list(self.cfg.model.attitudes)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu", *, use_ema: bool = True,
                        precision: str = "fp32", cuda_graphs: bool = False,
                        compile: bool = False) -> "ListenerPolicy":
        """Rebuild the policy from a brain checkpoint alone; a body checkpoint raises ``CheckpointError``.

        ``precision="bf16"`` samples under bf16 autocast; ``cuda_graphs=True`` (CUDA only) replays each
        streaming step's whole DDIM loop as one captured graph; ``compile=True`` compiles the per-step
        denoiser with ``torch.compile`` — see ``benchmarks/bench_brain.py`` for what each buys.
        """
        payload = load_checkpoint(path, kind="brain")
        cfg = config_from_dict(BrainConfig, payload["config"])
        denoiser, diffusion = build_denoiser_and_diffusion(cfg)
        denoiser.load_state_dict(payload["ema"] if use_ema and "ema" in payload else payload["model"])
        return cls(denoiser, diffusion, Normalizer.from_state_dict(payload["normalizer"]), cfg, device,
                   precision=precision, cuda_graphs=cuda_graphs, compile=compile,
                   training_step=int(payload["step"]) if "step" in payload else None)

    def _sampling_options(self, *, steps=None, eta=None, guidance_audio=None, guidance_speaker_exp=None, sampler=None,
                          guidance_attitude=None, guidance_history=None) -> dict:
        """The options a stream samples with: each one given, else the checkpoint's ``sample`` default."""
        defaults = self.cfg.sample

        def pick(value, default, kind):
            return default if value is None else kind(value)

        return {"steps": pick(steps, defaults.steps, int), "sampler": pick(sampler, defaults.sampler, str),
                "eta": pick(eta, defaults.eta, float),
                "guidance_audio": pick(guidance_audio, defaults.guidance_audio, float),
                "guidance_speaker_exp": pick(guidance_speaker_exp, defaults.guidance_speaker_exp, float),
                "guidance_attitude": pick(guidance_attitude, defaults.guidance_attitude, float),
                "guidance_history": pick(guidance_history, defaults.guidance_history, float)}

    def reaction(self, attitude: str | None, intensity: float | None) -> tuple[int, float | None]:
        """``(attitude index, intensity input)`` for the denoiser; UsageError naming the valid attitudes, or
        for an intensity asked of a model trained without one."""
        index = attitude_index(self.attitudes, attitude)
        if self.cfg.model.intensity_frames == 0:
            if intensity is not None:
                raise UsageError("intensity asked of a model trained without an intensity condition "
                                 "(model.intensity_frames=0)")
            return index, None
        return index, intensity_condition(intensity)

    def stream(self, num_samples: int = 1, seed: int = 0, steps: int | None = None, eta: float | None = None,
               guidance_audio: float | None = None, guidance_speaker_exp: float | None = None,
               sampler: str | None = None, *, attitude: str | None = None, intensity: float | None = None,
               guidance_attitude: float | None = None, guidance_history: float | None = None) -> "ListenerStream":
        """A streaming session producing ``num_samples`` listeners; seeded, so it can be replayed.
        ``None`` options take the checkpoint's ``sample`` defaults; ``attitude``/``intensity``: see the module
        docstring."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        options = self._sampling_options(steps=steps, eta=eta, guidance_audio=guidance_audio,
                                         guidance_speaker_exp=guidance_speaker_exp, sampler=sampler,
                                         guidance_attitude=guidance_attitude, guidance_history=guidance_history)
        self.diffusion.check_sampling_options(options["steps"], options["sampler"], options["eta"])  # before any input
        attitude, intensity = self.reaction(attitude, intensity)
        if attitude == NO_ATTITUDE:
            options["guidance_attitude"] = 1.0  # nothing to guide towards: spare the attitude branch
        return ListenerStream(self, num_samples, seed, options, attitude, intensity)

    def generate(self, speaker_audio: np.ndarray, speaker_exp: np.ndarray, num_samples: int = 1, seed: int = 0,
                 steps: int | None = None, eta: float | None = None, guidance_audio: float | None = None,
                 guidance_speaker_exp: float | None = None, sampler: str | None = None, *,
                 attitude: str | None = None, intensity: float | None = None,
                 guidance_attitude: float | None = None, guidance_history: float | None = None) -> np.ndarray:
        """Offline: ``speaker_audio [T,768]``, ``speaker_exp [T,50]`` -> float32 ``[K,T,56]``."""
        speaker_audio, speaker_exp = check_speaker_inputs(speaker_audio, speaker_exp)
        stream = self.stream(num_samples, seed, steps, eta, guidance_audio, guidance_speaker_exp, sampler,
                             attitude=attitude, intensity=intensity, guidance_attitude=guidance_attitude,
                             guidance_history=guidance_history)
        return np.concatenate([stream.push(speaker_audio, speaker_exp), stream.flush()], axis=1)

    def generate_many(self, speakers: list[tuple[np.ndarray, np.ndarray]], num_samples: int = 1,
                      seeds: list[int] | None = None, *, attitudes: list[str | None] | None = None,
                      max_batch: int = MAX_BATCH_WINDOWS, **options) -> list[np.ndarray]:
        """Offline, many speakers at once: ``[(speaker_audio [T_i,768], speaker_exp [T_i,50]), ...]`` ->
        ``[K,T_i,56]`` each. Clip ``i`` gets ``generate(*speakers[i], num_samples, seeds[i],
        attitude=attitudes[i], **options)`` — the same noise, drawn from its own seeded generator — but the
        windows of up to ``max_batch // num_samples`` clips are denoised as one batch: sampling is bound by
        launch latency, so on a GPU a batch of 30 clips costs about what one does. Outputs equal the one-clip
        calls' up to the floating-point reassociation of a larger batch. ``seeds`` default: 0, 1, 2, ...;
        ``attitudes`` default: none for every clip."""
        seeds = list(range(len(speakers))) if seeds is None else [int(seed) for seed in seeds]
        attitudes = [None] * len(speakers) if attitudes is None else list(attitudes)
        if not len(seeds) == len(attitudes) == len(speakers):
            raise ValueError(f"generate_many: {len(speakers)} speakers, {len(seeds)} seeds, {len(attitudes)} attitudes")
        streams = []
        for (speaker_audio, speaker_exp), seed, attitude in zip(speakers, seeds, attitudes):
            stream = self.stream(num_samples, seed, attitude=attitude, **options)
            stream.receive(*check_speaker_inputs(speaker_audio, speaker_exp))
            streams.append(stream)
        outputs = [[stream._empty()] for stream in streams]
        # Streams share a batch when their sampling options (one captured graph) are the same: a stream without
        # attitude spares the attitude branch (``stream``), so it runs apart from the others.
        groups: dict[tuple, list[int]] = {}
        for index, stream in enumerate(streams):
            groups.setdefault(tuple(sorted(stream.options.items())), []).append(index)
        per_batch = max(1, max_batch // num_samples)
        batches = [members[first:first + per_batch] for members in groups.values()
                   for first in range(0, len(members), per_batch)]
        for batch in batches:
            while pending := [i for i in batch if streams[i].received > streams[i].emitted]:
                emits = [min(self.chunk_frames, streams[i].received - streams[i].emitted) for i in pending]
                for i, motion in zip(pending, step_together([streams[i] for i in pending], emits)):
                    outputs[i].append(motion)
        for stream in streams:
            stream.closed = True
        return [np.concatenate(parts, axis=1) for parts in outputs]

    @torch.no_grad()
    def sample_window(self, cond: Conditioning, noise: torch.Tensor, step_noise: torch.Tensor | None,
                      options: dict) -> torch.Tensor:
        """One denoised window ``[K,W,56]`` (normalised units) for a batch of conditionings, from its start
        noise ``[K,W,56]`` and, when ``options["eta"] > 0``, its per-step noise ``[steps,K,W,56]``."""
        if self.cuda_graphs:
            key = (cond.batch_size, tuple(sorted(options.items())))
            if key not in self._graphs:
                self._graphs[key] = GraphedWindowSampler(self, cond, noise, step_noise, options)
            return self._graphs[key](cond, noise, step_noise)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self.diffusion.sample(self.denoiser, cond, noise=noise, step_noise=step_noise, **options)


class GraphedWindowSampler:
    """The sampling loop of one window captured as a CUDA graph for fixed shapes and options; replayed per call."""

    def __init__(self, policy: ListenerPolicy, cond: Conditioning, noise: torch.Tensor,
                 step_noise: torch.Tensor | None, options: dict):
        self.static_cond = cond.map(torch.clone)
        self.static_noise = noise.clone()
        self.static_step_noise = None if step_noise is None else step_noise.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up outside the graph (allocator, kernel selection)
            for _ in range(2):
                self._run(policy, options)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = self._run(policy, options)

    def _run(self, policy: ListenerPolicy, options: dict) -> torch.Tensor:
        # Autocast's weight-cast cache must be off inside a graph capture (the casts are part of the graph).
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=policy.precision == "bf16", cache_enabled=False):
            return policy.diffusion.sample(policy.denoiser, self.static_cond, noise=self.static_noise,
                                           step_noise=self.static_step_noise, **options)

    def __call__(self, cond: Conditioning, noise: torch.Tensor, step_noise: torch.Tensor | None) -> torch.Tensor:
        for static, value in zip(self.static_cond.tensors(), cond.tensors()):
            static.copy_(value)
        self.static_noise.copy_(noise)
        if step_noise is not None:
            self.static_step_noise.copy_(step_noise)
        self.graph.replay()
        return self.static_out.clone()


class ListenerStream:
    """Incremental generation; see :class:`ListenerPolicy` and the module docstring."""

    def __init__(self, policy: ListenerPolicy, num_samples: int, seed: int, options: dict,
                 attitude: int = NO_ATTITUDE, intensity: float | None = None):
        self.policy = policy
        self.num_samples = num_samples
        self.options = options
        device = policy.device
        # The reaction condition, fixed for the whole stream: [K] attitude index, [K] log2 intensity.
        self.attitude = torch.full((num_samples,), attitude, dtype=torch.long, device=device)
        self.intensity = None if intensity is None else torch.full((num_samples,), intensity, device=device)
        self.generator = torch.Generator(device=device).manual_seed(int(seed))
        model = policy.cfg.model
        self.window_frames = model.window_frames
        # Speaker frames since ``buffer_start`` (absolute frame index), listener history in normalised units.
        self.speaker_audio = torch.zeros(0, AUDIO_DIM, device=device)
        self.speaker_exp = torch.zeros(0, SPEAKER_EXP_DIM, device=device)
        self.buffer_start = 0
        self.history = torch.zeros(num_samples, 0, FLAME_DIM, device=device)  # [K,<=H,56]
        # Long memory (brain/memory.py): averages of every emitted frame and of the speaker up to it.
        self.listener_memory = self.speaker_memory = None
        if model.memory_seconds:
            self.listener_memory = MemoryState(model.memory_seconds, num_samples, FLAME_DIM, device)
            self.speaker_memory = MemoryState(model.memory_seconds, 1, SPEAKER_EXP_DIM, device)
        self.received = 0
        self.emitted = 0
        self.closed = False

    def push(self, audio_chunk: np.ndarray, exp_chunk: np.ndarray) -> np.ndarray:
        """Feed ``[n,768]`` and ``[n,50]`` speaker frames; returns ``[K,m,56]`` new listener frames."""
        if self.closed:
            raise RuntimeError("this stream was flushed; start a new one with policy.stream()")
        if len(audio_chunk) == 0 and len(exp_chunk) == 0:
            return self._empty()
        self.receive(*check_speaker_inputs(audio_chunk, exp_chunk, audio_source="audio chunk",
                                           exp_source="expression chunk"))
        out = [self._empty()]
        chunk = self.policy.chunk_frames
        while self.received - self.emitted >= chunk:
            out.append(self._step(chunk))
        return np.concatenate(out, axis=1)

    def receive(self, audio_chunk: np.ndarray, exp_chunk: np.ndarray) -> None:
        """Buffer checked speaker frames without denoising anything (``push`` and ``generate_many`` step)."""
        device = self.policy.device
        self.speaker_audio = torch.cat([self.speaker_audio, torch.from_numpy(audio_chunk).to(device)])
        exp = self.policy.normalizer.normalize_speaker_exp(torch.from_numpy(exp_chunk).to(device))
        self.speaker_exp = torch.cat([self.speaker_exp, exp])
        self.received += len(audio_chunk)

    def flush(self) -> np.ndarray:
        """Emit the remaining ``< chunk_frames`` frames and close the stream."""
        if self.closed:
            raise RuntimeError("this stream was already flushed")
        rest = self.received - self.emitted
        self.closed = True
        return self._step(rest) if rest > 0 else self._empty()

    def _empty(self) -> np.ndarray:
        return np.zeros((self.num_samples, 0, FLAME_DIM), np.float32)

    def _step(self, emit: int) -> np.ndarray:
        """Denoise the window at ``self.emitted`` seeing speaker frames ``< self.received``; emit ``emit`` frames."""
        return step_together([self], [emit])[0]

    def window_inputs(self) -> tuple[Conditioning, torch.Tensor, torch.Tensor | None]:
        """The next window's conditioning ``[K,...]``, start noise ``[K,W,56]`` and per-step noise
        ``[steps,K,W,56]`` (None at eta 0), the noise drawn from this stream's generator."""
        policy, device = self.policy, self.policy.device
        history_frames, chunk = policy.history_frames, policy.chunk_frames
        start = self.emitted
        # Speaker context: absolute frames [start-S, start+C); valid where 0 <= frame < received.
        frames = torch.arange(start - policy.speaker_history_frames, start + chunk, device=device)
        speaker_valid = (frames >= 0) & (frames < self.received)
        buffer_index = (frames - self.buffer_start).clamp(0, len(self.speaker_audio) - 1)
        valid = speaker_valid[:, None]
        speaker_audio = self.speaker_audio[buffer_index] * valid  # [H+C,768]
        speaker_exp = self.speaker_exp[buffer_index] * valid  # [H+C,50]
        # History: the last H emitted frames, left-padded with invalid frames at the clip start.
        have = self.history.shape[1]
        history = torch.cat([self.history.new_zeros(self.num_samples, history_frames - have, FLAME_DIM),
                             self.history], dim=1)  # [K,H,56]
        history_valid = torch.arange(history_frames, device=device) >= history_frames - have
        k = self.num_samples
        cond = Conditioning(history=history, history_valid=history_valid.expand(k, -1),
                            speaker_audio=speaker_audio.expand(k, -1, -1),
                            speaker_exp=speaker_exp.expand(k, -1, -1), speaker_valid=speaker_valid.expand(k, -1),
                            attitude=self.attitude if policy.attitudes else None, intensity=self.intensity)
        if self.listener_memory is not None:
            listener_memory, coverage = self.listener_memory.read()
            cond = dataclasses.replace(cond, listener_memory=listener_memory,
                                       speaker_memory=self.speaker_memory.read()[0].expand(k, -1, -1),
                                       memory_coverage=coverage.expand(k, -1))
        shape = (k, self.window_frames, FLAME_DIM)
        noise = torch.randn(shape, generator=self.generator, device=device)
        step_noise = None
        if self.options["eta"] > 0:
            step_noise = torch.randn((self.options["steps"], *shape), generator=self.generator, device=device)
        return cond, noise, step_noise

    def advance(self, window: torch.Tensor, emit: int) -> np.ndarray:
        """Emit the first ``emit`` frames of the denoised ``window [K,W,56]`` (normalised): into the history,
        and denormalised ``[K,emit,56]`` out."""
        emitted = self.keep(window, emit)
        return self.policy.normalizer.denormalize_listener(emitted).float().cpu().numpy()

    def keep(self, window: torch.Tensor, emit: int) -> torch.Tensor:
        """:meth:`advance` without the output: the first ``emit`` frames of ``window`` into the history and
        the memory, returned normalised ``[K,emit,56]`` (autograd sees them through the next windows' history
        and memory: what fine-tuning on rollouts back-propagates through)."""
        policy = self.policy
        emitted = window[:, :emit]
        self.history = torch.cat([self.history, emitted], dim=1)[:, -policy.history_frames:]
        if self.listener_memory is not None:
            self.listener_memory.push(emitted)
            first = self.emitted - self.buffer_start
            self.speaker_memory.push(self.speaker_exp[None, first:first + emit])
        self.emitted += emit
        # Keep only the speaker frames a later window can still see.
        drop = max(0, (self.emitted - policy.speaker_history_frames) - self.buffer_start)
        if drop:
            self.speaker_audio, self.speaker_exp = self.speaker_audio[drop:], self.speaker_exp[drop:]
            self.buffer_start += drop
        return emitted


def step_together(streams: list[ListenerStream], emits: list[int]) -> list[np.ndarray]:
    """One window of each stream (one policy, the same sampling options) denoised as one batch; stream ``i``
    emits ``emits[i]`` frames. Returns each stream's ``[K_i,emit_i,56]``."""
    policy, options = streams[0].policy, streams[0].options
    inputs = [stream.window_inputs() for stream in streams]
    conds, noises, step_noises = zip(*inputs)
    step_noise = None if step_noises[0] is None else torch.cat(step_noises, dim=1)
    windows = policy.sample_window(Conditioning.cat(list(conds)), torch.cat(noises), step_noise, options)  # [sum K,W,56]
    sizes = [stream.num_samples for stream in streams]
    return [stream.advance(window, emit) for stream, window, emit in zip(streams, windows.split(sizes), emits)]
