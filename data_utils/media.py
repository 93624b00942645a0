"""Decoding and writing media for data preparation, with the ffmpeg binary that ships with ``imageio-ffmpeg``.

Decodes video frames (optionally resampled in time, cropped and resized) and audio (mono float32 at any
sample rate), and writes 16-bit PCM wav files. Probing a file (frame rate, size, frame count, duration)
lives in ``utils.media``, shared with synthesis. Every failure is a :class:`utils.media.MediaError`
naming the file.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from utils.atomic import atomic_output
from utils.media import MediaError, ffmpeg_exe, last_line, probe_video, require_file, run_ffmpeg


def read_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream of any media file to mono float32 ``[N]`` in [-1, 1] at ``sample_rate``.

    Channels are averaged and ffmpeg's resampler converts the rate, so wav files at 44.1/48 kHz and the
    audio track of an mp4 are read the same way.
    """
    path = require_file(path)
    result = run_ffmpeg(["-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(sample_rate),
                         "-f", "f32le", "-"], path)
    if result.returncode != 0:
        raise MediaError(f"{path}: unreadable audio or no audio stream (ffmpeg: {last_line(result.stderr)})")
    audio = np.frombuffer(result.stdout, dtype="<f4").astype(np.float32)
    if audio.size == 0:
        raise MediaError(f"{path}: the audio stream holds no samples")
    if not np.isfinite(audio).all():
        raise MediaError(f"{path}: the decoded audio contains NaN/Inf samples")
    return audio


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = 16000) -> None:
    """Write mono float audio (``[N]``, [-1, 1]) as 16-bit PCM wav, atomically."""
    from scipy.io import wavfile

    pcm = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    with atomic_output(path) as tmp:
        wavfile.write(tmp, sample_rate, np.round(pcm * 32767.0).astype(np.int16))


@dataclass(frozen=True)
class CropBox:
    """A pixel rectangle of the source frame: left ``x``, top ``y``, width ``w``, height ``h``."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def centre_square(cls, width: int, height: int) -> "CropBox":
        side = min(width, height)
        return cls((width - side) // 2, (height - side) // 2, side, side)

    @classmethod
    def parse(cls, text: str) -> "CropBox":
        """``"x,y,w,h"`` -> CropBox (used by CLIs)."""
        parts = text.split(",")
        if len(parts) != 4 or not all(p.strip().lstrip("-").isdigit() for p in parts):
            raise ValueError(f"crop {text!r} is not of the form x,y,w,h (integers, pixels)")
        return cls(*(int(p) for p in parts))

    def check_inside(self, width: int, height: int, source: str) -> None:
        if self.x < 0 or self.y < 0 or self.w <= 0 or self.h <= 0 or self.x + self.w > width or self.y + self.h > height:
            raise MediaError(f"{source}: crop {self} does not fit inside the {width}x{height} frame")


def iter_video_frames(path: str | os.PathLike, *, fps: float | None = None, crop: CropBox | None = None,
                      size: tuple[int, int] | None = None, gray: bool = False) -> Iterator[np.ndarray]:
    """Yield decoded frames as uint8 ``[H,W,3]`` (``[H,W]`` with ``gray=True``).

    ``fps`` resamples the stream in time with ffmpeg's ``fps`` filter (each output frame is the source
    frame nearest its timestamp, as ffmpeg itself converts 30 to 25 fps); ``crop`` then cuts a source
    rectangle and ``size=(W,H)`` resizes it with area averaging.
    """
    path = require_file(path)
    info = probe_video(path)
    out_w, out_h = (crop.w, crop.h) if crop else (info.width, info.height)
    filters = []
    if fps is not None:
        filters.append(f"fps={fps:g}")
    if crop is not None:
        crop.check_inside(info.width, info.height, str(path))
        filters.append(f"crop={crop.w}:{crop.h}:{crop.x}:{crop.y}")
    if size is not None:
        out_w, out_h = size
        filters.append(f"scale={out_w}:{out_h}:flags=area")
    channels = 1 if gray else 3
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0"]
    if filters:
        cmd += ["-vf", ",".join(filters)]
    cmd += ["-f", "rawvideo", "-pix_fmt", "gray" if gray else "rgb24", "-"]
    frame_bytes = out_w * out_h * channels
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while True:
            buffer = process.stdout.read(frame_bytes)
            if not buffer:
                break
            if len(buffer) < frame_bytes:
                raise MediaError(f"{path}: truncated frame in the decoded stream")
            frame = np.frombuffer(buffer, dtype=np.uint8)
            yield frame.reshape(out_h, out_w) if gray else frame.reshape(out_h, out_w, 3)
        process.wait()
        if process.returncode != 0:
            raise MediaError(f"{path}: ffmpeg failed while decoding ({last_line(process.stderr.read())})")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
