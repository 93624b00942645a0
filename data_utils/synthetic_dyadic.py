"""A synthetic dyadic corpus (DESIGN.md §3.1): speakers who talk, pause and smile; listeners who react.

    python -m data_utils.synthetic_dyadic --out data/synthetic_dyadic --clips 200 --seconds 60 --seed 0 [--wav]

or from Python ``write_synthetic_corpus(out, clips=200, seconds=60, seed=0)``. The same arguments give the
same bytes; the folder appears only when complete.

No real dyadic data (ViCo, EMOCA codes, wav2vec2 weights) can be downloaded here, so Stage 2 is trained,
tested and benchmarked on this world. It is built so that a listener model has something to learn and
several plausible answers to give.

**The world** (fixed projections drawn once from ``WORLD_SEED``, shared by every corpus of any seed):

Speaker, per clip
  * *turns*: speech segments of 1.5–5 s alternate with pauses of 0.6–2.2 s;
  * *prosody*: while speaking, a syllable rhythm of 3.5–6 Hz, a slowly varying energy in [0.4, 1] and a
    smooth pitch contour; every edge is eased over ~0.1 s;
  * *smiles*: Poisson events (one per ~10 s) lasting 1–3 s with amplitude 0.8–1.8, occasionally laughing
    (the smile also shows in the audio while speaking);
  * *brows* follow emphasis (high pitch while speaking); *blinks* come every ~3.5 s;
  * ``speaker_exp [T,50]``: smile, brow and eye-close on the dims named in
    :mod:`data_utils.synthetic_semantics`; the remaining 47 dims are a fixed random mixing of mouth motion
    (energy × syllables), energy, smile, brow and two idle factors, plus noise 0.02;
  * ``speaker_audio [T,768]``: a fixed random projection of the latent signals (speaking, energy,
    mouth motion, pitch, laughter, two voice-quality factors) plus a fixed bias and Gaussian noise 0.3 — a
    stand-in for wav2vec2 hidden states, which carry prosody linearly decodable.

Listener, reacting stochastically and with lags
  * *nods*: after a pause onset that follows ≥ 1 s of speech, a nod with probability 0.65, starting
    0.15–0.7 s later: one or two down-up cycles of 1.5–2.5 Hz, 0.06–0.15 rad on head pitch; plus rare
    backchannel nods while the speaker talks (one per ~12 s);
  * *brow raise*: at a pause onset that got no nod, with probability 0.5, 0.4–1.0 after 0.2–0.6 s;
  * *smile mirroring*: each speaker smile is mirrored with probability 0.7, after 0.3–1.2 s, at 0.5–1.1
    of its amplitude and 0.7–1.3 of its duration; rare spontaneous smiles (one per ~40 s);
  * *blinks*: every ~4 s, and at a nod's start with probability 0.5 (pulses of 0.15–0.25 s towards 1);
  * *idle sway*: slow smooth yaw (±0.08 rad), roll (±0.04) and pitch drift (±0.03); the jaw rests
    slightly open and opens a little more during nods ("mm-hm");
  * the other 47 expression dims and the two minor jaw axes are a fixed random mixing of smile, brow,
    nodding, blink and three idle factors (the expression dims also get noise 0.02), so all 56 dims vary
    like real EMOCA codes.

So one speaker input has many listener futures: whether and when a nod or smile comes is random, and the
idle motion never repeats. ``clips/<id>/events.json`` records the latent event times (speaker pause and
smile onsets, listener nods and smiles) for evaluations that want them; ``--wav`` adds a buzzy
``speaker.wav`` voiced from the same energy and pitch, for muxing into videos.
"""
from __future__ import annotations

import argparse
import sys
import wave
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from brain.data import write_corpus_meta
from data_utils import synthetic_semantics as sem
from utils.atomic import atomic_output, save_json
from utils.cli import check_output_path, cli_main
from utils.errors import UsageError
from utils.flame import AUDIO_DIM, EXP, FLAME_DIM, FPS, JAW, SPEAKER_EXP_DIM

WORLD_SEED = 20240607  # the fixed projections and mixings; corpora of every seed share this world
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, val, test
WAV_RATE = 16000

SPEAKER_FACTORS = ("mouth", "energy", "smile", "brow", "idle_a", "idle_b")
AUDIO_FACTORS = ("speaking", "energy", "mouth", "pitch", "laughter", "voice_a", "voice_b")
LISTENER_FACTORS = ("smile", "brow", "nodding", "blink", "idle_a", "idle_b", "idle_c")


