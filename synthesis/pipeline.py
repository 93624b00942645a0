"""Speaker features -> listener videos, motion and plots on disk, offline or as a replayed live stream.

    outputs, report = synthesize(policy, body, speaker_audio, speaker_exp, "out/listener.mp4",
                                 wav="speaker.wav", num_samples=3, seed=0, steps=15)

What one call writes (every file goes through ``utils.atomic.atomic_output`` and is renamed into place
only after all of them are complete; if anything fails, no file of the set appears):

| num_samples | videos                                        | motion                      | plot          |
|---|---|---|---|
| 1           | ``<stem>.mp4``                                | ``<stem>.npy`` ``[T,56]``   | ``<stem>.png`` |
| K > 1       | ``<stem>_s0.mp4`` ... ``<stem>_s{K-1}.mp4`` and ``<stem>_grid.mp4`` | ``<stem>.npy`` ``[K,T,56]`` | ``<stem>.png`` |

Offline, the brain samples the whole clip first (``policy.generate``), then the body renders it in
batches of ``render_batch`` frames (all samples of a time step in one batch) while a writer thread per
video feeds ffmpeg, so encoding overlaps rendering, and another thread writes the motion and the plot. ``stream=True`` instead replays the clip through a
:class:`synthesis.session.ListenerSession` chunk by chunk and writes frames as the session emits them.
"""
from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from synthesis.render import render_motion
from synthesis.session import ListenerSession, StreamReport, replay
from synthesis.video import VideoWriter, grid_shape, tile_grid
from utils.atomic import atomic_output
from utils.errors import UsageError
from utils.plots import plot_motion_curves


@dataclass
class SynthesisOutputs:
    videos: list[Path]  # one per sample
    grid: Path | None  # side-by-side of all samples (num_samples > 1)
    motion: Path
    plot: Path

    @classmethod
    def for_output(cls, output: str | os.PathLike, num_samples: int) -> "SynthesisOutputs":
        output = Path(output)
        if output.suffix.lower() != ".mp4":
            raise UsageError(f"--output {output}: the output must be an .mp4 file")
        stem = output.with_suffix("")
        if num_samples == 1:
            videos, grid = [output], None
        else:
            videos = [stem.with_name(f"{stem.name}_s{k}.mp4") for k in range(num_samples)]
            grid = stem.with_name(f"{stem.name}_grid.mp4")
        return cls(videos, grid, stem.with_suffix(".npy"), stem.with_suffix(".png"))

    def all_paths(self) -> list[Path]:
        return [*self.videos, *([self.grid] if self.grid else []), self.motion, self.plot]


@dataclass
class OfflineReport:
    num_frames: int
    num_samples: int
    brain_s: float  # sampling the whole clip
    render_s: float  # body rendering incl. the copy to host memory
    encode_s: float  # time the writer threads spent feeding ffmpeg (overlaps rendering)
    encode_tail_s: float  # waiting for ffmpeg after the last frame was rendered
    motion_and_plot_s: float  # writing <stem>.npy and drawing <stem>.png (in a thread, overlaps rendering)
    total_s: float  # the whole call

    @property
    def fps(self) -> float:
        """Video frames (per sample) produced per second of wall time."""
        return self.num_frames / self.total_s

    def format(self) -> str:
        return (f"offline: {self.num_samples} sample(s) x {self.num_frames} frames in {self.total_s:.2f} s "
                f"({self.fps:.1f} fps): brain {self.brain_s:.2f} s, render {self.render_s:.2f} s, "
                f"encode {self.encode_s:.2f} s overlapped + {self.encode_tail_s:.2f} s tail, "
                f"motion + plot {self.motion_and_plot_s:.2f} s overlapped")


