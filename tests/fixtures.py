"""Small inputs in the real formats, for the tests (imported as ``fixtures``; pytest puts ``tests/`` on the path).

No ViCo, EMOCA or wav2vec2 weights can be downloaded on the development machines, so these writers
produce the same *formats* at toy sizes: a randomly initialised ``Wav2Vec2Model`` saved with
``save_pretrained`` (hidden size 768, one or two layers, a thin conv stack with the real strides), mp4/wav
files made by the bundled ffmpeg, EMOCA's per-frame ``<frame>_<detection>/exp.npy, pose.npy`` folders in the
folder tree its video demo writes, and a ViCo-style release (the release's CSV columns in their order,
``videos/``, ``audios/``). docs/DATA.md lists the sources each format was checked against.
"""
from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import numpy as np

from data_utils.media import write_wav
from utils.media import ffmpeg_exe
from utils.flame import AUDIO_DIM

EMOCA_MODEL_NAME = "EMOCA_v2_lr_mse_20"
EMOCA_RUN = "processed_2022_Jan_01_00-00-00"


def save_tiny_wav2vec(directory: str | Path, *, num_layers: int = 1, seed: int = 0) -> Path:
    """A random wav2vec2 with the real 20 ms stride / 25 ms receptive field but tiny conv channels."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(seed)
    config = Wav2Vec2Config(hidden_size=AUDIO_DIM, num_hidden_layers=num_layers, num_attention_heads=4,
                            intermediate_size=256, conv_dim=(32,) * 7, num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=16, feat_extract_norm="group", do_stable_layer_norm=False)
    model = Wav2Vec2Model(config).eval()
    directory = Path(directory)
    model.save_pretrained(directory)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(directory)
    return directory


def speech_like_audio(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Mono float32 ``[N]``: amplitude-modulated harmonics with noise, so features change over time."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    audio = 0.3 * envelope * voiced + 0.02 * rng.standard_normal(len(t))
    return (audio / np.abs(audio).max() * 0.8).astype(np.float32)


def write_stereo_wav(path: str | Path, seconds: float, sample_rate: int = 44100, seed: int = 0) -> Path:
    """A 16-bit stereo wav at a non-16k rate (what a recording usually is)."""
    from scipy.io import wavfile

    mono = speech_like_audio(seconds, sample_rate, seed)
    stereo = np.stack([mono, 0.5 * mono], axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, sample_rate, np.round(stereo * 32767).astype(np.int16))
    return path


def write_test_video(path: str | Path, *, num_frames: int, fps: float, size: tuple[int, int] = (64, 48),
                     audio_seconds: float | None = None) -> Path:
    """An H.264 mp4 of ffmpeg's moving test pattern with exactly ``num_frames`` frames (optionally a tone)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
           "-i", f"testsrc2=size={size[0]}x{size[1]}:rate={fps:g}"]
    if audio_seconds is not None:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=16000:duration={audio_seconds:g}",
                "-c:a", "aac"]
    cmd += ["-frames:v", str(num_frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def moving_disk_frames(num_frames: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[N,size,size,3]`` of a disk drifting over a static textured background, and its masks ``[N,size,size]``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    background = np.stack([96 + 60 * np.sin(xx / 5.0), 96 + 60 * np.cos(yy / 7.0), 128 + 0 * xx], -1)
    background = (background + rng.uniform(-10, 10, background.shape)).clip(0, 255)
    frames, masks = [], []
    for i in range(num_frames):
        cx = size * (0.4 + 0.2 * np.sin(2 * np.pi * i / max(num_frames, 1)))
        mask = (xx - cx) ** 2 + (yy - size * 0.45) ** 2 < (size * 0.22) ** 2
        frame = background.copy()
        frame[mask] = (230, 180, 150)
        frames.append(frame.astype(np.uint8))
        masks.append((mask * 255).astype(np.uint8))
    return np.stack(frames), np.stack(masks)


def write_frames_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """``[N,H,W,3]`` uint8 -> H.264 mp4 (near-lossless, so tests can compare pixels)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264", "-qp", "0",
           "-pix_fmt", "yuv444p", str(path)]
    subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), check=True, capture_output=True)
    return path


def smooth_codes(num_frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Plausible EMOCA-like ``exp [T,50]`` and ``pose [T,6]`` (small smooth rotations, radians)."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None]
    exp = 0.8 * np.sin(2 * np.pi * t / 45.0 + rng.uniform(0, 6.3, (1, 50))) * rng.uniform(0.2, 1.0, (1, 50))
    pose = 0.1 * np.sin(2 * np.pi * t / 60.0 + rng.uniform(0, 6.3, (1, 6)))
    pose[:, 3] = 0.1 + 0.08 * np.sin(2 * np.pi * t[:, 0] / 20.0)  # jaw opening stays positive
    return exp.astype(np.float32), pose.astype(np.float32)


def write_emoca_frames(results_dir: str | Path, exp: np.ndarray, pose: np.ndarray, *, missing=(),
                       cam: np.ndarray | None = None, crop: np.ndarray | None = None) -> Path:
    """EMOCA's per-frame layout: ``<results_dir>/<frame:06d>_000/{shape,exp,tex,pose,detail}.npy`` (1-based frames).

    What ``save_codes`` writes, at EMOCA's sizes (shape 100, exp 50, tex 50, pose 6, detail 128). Frames listed
    in ``missing`` (0-based) get no folder, as when the detector found no face.
    """
    results_dir = Path(results_dir)
    skip = set(int(i) for i in missing)
    for index in range(len(exp)):
        if index in skip:
            continue
        frame_dir = results_dir / f"{index + 1:06d}_000"
        frame_dir.mkdir(parents=True, exist_ok=True)
        np.save(frame_dir / "exp.npy", exp[index])
        np.save(frame_dir / "pose.npy", pose[index])
        for name, width in (("shape", 100), ("tex", 50), ("detail", 128)):  # unused by the readers
            np.save(frame_dir / f"{name}.npy", np.zeros(width, dtype=np.float32))
        if cam is not None:
            np.save(frame_dir / "cam.npy", cam[index])
        if crop is not None:
            np.save(frame_dir / "crop.npy", crop[index])
    return results_dir


def emoca_results_dir(emoca_root: str | Path, video_stem: str) -> Path:
    """Where EMOCA's video demo run with ``--output_folder <emoca_root>`` (a relative path) writes a video's codes.

    The demo appends the model name to the output folder, then ``processed_<date>/<stem>/results/<model>``.
    """
    return Path(emoca_root) / EMOCA_MODEL_NAME / EMOCA_RUN / video_stem / "results" / EMOCA_MODEL_NAME


def emoca_per_video_dir(emoca_root: str | Path, video_stem: str) -> Path:
    """The demo run with an absolute ``--output_folder <emoca_root>/<stem>``: codes in ``<stem>/<model>/`` (DIM's tree)."""
    return Path(emoca_root) / video_stem / EMOCA_MODEL_NAME


# The release's CSV columns, in its order (DIM's loaders read them by position: 0 attitude ... 6 data_split).
VICO_COLUMNS = ("attitude", "audio", "listener", "speaker", "listener_id", "speaker_id", "data_split")


def write_vico_fixture(root: str | Path, emoca_root: str | Path, clips: list[dict], *, fps: float = 30.0,
                       csv_name: str = "RLD_data.csv") -> Path:
    """A ViCo-style release with EMOCA outputs for every video.

    Each entry of ``clips``: ``name``, ``frames`` (at ``fps``), optional ``audio_seconds`` (default: the
    video's duration), ``data_split``, ``speaker_id``, ``listener_id``, ``attitude`` (default ``neutral``),
    ``listener_missing`` (0-based frames without a face), ``speaker_frames`` (default ``frames``), ``fps``
    (default ``fps``), ``seed``. Audio names end in two ``_`` fields after the conversation's name, as the
    release's do (the baseline's ``convert.py`` takes the part before them as the video id).
    """
    root = Path(root)
    rows = []
    for clip in clips:
        name, frames, seed = clip["name"], clip["frames"], clip.get("seed", 0)
        speaker_frames = clip.get("speaker_frames", frames)
        listener_stem, speaker_stem, audio_stem = f"{name}_listener", f"{name}_speaker", f"{name}_0_audio"
        clip_fps = clip.get("fps", fps)
        write_test_video(root / "videos" / f"{listener_stem}.mp4", num_frames=frames, fps=clip_fps)
        write_test_video(root / "videos" / f"{speaker_stem}.mp4", num_frames=speaker_frames, fps=clip_fps)
        seconds = clip.get("audio_seconds", speaker_frames / clip_fps)
        write_wav(root / "audios" / f"{audio_stem}.wav", speech_like_audio(seconds, 16000, seed), 16000)
        exp, pose = smooth_codes(frames, seed)
        write_emoca_frames(emoca_results_dir(emoca_root, listener_stem), exp, pose,
                           missing=clip.get("listener_missing", ()))
        speaker_exp, speaker_pose = smooth_codes(speaker_frames, seed + 1000)
        write_emoca_frames(emoca_results_dir(emoca_root, speaker_stem), speaker_exp, speaker_pose)
        rows.append({"listener": listener_stem, "speaker": speaker_stem, "audio": audio_stem,
                     "attitude": clip.get("attitude", "neutral"), "data_split": clip.get("data_split", "train"),
                     "speaker_id": clip.get("speaker_id", f"s_{name}"),
                     "listener_id": clip.get("listener_id", f"l_{name}")})
    with open(root / csv_name, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=VICO_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root


def remove_attitude_labels(corpus_root: str | Path) -> Path:
    """A dyadic corpus (DESIGN.md §3.1) made unlabelled in place, as a writer without attitudes leaves it: no
    ``labels.json``, no ``"attitudes"`` in ``meta.json``. Returns the root."""
    from brain.data import write_corpus_meta

    corpus_root = Path(corpus_root)
    for labels in corpus_root.glob("clips/*/labels.json"):
        labels.unlink()
    write_corpus_meta(corpus_root)
    return corpus_root


def train_tiny_body(subject_dir: str | Path, model_dir: str | Path, overrides: list[str]):
    """``configs/body_tiny.yaml`` with ``overrides`` trained on a test subject; returns (subject, loaded body)."""
    from scene.body import load_body
    from scene.subject import Subject
    from scene.training import BodyTrainingConfig, train
    from utils.config import load_config

    cfg = load_config(BodyTrainingConfig, "configs/body_tiny.yaml",
                      [f"subject={subject_dir}", f"model_dir={model_dir}", *overrides])
    train(cfg, progress=False)
    return Subject(subject_dir), load_body(model_dir)