class SyntheticWorld:
    """The fixed projections: speaker factors → 47 exp dims, audio factors → 768, listener factors → 49."""

    def __init__(self, seed: int = WORLD_SEED):
        rng = np.random.default_rng(seed)
        subtle = sem.SUBTLE_EXP.stop - sem.SUBTLE_EXP.start
        self.speaker_mixing = rng.normal(0.0, 0.35, (len(SPEAKER_FACTORS), subtle))
        self.audio_projection = rng.normal(0.0, 1.0, (len(AUDIO_FACTORS), AUDIO_DIM))
        self.audio_bias = rng.normal(0.0, 0.5, AUDIO_DIM)
        self.listener_mixing = rng.normal(0.0, 0.3, (len(LISTENER_FACTORS), subtle))
        self.listener_jaw_mixing = rng.normal(0.0, 0.02, (len(LISTENER_FACTORS), 2))


def _smooth_noise(rng, frames: int, sigma_s: float) -> np.ndarray:
    """Unit-std low-pass noise ``[frames]`` with a Gaussian kernel of ``sigma_s`` seconds."""
    pad = int(4 * sigma_s * FPS) + 1
    noise = gaussian_filter1d(rng.standard_normal(frames + 2 * pad), sigma_s * FPS)[pad:pad + frames]
    return noise / (noise.std() + 1e-8)


def _bump(frames: int, start: float, duration: float, attack: float = 0.25) -> np.ndarray:
    """A smooth plateau ``[frames]`` from ``start`` for ``duration`` seconds, raised-cosine edges."""
    t = np.arange(frames) / FPS - start
    edge = max(1e-3, min(attack, duration / 2))
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / edge, 0, 1))
    fall = 0.5 - 0.5 * np.cos(np.pi * np.clip((duration - t) / edge, 0, 1))
    return rise * fall


def _poisson_times(rng, seconds: float, mean_interval: float) -> np.ndarray:
    count = rng.poisson(seconds / mean_interval)
    return np.sort(rng.uniform(0, seconds, count))


def _blinks(rng, frames: int, times) -> np.ndarray:
    eye = np.zeros(frames)
    for time in times:
        eye = np.maximum(eye, _bump(frames, time, rng.uniform(0.15, 0.25), attack=0.08))
    return eye


def _nod(frames: int, start: float, cycles: int, frequency: float, amplitude: float) -> np.ndarray:
    """Head pitch ``[frames]``: ``cycles`` down-up movements (positive is face down)."""
    tau = np.arange(frames) / FPS - start
    inside = (tau >= 0) & (tau <= cycles / frequency)
    return amplitude * inside * 0.5 * (1 - np.cos(2 * np.pi * frequency * tau))


def _speaker_turns(rng, frames: int) -> np.ndarray:
    """Speaking indicator ``[frames]`` of alternating speech and pause segments."""
    speaking = np.zeros(frames)
    t, talking = 0.0, bool(rng.random() < 0.7)
    seconds = frames / FPS
    while t < seconds:
        length = rng.uniform(1.5, 5.0) if talking else rng.uniform(0.6, 2.2)
        if talking:
            speaking[int(t * FPS):int(min(seconds, t + length) * FPS)] = 1.0
        t += length
        talking = not talking
    return speaking