def synthesize(policy, body, speaker_audio: np.ndarray, speaker_exp: np.ndarray, output: str | os.PathLike, *,
               wav: str | os.PathLike | None = None, num_samples: int = 1, seed: int = 0, steps: int = 15,
               guidance_audio: float | None = None, guidance_speaker_exp: float | None = None,
               stream: bool = False, realtime: bool = False, render_batch: int = 32,
               progress: bool = True) -> tuple[SynthesisOutputs, OfflineReport | StreamReport]:
    """Write the listener video(s), motion and plot for one speaker clip (see the module docstring).

    ``speaker_audio`` ``[T,768]`` and ``speaker_exp`` ``[T,50]`` must already be checked
    (``brain.data.check_speaker_inputs``). ``wav`` is muxed into every video.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    if stream and num_samples != 1:
        raise ValueError("--stream drives one live listener; use num_samples=1")
    outputs = SynthesisOutputs.for_output(output, num_samples)
    guidance = {"guidance_audio": guidance_audio, "guidance_speaker_exp": guidance_speaker_exp}
    num_frames = len(speaker_audio)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        temps = [stack.enter_context(atomic_output(path)) for path in outputs.all_paths()]
        video_temps = temps[:len(outputs.videos) + (outputs.grid is not None)]
        motion_temp, plot_temp = temps[-2:]
        sizes = [(body.height, body.width)] * len(outputs.videos)  # (H, W) per video
        if outputs.grid is not None:
            rows, columns = grid_shape(num_samples)
            sizes.append((rows * body.height, columns * body.width))
        writers = [stack.enter_context(VideoWriter(path, width=width, height=height, fps=policy.fps,
                                                   audio_path=wav, num_frames=num_frames))
                   for path, (height, width) in zip(video_temps, sizes)]
        labels = ["listener"] if num_samples == 1 else [f"sample {k}" for k in range(num_samples)]
        title = f"{outputs.motion.stem}: seed {seed}, {steps} steps" + (", streamed" if stream else "")

        def save_motion_and_plot(motions: np.ndarray) -> float:
            """``motions [K,T,56]`` -> ``<stem>.npy`` and ``<stem>.png``; returns the seconds it took."""
            save_start = time.perf_counter()
            with open(motion_temp, "wb") as handle:
                np.save(handle, motions[0] if num_samples == 1 else motions)
            plot_motion_curves(plot_temp, dict(zip(labels, motions)), speaker_exp=speaker_exp, title=title)
            return time.perf_counter() - save_start

        if stream:
            listener_motion, report = _stream_to(writers[0], policy, body, speaker_audio, speaker_exp,
                                                 seed=seed, steps=steps, realtime=realtime, progress=progress,
                                                 **{k: v for k, v in guidance.items() if v is not None})
            writers[0].close()
            save_motion_and_plot(listener_motion[None])
        else:
            report = _offline_to(writers, policy, body, speaker_audio, speaker_exp, save_motion_and_plot,
                                 seed=seed, steps=steps, num_samples=num_samples, render_batch=render_batch,
                                 progress=progress, **guidance)
    if isinstance(report, OfflineReport):
        report.total_s = time.perf_counter() - start
    return outputs, report


def _offline_to(writers: list[VideoWriter], policy, body, speaker_audio, speaker_exp, save_motion_and_plot, *,
                num_samples: int, render_batch: int, progress: bool, **generate_options) -> OfflineReport:
    brain_start = time.perf_counter()
    motions = policy.generate(speaker_audio, speaker_exp, num_samples=num_samples, **generate_options)  # [K,T,56]
    brain_s = time.perf_counter() - brain_start
    num_frames = motions.shape[1]
    if num_frames != len(speaker_audio):
        raise RuntimeError(f"the brain returned {num_frames} frames for a {len(speaker_audio)}-frame clip")
    # The .npy and the plot need only the motion: a thread draws them while the body renders.
    with ThreadPoolExecutor(max_workers=1) as side_thread:
        side_outputs = side_thread.submit(save_motion_and_plot, motions)
        # Render all samples of a span of time steps together: batch = samples x frames, at most render_batch.
        frames_per_batch = max(1, render_batch // num_samples)
        render_s = 0.0
        for batch_start in tqdm(range(0, num_frames, frames_per_batch), desc="render+encode", unit="batch",
                                disable=not progress):
            batch_motion = motions[:, batch_start:batch_start + frames_per_batch]  # [K,b,56]
            render_start = time.perf_counter()
            frames = render_motion(body, batch_motion.reshape(-1, batch_motion.shape[-1]))  # [K*b,H,W,3]
            render_s += time.perf_counter() - render_start
            frames = frames.reshape(num_samples, -1, *frames.shape[1:])  # [K,b,H,W,3]
            for k in range(num_samples):
                writers[k].write(frames[k])
            if num_samples > 1:
                writers[-1].write(tile_grid(frames))
        tail_start = time.perf_counter()
        for writer in writers:
            writer.close()
        encode_tail_s = time.perf_counter() - tail_start
        motion_and_plot_s = side_outputs.result()
    return OfflineReport(num_frames, num_samples, brain_s, render_s, encode_s=sum(w.busy_s for w in writers),
                         encode_tail_s=encode_tail_s, motion_and_plot_s=motion_and_plot_s, total_s=0.0)


def _stream_to(writer: VideoWriter, policy, body, speaker_audio, speaker_exp, *, seed: int, steps: int,
               realtime: bool, progress: bool, **stream_options) -> tuple[np.ndarray, StreamReport]:
    session = ListenerSession(policy, body, seed=seed, steps=steps, **stream_options)
    with tqdm(total=len(speaker_audio), desc="stream", unit="frame", disable=not progress) as bar:
        def on_frames(frames: np.ndarray) -> None:
            writer.write(frames)
            bar.update(len(frames))

        report = replay(session, speaker_audio, speaker_exp, on_frames, realtime=realtime)
    if report.num_frames != len(speaker_audio):
        raise RuntimeError(f"the stream emitted {report.num_frames} frames for a {len(speaker_audio)}-frame clip")
    return session.motion, report
