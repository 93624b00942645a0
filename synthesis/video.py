"""H.264 video out: an ffmpeg pipe fed from a writer thread, speaker audio muxed in, sample grids.

    with VideoWriter("out.mp4", width=512, height=512, fps=25, audio_path="speaker.wav") as video:
        for frames in batches:          # uint8 [B,H,W,3], numpy
            video.write(frames)         # returns at once; a thread feeds ffmpeg while the GPU renders on
    info = utils.media.probe_video("out.mp4")   # VideoInfo(num_frames=..., fps=25.0, has_audio=True, ...)

The ffmpeg binary is the one bundled with ``imageio-ffmpeg`` (it has libx264 and AAC), so no system
ffmpeg is needed; it is found, and files are probed, through ``utils.media`` as in data preparation.
Output is yuv420p at a constant 25 fps, which every common player reads. The writer writes exactly where
it is told: callers make the file atomic with ``utils.atomic.atomic_output``.
"""
from __future__ import annotations

import math
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from utils.flame import FPS
from utils.media import MediaError, ffmpeg_exe


class VideoError(MediaError):
    """ffmpeg refused a file or failed while encoding; the message carries ffmpeg's own words."""


def even_size(height: int, width: int) -> tuple[int, int]:
    """yuv420p stores colour at half resolution, so H.264 frames need even sides; odd sides get one padded row/column."""
    return height + height % 2, width + width % 2


class VideoWriter:
    """Encode uint8 RGB frames to an H.264 mp4 while the caller goes on producing them.

    ``write`` hands a batch to a bounded queue and returns; a thread pushes it into ffmpeg's stdin. The
    queue bound (``max_pending`` batches) keeps memory flat when rendering outruns encoding. ``audio_path``
    (any file ffmpeg reads, typically the speaker's wav) is cut to the video's length and encoded as AAC.
    ``num_frames`` lets the audio be cut without waiting for the last frame; without it the audio is
    cut by ffmpeg at the end of the video stream.
    """

    def __init__(self, path: str | os.PathLike, *, width: int, height: int, fps: int = FPS,
                 audio_path: str | os.PathLike | None = None, num_frames: int | None = None,
                 crf: int = 18, preset: str = "veryfast", max_pending: int = 8):
        self.path = Path(path)
        self.width, self.height = width, height
        self.encoded_height, self.encoded_width = even_size(height, width)
        self.fps = fps
        self.frames_written = 0
        self.busy_s = 0.0  # time the thread spent pushing frames into ffmpeg (overlaps the caller's work)
        self.batch_busy_s: list[float] = []  # the same, per written batch, in write order
        command = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.encoded_width}x{self.encoded_height}",
                   "-r", str(fps), "-i", "-"]
        if audio_path is not None:
            if num_frames is not None:
                command += ["-t", f"{num_frames / fps:.3f}"]
            command += ["-i", str(audio_path), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "128k"]
            if num_frames is None:
                command += ["-shortest"]
        command += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                    "-r", str(fps), "-movflags", "+faststart", str(self.path)]
        # ffmpeg's messages go to an anonymous temporary file: a pipe could fill up and stall the encoder.
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=self._stderr)
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._feed, name=f"video-writer:{self.path.name}", daemon=True)
        self._thread.start()
        self._closed = False

    def write(self, frames: np.ndarray) -> None:
        """Queue ``frames`` (uint8 ``[B,H,W,3]`` or ``[H,W,3]``) for encoding."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise ValueError(f"{self.path}: expected uint8 frames [B,{self.height},{self.width},3], "
                             f"got {frames.dtype} {list(frames.shape)}")
        if self._error is not None:
            raise VideoError(self._failure_message())
        if (self.encoded_height, self.encoded_width) != (self.height, self.width):
            frames = np.pad(frames, ((0, 0), (0, self.encoded_height - self.height),
                                     (0, self.encoded_width - self.width), (0, 0)))
        self._queue.put(np.ascontiguousarray(frames))
        self.frames_written += len(frames)

    def close(self) -> None:
        """Wait for every queued frame to be encoded and ffmpeg to finish; raise if it failed."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        try:
            self._process.stdin.close()
        except OSError:
            pass
        return_code = self._process.wait()
        try:
            if self._error is not None or return_code != 0:
                raise VideoError(self._failure_message(return_code))
        finally:
            self._stderr.close()

    def abort(self) -> None:
        """Stop ffmpeg without waiting for the queued frames (the caller deletes the partial file)."""
        if self._closed:
            return
        self._closed = True
        self._process.kill()
        while True:  # unblock the thread if it waits on a full queue or on the dead pipe
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join()
        self._process.wait()
        self._stderr.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _feed(self) -> None:
        while True:
            frames = self._queue.get()
            if frames is None:
                return
            if self._error is not None:
                continue  # keep draining so that write() never blocks forever
            start = time.perf_counter()
            try:
                self._process.stdin.write(frames.tobytes())
            except BaseException as exc:  # BrokenPipeError when ffmpeg died; reported by close()/write()
                self._error = exc
            self.batch_busy_s.append(time.perf_counter() - start)
            self.busy_s += self.batch_busy_s[-1]

    def _failure_message(self, return_code: int | None = None) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        log = self._stderr.read().decode(errors="replace").strip()
        status = f"exit code {return_code}" if return_code is not None else "it stopped reading frames"
        return f"{self.path}: ffmpeg failed ({status}): {log[-1500:] or self._error!r}"


def grid_shape(num_videos: int, max_columns: int = 4) -> tuple[int, int]:
    """Rows and columns for ``num_videos`` tiles: one row up to ``max_columns``, then as square as possible."""
    if num_videos < 1:
        raise ValueError("a grid needs at least one video")
    columns = num_videos if num_videos <= max_columns else math.ceil(math.sqrt(num_videos))
    return math.ceil(num_videos / columns), columns


def tile_grid(frames: np.ndarray, max_columns: int = 4) -> np.ndarray:
    """``[K,B,H,W,3]`` (K videos) -> ``[B, rows*H, cols*W, 3]`` side by side, empty cells black."""
    if frames.ndim != 5:
        raise ValueError(f"tile_grid expects [K,B,H,W,C], got {list(frames.shape)}")
    num_videos, batch, height, width, channels = frames.shape
    rows, columns = grid_shape(num_videos, max_columns)
    cells = np.zeros((rows * columns, batch, height, width, channels), dtype=frames.dtype)
    cells[:num_videos] = frames
    # [rows,cols,B,H,W,C] -> [B,rows,H,cols,W,C] -> [B, rows*H, cols*W, C]
    cells = cells.reshape(rows, columns, batch, height, width, channels).transpose(2, 0, 3, 1, 4, 5)
    return cells.reshape(batch, rows * height, columns * width, channels)
