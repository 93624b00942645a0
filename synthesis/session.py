"""A live listener: the speaker in as it happens, listener frames out as soon as they are ready.

    from brain.policy import ListenerPolicy, fast_sampling_options
    from scene.body import load_body
    from synthesis.session import ListenerSession

    policy = ListenerPolicy.from_checkpoint(brain_path, device="cuda", **fast_sampling_options("cuda", live=True))
    body = load_body(body_dir, device="cuda")

    # From the speaker's voice: 16 kHz samples through a causal feature source that the caller builds
    # (e.g. data_utils.wav2vec_stream.CausalWav2Vec), with or without the speaker's expression frames.
    session = ListenerSession(policy, body, audio_features=wav2vec, with_speaker_exp=False, seed=0)
    session.warm_up()                                 # before the speaker starts: graphs, compilation
    frames = session.push_audio(samples)              # float [n] -> uint8 [m,H,W,3]; m may be 0
    # From precomputed features:
    session = ListenerSession(policy, body, seed=0)
    frames = session.push(audio_chunk, exp_chunk)     # [n,768], [n,50] -> uint8 [m,H,W,3]
    frames = session.flush()                          # the speaker stopped: the frames still held back
    session.motion                                    # float32 [T,56]: everything emitted so far
    session.timings                                   # per push that did work: stage seconds, when ready

The brain side is ``policy.stream(...)``, which never looks at speaker frames past the chunk it emits; a
causal feature source (no look-ahead past its chunk) keeps the whole path causal. The session adds
rendering, input checks and per-push timings. Without the speaker's expression (``with_speaker_exp=False``)
it samples the brain's audio-only guidance branch (``guidance_speaker_exp=0``: the expression branch gets
no weight, so the expression input is never read). :func:`replay` and :func:`replay_audio` drive a session
over a recording the way a live source would, and :class:`StreamReport` summarises its latencies.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from synthesis.render import render_motion
from utils.arrays import check_array
from utils.errors import InputError
from utils.flame import AUDIO_DIM, FLAME_DIM, SPEAKER_EXP_DIM

AUDIO_BLOCK_SECONDS = 0.01  # what a live audio source delivers per callback (WebRTC's 10 ms frames)


@dataclass
class ChunkTiming:
    """One push (or the flush) that did work, timed by the session's clock."""
    first_frame: int  # index of the first listener frame it returned
    frames_in: int  # speaker frames handed to the brain
    frames_out: int  # listener frames returned
    features_s: float  # raw audio -> features (0 when features were pushed)
    brain_s: float
    render_s: float  # includes the copy of the frames to host memory
    ready_at: float  # clock reading when the frames were ready

    @property
    def compute_s(self) -> float:
        return self.features_s + self.brain_s + self.render_s


def audio_only_guidance(policy, guidance_speaker_exp: float | None) -> float:
    """The expression guidance an audio-only session samples with (0: the audio-only branch); refuses a
    brain that has no such branch and a non-zero weight asked for an expression that is not there."""
    if guidance_speaker_exp not in (None, 0.0):
        raise InputError(f"without the speaker's expression the expression guidance must be 0 "
                         f"(the audio-only branch), got {guidance_speaker_exp}")
    if policy.cfg.model.objective == "regression":
        raise InputError("this brain is a regression model, which has no audio-only branch: give the "
                         "speaker's expression")
    if policy.cfg.diffusion.drop_speaker_exp + policy.cfg.diffusion.drop_both == 0:
        raise InputError("this brain was trained with drop_speaker_exp = drop_both = 0, so it never learned "
                         "an audio-only branch: give the speaker's expression")
    return 0.0


