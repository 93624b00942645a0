"""Probing media files with the ffmpeg binary that ships with ``imageio-ffmpeg``: one place for all of it.

    info = probe_video("out.mp4")    # VideoInfo(fps=25.0, width=512, height=512, num_frames=1500, ...)
    seconds = probe_audio("speaker.wav")

Data preparation (``data_utils``) and synthesis (``synthesis``) both find ffmpeg, read its header and
count frames through this module. Every failure is a :class:`MediaError` naming the file, so a caller
refuses a clip with a readable reason instead of a traceback from a subprocess.
"""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from utils.errors import InputError


class MediaError(InputError):
    """A media file that is missing, unreadable, or not what the caller needs."""


def ffmpeg_exe() -> str:
    """Path of the bundled ffmpeg binary (it has libx264 and AAC; no system ffmpeg is needed)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float
    width: int
    height: int
    num_frames: int  # counted by demuxing the whole stream, not estimated from the header
    duration_s: float  # seconds, from the container header (its longest stream)
    video_codec: str  # e.g. "h264"
    pixel_format: str  # e.g. "yuv420p"
    audio_codec: str | None  # None when the file has no audio stream
    audio_sample_rate: int | None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None


_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #[^\n]*Video: (\w+)[^,\n]*, (\w+)[^\n]*?(\d{2,5})x(\d{2,5})[^\n]*")
_FPS = re.compile(r"([\d.]+)\s*fps")
_TBR = re.compile(r"([\d.]+)\s*tbr")
_AUDIO = re.compile(r"Stream #[^\n]*Audio: (\w+)[^\n]*?(\d+)\s*Hz")
_AUDIO_STREAM = re.compile(r"Stream #[^\n]*Audio:")


def run_ffmpeg(args: list[str], path: str | os.PathLike) -> subprocess.CompletedProcess:
    """``ffmpeg -hide_banner -nostdin <args>`` with its output captured; a binary that cannot start is a MediaError."""
    try:
        return subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True, check=False)
    except OSError as exc:
        raise MediaError(f"{path}: could not run ffmpeg ({exc})") from exc


def require_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    return path


def ffmpeg_header(path: str | os.PathLike) -> str:
    """What ``ffmpeg -i`` prints about a file's container and streams (it exits 1 without an output file)."""
    path = require_file(path)
    return run_ffmpeg(["-i", str(path)], path).stderr.decode("utf-8", "replace")


def header_duration(header: str) -> float | None:
    """The container duration in seconds from :func:`ffmpeg_header`'s text; None when it names none."""
    match = _DURATION.search(header)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, size, codecs, exact frame count and duration of a video file."""
    path = require_file(path)
    header = ffmpeg_header(path)
    video = _VIDEO.search(header)
    if video is None:
        raise MediaError(f"{path}: unreadable media or no video stream (ffmpeg: {last_line(header)})")
    fps_match = _FPS.search(video.group(0)) or _TBR.search(video.group(0))
    if fps_match is None:
        raise MediaError(f"{path}: the video stream declares no frame rate")
    audio = _AUDIO.search(header)
    # One framecrc line per video packet (one packet per frame in our mp4s), '#' lines are its header. The
    # "frame=" progress counter is not a contract: ffmpeg 7.0's stream copy prints none.
    counted = run_ffmpeg(["-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"], path)
    packets = [line for line in counted.stdout.decode("utf-8", "replace").splitlines() if line and line[0] != "#"]
    if counted.returncode != 0:
        raise MediaError(f"{path}: could not count the video frames (ffmpeg: {last_line(counted.stderr)})")
    return VideoInfo(path, fps=float(fps_match.group(1)), width=int(video.group(3)), height=int(video.group(4)),
                     num_frames=len(packets), duration_s=header_duration(header) or 0.0, video_codec=video.group(1),
                     pixel_format=video.group(2), audio_codec=audio.group(1) if audio else None,
                     audio_sample_rate=int(audio.group(2)) if audio else None)


def probe_audio(path: str | os.PathLike) -> float:
    """Duration in seconds of a file with an audio stream; a MediaError when there is none or ffmpeg cannot read it."""
    path = require_file(path)
    header = ffmpeg_header(path)
    if _AUDIO_STREAM.search(header) is None:
        raise MediaError(f"{path}: no readable audio stream ({last_line(header)})")
    duration = header_duration(header)
    if duration is None:
        raise MediaError(f"{path}: ffmpeg reports no duration for this audio file")
    return duration


def last_line(stderr: bytes | str) -> str:
    """The last non-empty line of ffmpeg's messages: usually the reason it failed."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"

