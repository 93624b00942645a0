"""Speaker in -> listener videos, motion and plots on disk, offline or as a replayed live stream.

    outputs, report = synthesize(policy, body, speaker_audio, speaker_exp, "out/listener.mp4",
                                 wav="speaker.wav", num_samples=3, seed=0)
    # from the speaker's waveform through a causal feature source, without the expression (audio only):
    outputs, report = synthesize(policy, body, samples, None, "out/live.mp4", audio_features=wav2vec,
                                 wav="speaker.wav", stream=True, realtime=True)

What one call writes (every file goes through ``utils.atomic.atomic_output`` and is renamed into place
only after all of them are complete; if anything fails, no file of the set appears):

| num_samples | videos                                        | motion                      | plot          |
|---|---|---|---|
| 1           | ``<stem>.mp4``                                | ``<stem>.npy`` ``[T,56]``   | ``<stem>.png`` |
| K > 1       | ``<stem>_s0.mp4`` ... ``<stem>_s{K-1}.mp4`` and ``<stem>_grid.mp4`` | ``<stem>.npy`` ``[K,T,56]`` | ``<stem>.png`` |

Offline, the waveform (if given) becomes features in one pass of the same causal extractor the live path
uses, the brain samples the whole clip (the policy's streaming loop, one chunk per progress step), then
the body renders it in batches of ``render_batch`` frames (all samples of a time step in one batch)
while a writer thread per video feeds ffmpeg, so encoding overlaps rendering, and another thread writes
the motion and the plot. ``stream=True`` instead replays the clip through a
:class:`synthesis.session.ListenerSession` (features chunk by chunk, or audio in 10 ms blocks) and
writes frames as the session emits them.
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
from synthesis.session import ListenerSession, StreamReport, audio_only_guidance, replay, replay_audio
from synthesis.video import VideoWriter, grid_shape, tile_grid
from utils.atomic import atomic_output
from utils.errors import InputError, UsageError
from utils.flame import SPEAKER_EXP_DIM
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
    features_s: float  # raw audio -> features (0 when features were given)
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
        features = f"features {self.features_s:.2f} s, " if self.features_s else ""
        return (f"offline: {self.num_samples} sample(s) x {self.num_frames} frames in {self.total_s:.2f} s "
                f"({self.fps:.1f} fps): {features}brain {self.brain_s:.2f} s, render {self.render_s:.2f} s, "
                f"encode {self.encode_s:.2f} s overlapped + {self.encode_tail_s:.2f} s tail, "
                f"motion + plot {self.motion_and_plot_s:.2f} s overlapped")


def brain_options(policy, *, with_speaker_exp: bool, guidance_audio: float | None = None,
                  guidance_speaker_exp: float | None = None, attitude: str | None = None,
                  intensity: float | None = None, guidance_attitude: float | None = None,
                  guidance_history: float | None = None) -> dict:
    """The keyword arguments for ``policy.stream``: guidance (the audio-only branch without the speaker's
    expression) and, when asked for, attitude, intensity and the attitude and history guidance scales (None:
    the checkpoint's). Refusals (an audio-only request the brain cannot serve, an attitude it does not know)
    raise ``ValueError`` here, before anything is rendered."""
    if not with_speaker_exp:
        guidance_speaker_exp = audio_only_guidance(policy, guidance_speaker_exp)
    options = {"guidance_audio": guidance_audio, "guidance_speaker_exp": guidance_speaker_exp}
    asked = {"attitude": attitude, "intensity": intensity, "guidance_attitude": guidance_attitude,
             "guidance_history": guidance_history}
    options.update({name: value for name, value in asked.items() if value is not None})
    policy.stream(num_samples=1, **options)  # the policy's own checks (attitude names, guidance)
    return options


def synthesize(policy, body, speaker_audio: np.ndarray, speaker_exp: np.ndarray | None,
               output: str | os.PathLike, *, audio_features=None, wav: str | os.PathLike | None = None,
               num_samples: int = 1, seed: int = 0, steps: int | None = None, guidance_audio: float | None = None,
               guidance_speaker_exp: float | None = None, attitude: str | None = None,
               intensity: float | None = None, guidance_attitude: float | None = None,
               guidance_history: float | None = None, stream: bool = False, realtime: bool = False,
               render_batch: int = 32, progress: bool = True) -> tuple[SynthesisOutputs, OfflineReport | StreamReport]:
    """Write the listener video(s), motion and plot for one speaker clip (see the module docstring).

    ``speaker_audio`` is ``[T,768]`` features, or with ``audio_features`` (a causal feature source, see
    :class:`synthesis.session.ListenerSession`) the raw waveform ``[N]`` at its sample rate: offline it is
    turned into features in one pass, streamed it is played in as live audio. ``speaker_exp`` ``[T,50]``,
    or None for the audio-only branch. Features and expression must already be checked
    (``brain.data.check_speaker_inputs``). ``T`` is the expression's length, else the audio's whole frames.
    ``wav`` is muxed into every video.
    """
    if num_samples < 1:
        raise InputError(f"num_samples must be at least 1, got {num_samples}")
    if stream and num_samples != 1:
        raise InputError("--stream drives one live listener; use num_samples=1")
    outputs = SynthesisOutputs.for_output(output, num_samples)
    options = brain_options(policy, with_speaker_exp=speaker_exp is not None, guidance_audio=guidance_audio,
                            guidance_speaker_exp=guidance_speaker_exp, attitude=attitude, intensity=intensity,
                            guidance_attitude=guidance_attitude, guidance_history=guidance_history)
    if speaker_exp is not None:
        num_frames = len(speaker_exp)
    elif audio_features is not None:
        num_frames = audio_features.frames_in(len(speaker_audio))
    else:
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
        steps_label = "the checkpoint's" if steps is None else str(steps)
        title = f"{outputs.motion.stem}: seed {seed}, {steps_label} steps" + (", streamed" if stream else "")

        def save_motion_and_plot(motions: np.ndarray) -> float:
            """``motions [K,T,56]`` -> ``<stem>.npy`` and ``<stem>.png``; returns the seconds it took."""
            save_start = time.perf_counter()
            with open(motion_temp, "wb") as handle:
                np.save(handle, motions[0] if num_samples == 1 else motions)
            plot_motion_curves(plot_temp, dict(zip(labels, motions)), speaker_exp=speaker_exp, title=title)
            return time.perf_counter() - save_start

        if stream:
            session = ListenerSession(policy, body, audio_features=audio_features,
                                      with_speaker_exp=speaker_exp is not None, seed=seed, steps=steps, **options)
            report = _stream_to(writers[0], session, speaker_audio, speaker_exp, num_frames,
                                realtime=realtime, progress=progress)
            save_motion_and_plot(session.motion[None])
        else:
            features_s = 0.0
            if audio_features is not None:
                features_start = time.perf_counter()
                speaker_audio = audio_features.extract(speaker_audio, num_frames)
                features_s = time.perf_counter() - features_start
            if speaker_exp is None:
                speaker_exp = np.zeros((num_frames, SPEAKER_EXP_DIM), np.float32)  # never read: audio-only
            report = _offline_to(writers, policy, body, speaker_audio, speaker_exp, save_motion_and_plot,
                                 seed=seed, steps=steps, num_samples=num_samples, render_batch=render_batch,
                                 progress=progress, **options)
            report.features_s = features_s
    if isinstance(report, OfflineReport):
        report.total_s = time.perf_counter() - start
    return outputs, report


def sample_motion(policy, speaker_audio: np.ndarray, speaker_exp: np.ndarray, *, num_samples: int,
                  progress: bool = True, **stream_options) -> np.ndarray:
    """``policy.generate`` with a progress bar: the same streaming loop, pushed one chunk at a time."""
    stream = policy.stream(num_samples=num_samples, **stream_options)
    chunk = policy.chunk_frames
    pieces = [stream.push(speaker_audio[start:start + chunk], speaker_exp[start:start + chunk])
              for start in tqdm(range(0, len(speaker_audio), chunk), desc="brain", unit="chunk",
                                disable=not progress)]
    return np.concatenate([*pieces, stream.flush()], axis=1)  # [K,T,56]


def _offline_to(writers: list[VideoWriter], policy, body, speaker_audio, speaker_exp, save_motion_and_plot, *,
                num_samples: int, render_batch: int, progress: bool, **stream_options) -> OfflineReport:
    brain_start = time.perf_counter()
    motions = sample_motion(policy, speaker_audio, speaker_exp, num_samples=num_samples, progress=progress,
                            **stream_options)  # [K,T,56]
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
    return OfflineReport(num_frames, num_samples, features_s=0.0, brain_s=brain_s, render_s=render_s,
                         encode_s=sum(w.busy_s for w in writers), encode_tail_s=encode_tail_s,
                         motion_and_plot_s=motion_and_plot_s, total_s=0.0)


def _stream_to(writer: VideoWriter, session: ListenerSession, speaker_audio, speaker_exp, num_frames: int, *,
               realtime: bool, progress: bool) -> StreamReport:
    if realtime:  # on the real clock the first chunk must not pay graph capture and compilation
        session.warm_up()
    with tqdm(total=num_frames, desc="stream", unit="frame", disable=not progress) as bar:
        def on_frames(frames: np.ndarray) -> None:
            writer.write(frames)
            bar.update(len(frames))

        if session.audio_features is not None:
            report = replay_audio(session, speaker_audio, speaker_exp, on_frames, realtime=realtime)
        else:
            report = replay(session, speaker_audio, speaker_exp, on_frames, realtime=realtime)
    writer.close()
    report.encode_s = np.array(writer.batch_busy_s)
    if report.num_frames != num_frames:
        raise RuntimeError(f"the stream emitted {report.num_frames} frames for a {num_frames}-frame clip")
    return report