def synthesize_clip(rng: np.random.Generator, world: SyntheticWorld, frames: int) -> dict:
    """One clip: ``speaker_audio [T,768]``, ``speaker_exp [T,50]``, ``listener [T,56]``, events, voice curves."""
    seconds = frames / FPS
    speaking = _speaker_turns(rng, frames)
    speaking_eased = gaussian_filter1d(speaking, 0.05 * FPS)
    syllable_rate = 3.5 + 2.5 * rng.random()
    syllable_phase = 2 * np.pi * np.cumsum(syllable_rate * (1 + 0.15 * _smooth_noise(rng, frames, 0.5))) / FPS
    syllables = 0.5 + 0.5 * np.sin(syllable_phase)
    energy = speaking_eased * (0.7 + 0.3 * np.tanh(_smooth_noise(rng, frames, 1.0)))
    mouth = energy * syllables
    pitch = _smooth_noise(rng, frames, 0.6)

    smile_onsets, smile_amplitudes, smile_durations = [], [], []
    speaker_smile = np.zeros(frames)
    for onset in _poisson_times(rng, seconds, 10.0):
        duration, amplitude = rng.uniform(1.0, 3.0), rng.uniform(0.8, 1.8)
        speaker_smile = np.maximum(speaker_smile, amplitude * _bump(frames, onset, duration))
        smile_onsets.append(float(onset))
        smile_amplitudes.append(amplitude)
        smile_durations.append(duration)
    speaker_brow = 0.6 * np.maximum(pitch, 0) * speaking_eased + 0.05 * _smooth_noise(rng, frames, 0.3)
    speaker_eye = _blinks(rng, frames, _poisson_times(rng, seconds, 3.5))
    laughter = speaker_smile * speaking_eased * (0.5 + 0.5 * syllables)

    speaker_factors = np.stack([mouth, energy, speaker_smile, speaker_brow,
                                _smooth_noise(rng, frames, 1.5), _smooth_noise(rng, frames, 3.0)], axis=1)
    speaker_exp = np.zeros((frames, SPEAKER_EXP_DIM))
    speaker_exp[:, sem.SMILE] = speaker_smile
    speaker_exp[:, sem.BROW_RAISE] = speaker_brow
    speaker_exp[:, sem.EYE_CLOSE] = speaker_eye
    speaker_exp[:, sem.SUBTLE_EXP] = speaker_factors @ world.speaker_mixing
    speaker_exp += 0.02 * rng.standard_normal(speaker_exp.shape)

    audio_factors = np.stack([speaking_eased, energy, mouth, pitch * speaking_eased, laughter,
                              _smooth_noise(rng, frames, 2.0), _smooth_noise(rng, frames, 4.0)], axis=1)
    speaker_audio = audio_factors @ world.audio_projection + world.audio_bias
    speaker_audio += 0.3 * rng.standard_normal(speaker_audio.shape)

    # Listener reactions. A pause onset counts when at least one second of speech precedes it.
    starts = np.nonzero(np.diff(speaking) < 0)[0] + 1
    pause_onsets = [s / FPS for s in starts if speaking[max(0, s - FPS):s].mean() > 0.99]
    pitch_nods, nodding, listener_brow = np.zeros(frames), np.zeros(frames), np.zeros(frames)
    nod_times, blink_times = [], list(_poisson_times(rng, seconds, 4.0))
    backchannels = [t for t in _poisson_times(rng, seconds, 12.0) if speaking[min(frames - 1, int(t * FPS))]]
    for onset in pause_onsets:
        if rng.random() < 0.65:
            nod_times.append(onset + rng.uniform(0.15, 0.7))
        elif rng.random() < 0.5:
            listener_brow += rng.uniform(0.4, 1.0) * _bump(frames, onset + rng.uniform(0.2, 0.6), rng.uniform(0.6, 1.2))
    for start in sorted(nod_times + backchannels):
        cycles, frequency = int(rng.integers(1, 3)), rng.uniform(1.5, 2.5)
        pitch_nods += _nod(frames, start, cycles, frequency, rng.uniform(0.06, 0.15))
        nodding = np.maximum(nodding, _bump(frames, start, cycles / frequency, attack=0.1))
        if rng.random() < 0.5:
            blink_times.append(start)

    listener_smile = np.zeros(frames)
    mirrored = []
    for onset, amplitude, duration in zip(smile_onsets, smile_amplitudes, smile_durations):
        if rng.random() < 0.7:
            start = onset + rng.uniform(0.3, 1.2)
            listener_smile = np.maximum(listener_smile, rng.uniform(0.5, 1.1) * amplitude
                                        * _bump(frames, start, duration * rng.uniform(0.7, 1.3)))
            mirrored.append(float(start))
    for start in _poisson_times(rng, seconds, 40.0):
        listener_smile = np.maximum(listener_smile, rng.uniform(0.4, 0.9) * _bump(frames, start, rng.uniform(1, 2.5)))
    listener_brow += 0.3 * listener_smile
    listener_eye = _blinks(rng, frames, blink_times)

    idle = [_smooth_noise(rng, frames, s) for s in (1.0, 2.0, 4.0)]
    listener = np.zeros((frames, FLAME_DIM))
    listener[:, sem.SMILE] = listener_smile
    listener[:, sem.BROW_RAISE] = listener_brow
    listener[:, sem.EYE_CLOSE] = listener_eye
    listener_factors = np.stack([listener_smile, listener_brow, nodding, listener_eye, *idle], axis=1)
    listener[:, sem.SUBTLE_EXP] = listener_factors @ world.listener_mixing
    listener[:, sem.HEAD_PITCH] = pitch_nods + 0.03 * _smooth_noise(rng, frames, 2.5)
    listener[:, sem.HEAD_YAW] = 0.08 * _smooth_noise(rng, frames, 2.0)
    listener[:, sem.HEAD_ROLL] = 0.04 * _smooth_noise(rng, frames, 2.5) + 0.03 * listener_smile
    listener[:, sem.JAW_OPEN] = np.clip(0.03 + 0.05 * nodding + 0.01 * _smooth_noise(rng, frames, 0.8), 0, None)
    listener[:, sem.JAW_OPEN + 1:JAW.stop] = listener_factors @ world.listener_jaw_mixing
    listener[:, EXP] += 0.02 * rng.standard_normal((frames, EXP.stop - EXP.start))

    events = {"speaker_pause_onsets": [round(t, 3) for t in pause_onsets],
              "speaker_smile_onsets": [round(t, 3) for t in smile_onsets],
              "listener_nods": [round(float(t), 3) for t in sorted(nod_times + backchannels)],
              "listener_smiles": [round(t, 3) for t in mirrored]}
    return {"speaker_audio": speaker_audio.astype(np.float32), "speaker_exp": speaker_exp.astype(np.float32),
            "listener": listener.astype(np.float32), "events": events,
            "voice": {"energy": energy * (0.6 + 0.4 * syllables), "pitch": pitch}}