class ListenerSession:
    """One listener reacting live (see the module docstring).

    ``policy`` is a ``brain.policy.ListenerPolicy`` and ``body`` a ``scene.body.BodyModel`` (or anything
    with the same methods). ``audio_features`` is needed for :meth:`push_audio`: an object with
    ``sample_rate`` and ``stream()``, whose stream has ``push(samples [n]) -> [m,768]`` and
    ``flush(num_frames) -> [r,768]``. ``attitude`` / ``intensity`` and ``stream_options`` (guidance
    weights, ``eta``) go to ``policy.stream``; ``clock`` (seconds) times every stage.
    """

    def __init__(self, policy, body, *, audio_features=None, with_speaker_exp: bool = True, seed: int = 0,
                 steps: int | None = None, attitude: str | None = None, intensity: float | None = None,
                 clock: Callable[[], float] = time.perf_counter, **stream_options):
        self.policy = policy
        self.body = body
        self.clock = clock
        self.with_speaker_exp = with_speaker_exp
        if not with_speaker_exp:
            stream_options["guidance_speaker_exp"] = audio_only_guidance(
                policy, stream_options.get("guidance_speaker_exp"))
        if attitude is not None:
            stream_options["attitude"] = attitude
        if intensity is not None:
            stream_options["intensity"] = intensity
        self._stream_options = {"steps": steps, **stream_options}
        self._stream = policy.stream(num_samples=1, seed=seed, **self._stream_options)
        self.audio_features = audio_features
        self._audio_stream = audio_features.stream() if audio_features is not None else None
        # push_audio: features and expression frames received but not yet handed to the brain.
        self._pending_audio = np.zeros((0, AUDIO_DIM), np.float32)
        self._pending_exp = np.zeros((0, SPEAKER_EXP_DIM), np.float32)
        self.exp_frames_received = 0
        self._motion_chunks: list[np.ndarray] = []
        self.frames_emitted = 0
        self.timings: list[ChunkTiming] = []
        self._flushed = False

    @property
    def chunk_frames(self) -> int:
        return self.policy.chunk_frames

    @property
    def motion(self) -> np.ndarray:
        """float32 ``[T,56]``: the listener motion emitted so far."""
        if not self._motion_chunks:
            return np.zeros((0, FLAME_DIM), dtype=np.float32)
        return np.concatenate(self._motion_chunks)

    def warm_up(self, chunks: int = 2) -> float:
        """Pay the one-time costs (CUDA graph capture, ``torch.compile``, cuDNN autotuning, allocator growth)
        before the first live chunk: ``chunks`` chunks of silence through a throwaway brain stream with this
        session's options, the body and the feature source. The session itself is untouched. Returns the
        seconds it took."""
        start = self.clock()
        frames = chunks * self.chunk_frames
        stream = self.policy.stream(num_samples=1, seed=0, **self._stream_options)
        motion = stream.push(np.zeros((frames, AUDIO_DIM), np.float32),
                             np.zeros((frames, SPEAKER_EXP_DIM), np.float32))  # [1,frames,56]
        render_motion(self.body, motion[0, :self.chunk_frames])
        if self.audio_features is not None:
            samples_per_frame = self.audio_features.sample_rate / self.policy.fps
            self.audio_features.stream().push(np.zeros(math.ceil((frames + 1) * samples_per_frame), np.float32))
        return self.clock() - start

    def push(self, speaker_audio: np.ndarray, speaker_exp: np.ndarray | None = None) -> np.ndarray:
        """Speaker ``[n,768]`` audio features and ``[n,50]`` expression (None in an audio-only session)
        -> uint8 ``[m,H,W,3]`` listener frames."""
        self._check_open()
        if self._audio_stream is not None:
            raise RuntimeError("this session computes its features from raw audio: use push_audio")
        start = self.clock()
        speaker_audio = check_array(speaker_audio, AUDIO_DIM, "audio chunk")
        speaker_exp = self._check_exp(speaker_exp, len(speaker_audio))
        if len(speaker_audio) != len(speaker_exp):
            raise InputError(f"audio chunk has {len(speaker_audio)} frames but expression chunk has "
                             f"{len(speaker_exp)}: push the same frames of both")
        return self._brain_and_body(speaker_audio, speaker_exp, start, features_done=start)

    def push_audio(self, samples: np.ndarray, speaker_exp: np.ndarray | None = None) -> np.ndarray:
        """Mono samples at ``audio_features.sample_rate`` (any block size) and the speaker's expression
        frames that arrived meanwhile (``[k,50]``, any count, or None) -> uint8 ``[m,H,W,3]``.

        Frames go to the brain once both their features and (with expression) their expression are in.
        """
        self._check_open()
        if self._audio_stream is None:
            raise RuntimeError("push_audio needs a session built with audio_features=")
        start = self.clock()
        speaker_exp = self._check_exp(speaker_exp, 0)  # [k,50]; [0,50] when there is none
        self._pending_exp = np.concatenate([self._pending_exp, speaker_exp])
        self.exp_frames_received += len(speaker_exp)
        self._pending_audio = np.concatenate([self._pending_audio, self._audio_stream.push(samples)])
        return self._feed_pending(start)

    def flush(self) -> np.ndarray:
        """The speaker stopped: emit the frames still held back (fewer than ``chunk_frames`` and, from
        raw audio, the audio's last frames; with expression, as many frames as expression frames came)."""
        if self._flushed:
            return self._no_frames()
        start = self.clock()
        head = self._no_frames()
        if self._audio_stream is not None:
            num_frames = self.exp_frames_received if self.with_speaker_exp else None
            self._pending_audio = np.concatenate([self._pending_audio, self._audio_stream.flush(num_frames)])
            head = self._feed_pending(start)
            start = self.clock()
        self._flushed = True
        motion = self._stream.flush()  # [1,r,56]
        return np.concatenate([head, self._emit(motion, 0, start, start)])

    def _no_frames(self) -> np.ndarray:
        return np.zeros((0, self.body.height, self.body.width, 3), np.uint8)

    def _check_open(self) -> None:
        if self._flushed:
            raise RuntimeError("this ListenerSession was flushed; start a new one for a new conversation")

    def _check_exp(self, speaker_exp: np.ndarray | None, frames: int) -> np.ndarray:
        if not self.with_speaker_exp:
            if speaker_exp is not None:
                raise InputError("this session was started without the speaker's expression "
                                 "(with_speaker_exp=False); start one with it to use it")
            return np.zeros((frames, SPEAKER_EXP_DIM), np.float32)
        if speaker_exp is None:
            if frames == 0:  # raw audio: expression frames come when the tracker has them
                return np.zeros((0, SPEAKER_EXP_DIM), np.float32)
            raise InputError("this session expects the speaker's expression with every chunk "
                             "(or start it with with_speaker_exp=False)")
        return check_array(speaker_exp, SPEAKER_EXP_DIM, "expression chunk")

    def _feed_pending(self, start: float) -> np.ndarray:
        """Hand the frames that have both features and expression to the brain."""
        features_done = self.clock()
        ready = len(self._pending_audio) if not self.with_speaker_exp else min(len(self._pending_audio),
                                                                            len(self._pending_exp))
        audio, self._pending_audio = self._pending_audio[:ready], self._pending_audio[ready:]
        if self.with_speaker_exp:
            exp, self._pending_exp = self._pending_exp[:ready], self._pending_exp[ready:]
        else:
            exp = np.zeros((ready, SPEAKER_EXP_DIM), np.float32)
        return self._brain_and_body(audio, exp, start, features_done)

    def _brain_and_body(self, speaker_audio, speaker_exp, start: float, features_done: float) -> np.ndarray:
        motion = self._stream.push(speaker_audio, speaker_exp) if len(speaker_audio) else None  # [1,m,56]
        if motion is None:
            return self._no_frames()
        return self._emit(motion, len(speaker_audio), start, features_done)

    def _emit(self, motion: np.ndarray, frames_in: int, start: float, features_done: float) -> np.ndarray:
        listener_motion = np.asarray(motion, dtype=np.float32)[0]  # [m,56]
        brain_done = self.clock()
        frames = render_motion(self.body, listener_motion)
        ready = self.clock()
        if frames_in or len(frames):
            self.timings.append(ChunkTiming(self.frames_emitted, frames_in, len(frames), features_done - start,
                                            brain_done - features_done, ready - brain_done, ready))
        self._motion_chunks.append(listener_motion)
        self.frames_emitted += len(frames)
        return frames


