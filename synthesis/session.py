"""A live listener: speaker features in, chunk by chunk; listener frames out as soon as they are ready.

    from brain.policy import ListenerPolicy, fast_sampling_options
    from scene.body import load_body
    from synthesis.session import ListenerSession

    policy = ListenerPolicy.from_checkpoint(brain_path, device="cuda", **fast_sampling_options("cuda"))
    session = ListenerSession(policy, load_body(body_dir, device="cuda"), seed=0, steps=15)
    while speaker_is_talking:
        frames = session.push(audio_chunk, exp_chunk)   # [n,768], [n,50] -> uint8 [m,H,W,3]; m may be 0
        show(frames)
    show(session.flush())                               # the last < chunk_frames frames
    session.motion                                      # float32 [T,56]: everything emitted so far

The brain side is ``policy.stream(...)``, which never looks at speaker frames past the chunk it emits;
the session adds rendering, input checks and per-chunk timings. :func:`replay` drives a session over a
recorded clip the way a live source would and :class:`StreamReport` summarises its latencies.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from synthesis.render import render_motion
from utils.arrays import check_array
from utils.flame import AUDIO_DIM, FLAME_DIM, SPEAKER_EXP_DIM


@dataclass
class ChunkTiming:
    frames_in: int  # speaker frames pushed
    frames_out: int  # listener frames returned
    brain_s: float
    render_s: float  # includes the copy of the frames to host memory

    @property
    def compute_s(self) -> float:
        return self.brain_s + self.render_s


class ListenerSession:
    """One listener reacting live: ``push`` speaker chunks, get rendered frames back (see the module docstring).

    ``policy`` is a ``brain.policy.ListenerPolicy`` and ``body`` a ``scene.body.BodyModel`` (or anything
    with the same methods). ``stream_options`` (e.g. guidance weights) go to ``policy.stream``.
    """

    def __init__(self, policy, body, *, seed: int = 0, steps: int = 15, **stream_options):
        self.policy = policy
        self.body = body
        self._stream = policy.stream(num_samples=1, seed=seed, steps=steps, **stream_options)
        self._motion_chunks: list[np.ndarray] = []
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

    def push(self, speaker_audio: np.ndarray, speaker_exp: np.ndarray) -> np.ndarray:
        """Speaker ``[n,768]`` audio features and ``[n,50]`` expression -> uint8 ``[m,H,W,3]`` listener frames."""
        if self._flushed:
            raise RuntimeError("this ListenerSession was flushed; start a new one for a new conversation")
        speaker_audio = check_array(speaker_audio, AUDIO_DIM, "audio chunk")
        speaker_exp = check_array(speaker_exp, SPEAKER_EXP_DIM, "expression chunk")
        if len(speaker_audio) != len(speaker_exp):
            raise ValueError(f"audio chunk has {len(speaker_audio)} frames but expression chunk has "
                             f"{len(speaker_exp)}: push the same frames of both")
        start = time.perf_counter()
        motion = self._stream.push(speaker_audio, speaker_exp)  # [1,m,56]
        return self._emit(motion, len(speaker_audio), start)

    def flush(self) -> np.ndarray:
        """The speaker stopped: emit the frames still held back (fewer than ``chunk_frames``)."""
        if self._flushed:
            return np.zeros((0, self.body.height, self.body.width, 3), dtype=np.uint8)
        self._flushed = True
        start = time.perf_counter()
        return self._emit(self._stream.flush(), 0, start)

    def _emit(self, motion: np.ndarray, frames_in: int, start: float) -> np.ndarray:
        listener_motion = np.asarray(motion, dtype=np.float32)[0]  # [m,56]
        brain_done = time.perf_counter()
        frames = render_motion(self.body, listener_motion)
        self.timings.append(ChunkTiming(frames_in, len(frames), brain_done - start, time.perf_counter() - brain_done))
        self._motion_chunks.append(listener_motion)
        return frames


@dataclass
class StreamReport:
    """Latencies of a replayed live session, in seconds unless named otherwise.

    ``compute`` is brain + render per chunk. ``live_latency`` is, per chunk, the time from the moment its
    last speaker frame existed (the clock at 25 fps) to the moment its listener frames were ready,
    queueing included when a chunk had to wait for the previous one; the oldest frame of a chunk waits a
    further ``chunk_s`` for the chunk to fill, hence ``end_to_end = chunk_s + live_latency``.
    ``realtime`` says whether the clock was real (sleeping until each chunk arrived) or simulated from the
    measured compute times of an as-fast-as-possible run.
    """
    chunk_frames: int
    fps: int
    realtime: bool
    timings: list[ChunkTiming]
    live_latency: np.ndarray  # [num_chunks]
    wall_s: float  # the whole replay
    num_frames: int = field(init=False)

    def __post_init__(self):
        self.num_frames = sum(t.frames_out for t in self.timings)

    @property
    def chunk_s(self) -> float:
        return self.chunk_frames / self.fps

    @property
    def compute(self) -> np.ndarray:
        return np.array([t.compute_s for t in self.timings])

    @property
    def sustained_fps(self) -> float:
        """Frames per second of wall time: the clip's own 25 fps when real-time paced and keeping up;
        the achievable throughput when run as fast as possible."""
        return self.num_frames / self.wall_s if self.wall_s > 0 else float("inf")

    def summary(self) -> dict[str, float]:
        compute_ms = 1000 * self.compute
        live_ms = 1000 * self.live_latency
        return {
            "chunks": len(self.timings), "frames": self.num_frames,
            "brain_p50_ms": float(np.median([1000 * t.brain_s for t in self.timings])),
            "render_p50_ms": float(np.median([1000 * t.render_s for t in self.timings])),
            "compute_p50_ms": float(np.percentile(compute_ms, 50)),
            "compute_p95_ms": float(np.percentile(compute_ms, 95)),
            "compute_max_ms": float(compute_ms.max()),
            "live_latency_p50_ms": float(np.percentile(live_ms, 50)),
            "live_latency_p95_ms": float(np.percentile(live_ms, 95)),
            "live_latency_max_ms": float(live_ms.max()),
            "end_to_end_max_ms": float(1000 * self.chunk_s + live_ms.max()),
            "sustained_fps": self.sustained_fps,
        }

    def format(self) -> str:
        s = self.summary()
        clock = "real clock" if self.realtime else "as fast as possible; live clock simulated from compute times"
        return "\n".join([
            f"streaming: {s['chunks']} chunks of {self.chunk_frames} frames ({1000 * self.chunk_s:.0f} ms), "
            f"{s['frames']} frames ({clock})",
            f"  per chunk brain + render: p50 {s['compute_p50_ms']:.1f} ms (brain {s['brain_p50_ms']:.1f}, "
            f"render {s['render_p50_ms']:.1f}), p95 {s['compute_p95_ms']:.1f} ms, max {s['compute_max_ms']:.1f} ms",
            f"  live latency after a chunk arrives: p50 {s['live_latency_p50_ms']:.1f} ms, "
            f"p95 {s['live_latency_p95_ms']:.1f} ms, max {s['live_latency_max_ms']:.1f} ms "
            f"(oldest frame end to end: max {s['end_to_end_max_ms']:.0f} ms)",
            f"  sustained: {s['sustained_fps']:.1f} fps",
        ])


def simulate_live_clock(compute_s: np.ndarray, arrival_s: np.ndarray) -> np.ndarray:
    """Per-chunk latency on a live clock, from compute times measured back to back.

    Chunk i arrives at ``arrival_s[i]`` and starts when both it and the previous chunk are done:
    ``finish_i = max(arrival_i, finish_{i-1}) + compute_i``; latency ``finish_i - arrival_i``.
    """
    latency = np.empty(len(compute_s))
    finish = -np.inf
    for i, (compute, arrival) in enumerate(zip(compute_s, arrival_s)):
        finish = max(arrival, finish) + compute
        latency[i] = finish - arrival
    return latency


def replay(session: ListenerSession, speaker_audio: np.ndarray, speaker_exp: np.ndarray, on_frames=None,
           *, chunk_frames: int | None = None, fps: int | None = None, realtime: bool = False) -> StreamReport:
    """Feed a recorded clip to ``session`` chunk by chunk as a live source would, then flush.

    ``on_frames(frames)`` receives every non-empty batch of frames as soon as it is ready (e.g. a
    :class:`synthesis.video.VideoWriter`'s ``write``). With ``realtime`` the replay sleeps until each
    chunk's last frame would have been spoken; otherwise it runs as fast as possible and the live clock is
    simulated from the measured compute times (:func:`simulate_live_clock`).
    """
    chunk_frames = chunk_frames or session.chunk_frames
    fps = fps or session.policy.fps
    num_frames = len(speaker_audio)
    first_timing = len(session.timings)
    arrivals, latencies = [], []
    start = time.perf_counter()
    for chunk_start in range(0, num_frames, chunk_frames):
        chunk_end = min(chunk_start + chunk_frames, num_frames)
        arrival = chunk_end / fps
        if realtime:
            time.sleep(max(0.0, start + arrival - time.perf_counter()))
        frames = session.push(speaker_audio[chunk_start:chunk_end], speaker_exp[chunk_start:chunk_end])
        arrivals.append(arrival)
        latencies.append(time.perf_counter() - start - arrival)
        if on_frames is not None and len(frames):
            on_frames(frames)
    frames = session.flush()
    arrivals.append(num_frames / fps)
    latencies.append(time.perf_counter() - start - arrivals[-1])
    if on_frames is not None and len(frames):
        on_frames(frames)
    wall_s = time.perf_counter() - start
    timings = session.timings[first_timing:]
    if not realtime:
        latencies = simulate_live_clock(np.array([t.compute_s for t in timings]), np.array(arrivals))
    return StreamReport(chunk_frames, fps, realtime, timings, np.asarray(latencies), wall_s)