def _write_wav(path: Path, energy: np.ndarray, pitch: np.ndarray) -> None:
    """A buzzy voice: a few harmonics of a 110–160 Hz pitch contour, loud where ``energy`` is."""
    samples = int(len(energy) * WAV_RATE / FPS)
    frame_time = np.arange(len(energy)) / FPS
    sample_time = np.arange(samples) / WAV_RATE
    f0 = np.interp(sample_time, frame_time, 130.0 * 2 ** (0.15 * pitch))
    loudness = np.interp(sample_time, frame_time, energy)
    phase = 2 * np.pi * np.cumsum(f0) / WAV_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 6)) * loudness
    pcm = (np.clip(voice / 2.5, -1, 1) * 32000).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(WAV_RATE)
        handle.writeframes(pcm.tobytes())


def split_clip_ids(clip_ids: list[str]) -> dict[str, list[str]]:
    """80/10/10 split in order; val and test get at least one clip each."""
    count = len(clip_ids)
    n_val = max(1, round(count * SPLIT_FRACTIONS[1]))
    n_test = max(1, round(count * SPLIT_FRACTIONS[2]))
    n_train = count - n_val - n_test
    return {"train": clip_ids[:n_train], "val": clip_ids[n_train:n_train + n_val],
            "test": clip_ids[n_train + n_val:]}


def write_synthetic_corpus(out: str | Path, clips: int = 200, seconds: float = 60.0, seed: int = 0, *,
                           wav: bool = False, progress: bool = False) -> Path:
    """Write a §3.1 corpus of ``clips`` clips of ``seconds`` each to ``out`` (replaced atomically)."""
    if clips < 3:
        raise UsageError(f"--clips must be at least 3 (one each for train, val and test), got {clips}")
    frames = int(round(seconds * FPS))
    if frames < 2 * FPS:
        raise UsageError(f"--seconds must be at least 2, got {seconds}")
    world = SyntheticWorld()
    clip_ids = [f"clip_{index:04d}" for index in range(clips)]
    indices = range(clips)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="synthetic dyadic corpus", unit="clip")
    with atomic_output(out, directory=True) as tmp:
        write_corpus_meta(tmp)
        for index in indices:
            clip = synthesize_clip(np.random.default_rng([seed, index]), world, frames)
            clip_dir = tmp / "clips" / clip_ids[index]
            clip_dir.mkdir(parents=True)
            for name in ("speaker_audio", "speaker_exp", "listener"):
                np.save(clip_dir / f"{name}.npy", clip[name])
            save_json(clip_dir / "events.json", clip["events"])
            if wav:
                _write_wav(clip_dir / "speaker.wav", clip["voice"]["energy"], clip["voice"]["pitch"])
        (tmp / "splits").mkdir()
        for split, ids in split_clip_ids(clip_ids).items():
            (tmp / "splits" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return Path(out)


@cli_main("data_utils.synthetic_dyadic")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="data_utils.synthetic_dyadic", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="corpus folder to write (replaced when complete)")
    parser.add_argument("--clips", type=int, default=200, help="number of clips (80/10/10 train/val/test)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each clip in seconds")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--wav", action="store_true", help="also write a synthetic speaker.wav per clip")
    args = parser.parse_args(argv)
    check_output_path("--out", args.out, directory=True)
    path = write_synthetic_corpus(args.out, args.clips, args.seconds, args.seed, wav=args.wav, progress=True)
    print(f"wrote {args.clips} clips of {args.seconds:g} s to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