@dataclass
class StreamReport:
    """Latencies of a session driven by :func:`replay` / :func:`replay_audio`, in seconds.

    ``latency`` is, per chunk of ``chunk_frames`` listener frames, the time from the moment the chunk's
    first speaker sample existed (frame ``k`` starts at ``k / fps`` on the live clock) to the moment its
    listener frames were ready: the chunk's own duration, waiting for the feature source's look-ahead and
    for the audio block that carries it, queueing behind the previous chunk, and the compute. Stage times
    (features, brain, render, encode) are per push that returned frames. ``realtime`` says whether the
    clock was real (sleeping until each input arrived) or simulated from the measured compute times of an
    as-fast-as-possible run (:func:`simulate_live_clock`). ``encode`` (the writer thread feeding ffmpeg,
    overlapped with the next chunk and not on the latency path) is filled in by whoever writes the video.
    """
    chunk_frames: int
    fps: int
    realtime: bool
    timings: list[ChunkTiming]  # the pushes that returned frames
    latency: np.ndarray  # [num_chunks]
    wall_s: float  # the whole replay
    encode_s: np.ndarray | None = None  # [len(timings)] per written batch, when a video was written
    num_frames: int = field(init=False)

    def __post_init__(self):
        self.num_frames = sum(t.frames_out for t in self.timings)

    @property
    def chunk_s(self) -> float:
        return self.chunk_frames / self.fps

    @property
    def sustained_fps(self) -> float:
        """Frames per second of wall time: the clip's own 25 fps when real-time paced and keeping up;
        the achievable throughput when run as fast as possible."""
        return self.num_frames / self.wall_s if self.wall_s > 0 else float("inf")

    def stages(self) -> dict[str, np.ndarray]:
        """Seconds per push that returned frames, by stage (and the compute they add up to)."""
        stages = {"features": np.array([t.features_s for t in self.timings]),
                  "brain": np.array([t.brain_s for t in self.timings]),
                  "render": np.array([t.render_s for t in self.timings])}
        if self.encode_s is not None:
            stages["encode"] = np.asarray(self.encode_s)
        stages["compute"] = np.array([t.compute_s for t in self.timings])
        return stages

    def summary(self) -> dict[str, float]:
        """``<stage>_{p50,p95,max}_ms`` for each stage, ``latency_{p50,p95,max}_ms``, counts, fps."""
        summary = {"chunks": len(self.latency), "frames": self.num_frames, "sustained_fps": self.sustained_fps}
        for name, seconds in [*self.stages().items(), ("latency", self.latency)]:
            for label, value in percentiles_ms(seconds).items():
                summary[f"{name}_{label}_ms"] = value
        return summary

    def format(self) -> str:
        summary = self.summary()
        clock = "real clock" if self.realtime else "as fast as possible; live clock simulated from compute times"
        lines = [f"streaming: {summary['chunks']} chunks of {self.chunk_frames} frames ({1000 * self.chunk_s:.0f} ms), "
                 f"{summary['frames']} frames ({clock})",
                 "| stage | p50 ms | p95 ms | max ms |", "|---|---|---|---|"]
        names = {"features": "features (audio -> 25 fps)", "brain": "brain", "render": "render",
                 "encode": "encode (writer thread, overlapped)", "compute": "features + brain + render",
                 "latency": "first audio sample of a chunk -> its frames ready"}
        for key, name in names.items():
            if f"{key}_p50_ms" in summary:
                lines.append(f"| {name} | " + " | ".join(f"{summary[f'{key}_{label}_ms']:.1f}"
                                                         for label in ("p50", "p95", "max")) + " |")
        lines.append(f"sustained: {summary['sustained_fps']:.1f} fps")
        return "\n".join(lines)


def percentiles_ms(seconds: np.ndarray) -> dict[str, float]:
    """p50 / p95 / max of ``seconds`` in milliseconds (NaN for an empty array)."""
    if len(seconds) == 0:
        return {"p50": math.nan, "p95": math.nan, "max": math.nan}
    milliseconds = 1000 * np.asarray(seconds, dtype=np.float64)
    return {"p50": float(np.percentile(milliseconds, 50)), "p95": float(np.percentile(milliseconds, 95)),
            "max": float(milliseconds.max())}


def simulate_live_clock(compute_s: np.ndarray, arrival_s: np.ndarray) -> np.ndarray:
    """Finish times on a live clock, from compute times measured back to back.

    Push i's input exists at ``arrival_s[i]``; it starts when both it and the previous push are done:
    ``finish_i = max(arrival_i, finish_{i-1}) + compute_i``.
    """
    finish_s = np.empty(len(compute_s))
    finish = -np.inf
    for i, (compute, arrival) in enumerate(zip(compute_s, arrival_s)):
        finish = max(arrival, finish) + compute
        finish_s[i] = finish
    return finish_s


def chunk_latencies(timings: list[ChunkTiming], ready_s: np.ndarray, chunk_frames: int, fps: int) -> np.ndarray:
    """Per chunk: ready time minus the chunk's first frame's start (a push may carry several chunks)."""
    latency = []
    for timing, ready in zip(timings, ready_s):
        for first in range(timing.first_frame, timing.first_frame + timing.frames_out, chunk_frames):
            latency.append(ready - first / fps)
    return np.asarray(latency)


def _drive(session: ListenerSession, inputs, on_frames, *, realtime: bool, sleep) -> StreamReport:
    """Run ``inputs`` (``(arrival_s, push)`` pairs in time order, ``push()`` returning frames), then flush."""
    first_timing = len(session.timings)
    start = session.clock()
    arrivals: dict[int, float] = {}  # timing index -> when its push's input existed
    end_s = inputs[-1][0] if inputs else 0.0
    for arrival, push in [*inputs, (end_s, session.flush)]:
        if realtime:
            sleep(max(0.0, start + arrival - session.clock()))
        before = len(session.timings)
        frames = push()
        for index in range(before, len(session.timings)):
            arrivals[index] = arrival
        if on_frames is not None and len(frames):
            on_frames(frames)
    wall_s = session.clock() - start
    indices = [i for i in range(first_timing, len(session.timings)) if session.timings[i].frames_out]
    timings = [session.timings[i] for i in indices]
    if realtime:
        ready_s = np.array([timing.ready_at - start for timing in timings])
    else:
        ready_s = simulate_live_clock(np.array([t.compute_s for t in timings]), np.array([arrivals[i] for i in indices]))
    fps = session.policy.fps
    return StreamReport(session.chunk_frames, fps, realtime, timings,
                        chunk_latencies(timings, ready_s, session.chunk_frames, fps), wall_s)


def replay(session: ListenerSession, speaker_audio: np.ndarray, speaker_exp: np.ndarray | None = None,
           on_frames=None, *, realtime: bool = False, sleep=time.sleep) -> StreamReport:
    """Feed recorded features ``[T,768]`` (and expression ``[T,50]``) to ``session`` one chunk at a time
    as a live source would, then flush.

    ``on_frames(frames)`` receives every non-empty batch of frames as soon as it is ready (e.g. a
    :class:`synthesis.video.VideoWriter`'s ``write``). Chunk ``c`` exists once its last frame has been
    spoken, at ``(c + 1) * chunk_frames / fps``; with ``realtime`` the replay sleeps until then, otherwise
    it runs as fast as possible and the live clock is simulated from the measured compute times.
    """
    chunk, fps = session.chunk_frames, session.policy.fps
    num_frames = len(speaker_audio)

    inputs = []
    for start in range(0, num_frames, chunk):
        stop = min(start + chunk, num_frames)
        exp = None if speaker_exp is None else speaker_exp[start:stop]
        inputs.append((stop / fps, functools.partial(session.push, speaker_audio[start:stop], exp)))
    return _drive(session, inputs, on_frames, realtime=realtime, sleep=sleep)


def replay_audio(session: ListenerSession, samples: np.ndarray, speaker_exp: np.ndarray | None = None,
                 on_frames=None, *, realtime: bool = False, block_seconds: float = AUDIO_BLOCK_SECONDS,
                 sleep=time.sleep) -> StreamReport:
    """Play a recording ``samples [N]`` (at the session's feature sample rate) into ``session`` in blocks
    of ``block_seconds``, each once its last sample has been spoken, then flush.

    Expression frame ``k`` (``speaker_exp [T,50]``, optional) exists at ``(k + 1) / fps`` and goes in
    with the first audio block that ends at or after that time; frames past the audio's end go in with
    the last block. See :func:`replay` for ``on_frames`` and ``realtime``.
    """
    rate, fps = session.audio_features.sample_rate, session.policy.fps
    block = max(1, round(block_seconds * rate))
    exp_sent, inputs = 0, []
    for start in range(0, len(samples), block):
        stop = min(start + block, len(samples))
        exp_chunk = None
        if speaker_exp is not None:  # the frames whose end (k + 1) / fps has passed by this block's end
            exp_stop = len(speaker_exp) if stop == len(samples) else min(len(speaker_exp), stop * fps // rate)
            exp_chunk, exp_sent = speaker_exp[exp_sent:exp_stop], exp_stop
        inputs.append((stop / rate, functools.partial(session.push_audio, samples[start:stop], exp_chunk)))
    return _drive(session, inputs, on_frames, realtime=realtime, sleep=sleep)
