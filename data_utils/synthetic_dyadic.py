"""A synthetic dyadic corpus (DESIGN.md §3.1): speakers with their own styles; listeners with an attitude who react.

    python -m data_utils.synthetic_dyadic --out data/synthetic_dyadic --clips 200 --seconds 20 --seed 0 [--wav]
    python -m data_utils.synthetic_dyadic --out data/resample_1 --clips 200 --seconds 20 --seed 0 --resample_seed 1

or from Python ``write_synthetic_corpus(out, clips=200, seconds=20, seed=0, resample_seed=0)`` (default 60 s). The same
arguments give the same bytes; the folder appears only when complete.

No real dyadic data (ViCo, EMOCA codes, wav2vec2 weights) can be downloaded here, so Stage 2 is trained,
tested and benchmarked on this world. It is built as a benchmark: the listener depends strongly and
specifically on the speaker it hears, several different reactions are plausible at every speaker cue, and a
**resample** of the corpus (``--resample_seed J``) redraws only the listeners, so it scores the best any
model can (``brain.evaluate --oracle``).

**Random streams and resampling.** Clip ``i`` of ``--seed S`` draws from three independent generators:

* the *speaker* stream ``default_rng([S, i, 0])``: everything of the speaker (style, turns, prosody, smiles,
  brows, blinks, expression and audio arrays, ``speaker.wav``);
* the *attitude* stream ``default_rng([S, i, 2])``: the clip's listener attitude (``labels.json``);
* the *listener* stream ``default_rng([S, i, 1, J])`` with ``J = --resample_seed`` (default 0): every
  choice of the listener — whether each reaction happens, which one, when, how large and how long, its
  attention to the speaker's brows, its blinks, idle sway and noise.

So a resample (same ``--clips --seconds --seed``, another ``--resample_seed``) has the same clip ids, splits,
attitudes, speaker files (bit-identical) and speaker half of ``events.json``; ``listener.npy`` and the
listener half of ``events.json`` are redrawn. ``--resample_seed 0`` is the corpus itself.

**The world** (fixed projections drawn once from ``WORLD_SEED``, shared by every corpus of any seed):

Speaker, per clip: a *style* first, so clips differ from each other
  * turn rhythm: a mean speech-segment length of 1.5–5 s and a mean pause of 0.5–2 s (each segment 0.5–1.5×
    its mean); a syllable rate of 3–6.5 Hz; a loudness of 0.35–1 (the energy while speaking);
  * cheer: smiles come as Poisson events every 4–25 s on average (log-uniform per clip), 1–3 s long, with a
    per-clip scale of 0.6–1.6 (× 0.7–1.3 per smile), occasionally laughing (the smile shows in the audio);
  * emphasis: the brows follow high pitch while speaking with a per-clip gain of 0.3–1.2;
  * voice: two voice-quality factors with a per-clip offset (the audio of two speakers differs);
  * ``speaker_exp [T,50]``: smile, brow and eye-close on the dims named in
    :mod:`data_utils.synthetic_semantics` (blinks every ~3.5 s); the other 47 dims are a fixed random mixing
    of mouth motion (energy × syllables), energy, smile, brow and two idle factors, plus noise 0.02;
  * ``speaker_audio [T,768]``: a fixed random projection of the latent signals (speaking, energy, mouth
    motion, pitch, laughter, the two voice factors) plus a fixed bias and Gaussian noise 0.3 — a stand-in
    for wav2vec2 hidden states, which carry prosody linearly decodable.

Listener: an attitude per clip (uniform over :data:`ATTITUDE_NAMES`), then reactions to the speaker's cues.
A *pause onset* counts when at least one second of speech precedes it; its *intensity* is the speaker's
mean energy over that second. At every pause onset the listener picks one reaction (or none), with the
attitude's probabilities (:data:`ATTITUDES`):
  * *nod*: 0.15–0.6 s after the onset, 1–3 down-up cycles (by attitude) at 1.5–2.5 Hz on head pitch, of
    ``NOD_AMPLITUDE_RAD × (0.3 + 0.7 × intensity) × 0.75–1``; the jaw opens a little ("mm-hm") and the eyes
    blink at its start with probability 0.5; its expression trace (the *nodding* factor) scales with the
    intensity too;
  * *head shake* (mostly negative): 0.2–0.6 s after the onset, 2–3 cycles at 2–3 Hz on yaw, of
    ``SHAKE_AMPLITUDE_RAD × (0.4 + 0.6 × intensity) × 0.75–1``, lips pressed (smile dim down by 0.3 × the
    *shaking* factor);
  * *brow raise* (interest): 0.2–0.6 s after the onset, ``(0.5 + 0.8 × intensity) × 0.7–1`` for 0.6–1.4 s;
  * nothing.
Besides the pauses:
  * *smile mirroring*: each speaker smile is mirrored with the attitude's probability, 0.2–0.8 s after its
    onset, at the attitude's gain × the speaker's amplitude and its duration factor × the speaker's duration;
  * *brow following*: the listener's brows follow the speaker's emphasis brows 0.2–0.5 s later (a lag per
    draw) with the attitude's gain — raised with it when positive, lowered (a frown) when negative — gated by
    a smooth attention curve in 0..1 (smoothed noise over ~1.5 s) so it comes and goes;
  * *backchannel nods* while the speaker talks (Poisson, by attitude) and rare spontaneous smiles;
  * a *tonic* smile and brow level per attitude (positive: a slight smile and raised brows; negative: mouth
    corners and brows slightly down), visible in every window;
  * *blinks* every ~4 s; *idle sway*: small, quick (1.0–1.5 s smoothing) yaw 0.025, roll 0.015 and pitch
    0.015 rad (std), so posture drift that ignores the speaker stays small next to the reactions; the head
    rolls a little with a smile (0.03 × smile); the jaw rests at ``JAW_REST_RAD`` (+ 0.05 × nodding);
  * the other 47 expression dims and the two minor jaw axes are a fixed random mixing of the smile, brow,
    nodding and shaking factors, the blinks (at weight ``BLINK_MIXING_WEIGHT``) and two small idle factors
    (std 0.1, 0.6 and 1.2 s smoothing); every expression dim gets noise 0.02; so all 56 dims vary like real
    EMOCA codes.

The attitudes (:data:`ATTITUDES`):

| rule | positive | neutral | negative |
|---|---|---|---|
| pause onset: nod / shake / brow raise / nothing | 0.8 / 0 / 0.15 / 0.05 | 0.5 / 0.05 / 0.2 / 0.25 | 0.15 / 0.6 / 0 / 0.25 |
| cycles per nod | 2–3 | 1 | 1 |
| speaker smile mirrored: probability, gain, duration | 0.9, 0.7–1.1, 1.1–1.4× | 0.7, 0.5–0.8, 0.8–1.1× | 0.4, 0.3–0.5, 0.5–0.8× |
| brow following gain | 0.5–0.9 | 0.2–0.5 | −0.6 to −0.3 (frowns) |
| mean interval: backchannel nods, own smiles | 6 s, 30 s | 20 s, 60 s | 40 s, never |
| tonic smile, brow | +0.08, +0.05 | 0, 0 | −0.08, −0.1 |

In words: *positive* nods at most pauses with several cycles, mirrors most smiles larger and longer than the
speaker's, raises its brows with the speaker and backchannels often; *neutral* is sparse: a single nod at half
the pauses, weaker and shorter smiles; *negative* shakes its head at most pauses, seldom nods or smiles, and
frowns at the speaker's emphasis.

So one speaker input has many listener futures: which reaction comes at each cue, when and how large is
random, and the idle motion never repeats; but what kinds of reaction, how often and how strongly follow
the speaker's rhythm, cheer and intensity, and the attitude. ``clips/<id>/events.json`` records the latent
event times (speaker pause and smile onsets; the listener's nods, shakes, brow raises and smiles),
``clips/<id>/labels.json`` the attitude (``meta.json`` lists the names under ``"attitudes"``); ``--wav`` adds a
buzzy ``speaker.wav`` voiced from the same energy and pitch, for muxing into videos.
"""
from __future__ import annotations

import sys
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from brain.data import write_corpus_meta
from data_utils import synthetic_semantics as sem
from data_utils.signals import blinks, bump, oscillation, poisson_times, smooth_noise
from utils.atomic import atomic_output, save_json
from utils.cli import check_output_path, cli_main, cli_parser
from utils.errors import UsageError
from utils.flame import AUDIO_DIM, EXP, FLAME_DIM, FPS, JAW, SPEAKER_EXP_DIM

WORLD_SEED = 20240607  # the fixed projections and mixings; corpora of every seed share this world
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, val, test
WAV_RATE = 16000
SPEAKER_STREAM, LISTENER_STREAM, ATTITUDE_STREAM = 0, 1, 2  # the third entry of each clip's seed sequence

SPEAKER_FACTORS = ("mouth", "energy", "smile", "brow", "idle_a", "idle_b")
AUDIO_FACTORS = ("speaking", "energy", "mouth", "pitch", "laughter", "voice_a", "voice_b")
LISTENER_FACTORS = ("smile", "brow", "nodding", "shaking", "blink", "idle_a", "idle_b")
BLINK_MIXING_WEIGHT = 0.3  # blinks move the other 47 dims less than the reactions do (they are not a reaction)


@dataclass(frozen=True)
class Attitude:
    """How a listener of one attitude reacts. Probabilities of the pause reactions are per pause onset."""

    nod: float  # probability of a nod at a pause onset
    shake: float  # ... of a head shake
    brow_raise: float  # ... of a brow raise (the rest: no reaction)
    nod_cycles: tuple[int, int]  # inclusive range of down-up cycles per nod
    mirror: float  # probability of mirroring a speaker smile
    mirror_gain: tuple[float, float]  # listener smile amplitude / the speaker's
    mirror_duration: tuple[float, float]  # listener smile duration / the speaker's
    brow_follow_gain: tuple[float, float]  # listener brow per speaker emphasis brow; < 0 frowns
    backchannel_interval: float  # mean seconds between nods while the speaker talks
    spontaneous_smile_interval: float  # mean seconds between smiles of the listener's own
    tonic_smile: float  # constant offset of the smile dim (< 0: mouth corners down)
    tonic_brow: float  # constant offset of the brow dim (< 0: brows lowered)


ATTITUDES = {
    "positive": Attitude(nod=0.8, shake=0.0, brow_raise=0.15, nod_cycles=(2, 3), mirror=0.9,
                         mirror_gain=(0.7, 1.1), mirror_duration=(1.1, 1.4), brow_follow_gain=(0.5, 0.9),
                         backchannel_interval=6.0, spontaneous_smile_interval=30.0, tonic_smile=0.08,
                         tonic_brow=0.05),
    "neutral": Attitude(nod=0.5, shake=0.05, brow_raise=0.2, nod_cycles=(1, 1), mirror=0.7,
                        mirror_gain=(0.5, 0.8), mirror_duration=(0.8, 1.1), brow_follow_gain=(0.2, 0.5),
                        backchannel_interval=20.0, spontaneous_smile_interval=60.0, tonic_smile=0.0,
                        tonic_brow=0.0),
    "negative": Attitude(nod=0.15, shake=0.6, brow_raise=0.0, nod_cycles=(1, 1), mirror=0.4,
                         mirror_gain=(0.3, 0.5), mirror_duration=(0.5, 0.8), brow_follow_gain=(-0.6, -0.3),
                         backchannel_interval=40.0, spontaneous_smile_interval=np.inf, tonic_smile=-0.08,
                         tonic_brow=-0.1),
}
ATTITUDE_NAMES = tuple(ATTITUDES)


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


@dataclass
class Speaker:
    """One clip's speaker: the arrays written to disk and the latent cues a listener reacts to."""

    speaker_audio: np.ndarray  # float32 [T,768]
    speaker_exp: np.ndarray  # float32 [T,50]
    speaking: np.ndarray  # [T] 0/1
    energy: np.ndarray  # [T] loudness envelope, 0 in pauses
    brow: np.ndarray  # [T] emphasis brows
    pause_onsets: list[float]  # seconds; each follows at least one second of speech
    pause_intensities: list[float]  # the speaker's mean energy over the second before each pause onset
    smiles: list[tuple[float, float, float]]  # (onset s, amplitude, duration s)
    voice: dict[str, np.ndarray]  # "energy", "pitch" [T] for speaker.wav

    @property
    def frames(self) -> int:
        return len(self.speaking)


def clip_generators(seed: int, clip_index: int, resample_seed: int = 0) -> dict[str, np.random.Generator]:
    """The clip's three independent random streams (see the module docstring)."""
    return {"speaker": np.random.default_rng([seed, clip_index, SPEAKER_STREAM]),
            "attitude": np.random.default_rng([seed, clip_index, ATTITUDE_STREAM]),
            "listener": np.random.default_rng([seed, clip_index, LISTENER_STREAM, resample_seed])}


def _speaker_turns(rng, frames: int, turn_seconds: float, pause_seconds: float) -> np.ndarray:
    """Speaking indicator ``[frames]`` of alternating speech and pause segments."""
    speaking = np.zeros(frames)
    t, talking = 0.0, bool(rng.random() < 0.7)
    seconds = frames / FPS
    while t < seconds:
        length = (turn_seconds if talking else pause_seconds) * rng.uniform(0.5, 1.5)
        if talking:
            speaking[int(t * FPS):int(min(seconds, t + length) * FPS)] = 1.0
        t += length
        talking = not talking
    return speaking


def synthesize_speaker(rng: np.random.Generator, world: SyntheticWorld, frames: int) -> Speaker:
    """One clip's speaker, drawn from the speaker stream only."""
    seconds = frames / FPS
    turn_seconds, pause_seconds = rng.uniform(1.5, 5.0), rng.uniform(0.5, 2.0)
    syllable_rate, loudness = rng.uniform(3.0, 6.5), rng.uniform(0.35, 1.0)
    smile_interval, smile_scale = np.exp(rng.uniform(np.log(4.0), np.log(25.0))), rng.uniform(0.6, 1.6)
    emphasis = rng.uniform(0.3, 1.2)
    voice_offsets = rng.normal(0.0, 1.0, 2)

    speaking = _speaker_turns(rng, frames, turn_seconds, pause_seconds)
    speaking_eased = gaussian_filter1d(speaking, 0.05 * FPS)
    syllable_phase = 2 * np.pi * np.cumsum(syllable_rate * (1 + 0.15 * smooth_noise(rng, frames, 0.5))) / FPS
    syllables = 0.5 + 0.5 * np.sin(syllable_phase)
    energy = speaking_eased * loudness * (0.75 + 0.25 * np.tanh(smooth_noise(rng, frames, 1.0)))
    mouth = energy * syllables
    pitch = smooth_noise(rng, frames, 0.6)

    smiles, smile = [], np.zeros(frames)
    for onset in poisson_times(rng, seconds, smile_interval):
        duration, amplitude = rng.uniform(1.0, 3.0), smile_scale * rng.uniform(0.7, 1.3)
        smile = np.maximum(smile, amplitude * bump(frames, onset, duration))
        smiles.append((float(onset), float(amplitude), float(duration)))
    brow = emphasis * np.maximum(pitch, 0) * speaking_eased + 0.05 * smooth_noise(rng, frames, 0.3)
    eye = blinks(rng, frames, poisson_times(rng, seconds, 3.5))
    laughter = smile * speaking_eased * (0.5 + 0.5 * syllables)

    factors = np.stack([mouth, energy, smile, brow, smooth_noise(rng, frames, 1.5), smooth_noise(rng, frames, 3.0)], 1)
    speaker_exp = np.zeros((frames, SPEAKER_EXP_DIM))
    speaker_exp[:, sem.SMILE] = smile
    speaker_exp[:, sem.BROW_RAISE] = brow
    speaker_exp[:, sem.EYE_CLOSE] = eye
    speaker_exp[:, sem.SUBTLE_EXP] = factors @ world.speaker_mixing
    speaker_exp += 0.02 * rng.standard_normal(speaker_exp.shape)

    voice_a, voice_b = (offset + 0.3 * smooth_noise(rng, frames, s) for offset, s in zip(voice_offsets, (2.0, 4.0)))
    audio_factors = np.stack([speaking_eased, energy, mouth, pitch * speaking_eased, laughter, voice_a, voice_b], 1)
    speaker_audio = audio_factors @ world.audio_projection + world.audio_bias
    speaker_audio += 0.3 * rng.standard_normal(speaker_audio.shape)

    starts = np.nonzero(np.diff(speaking) < 0)[0] + 1
    counted = [s for s in starts if s >= FPS and speaking[s - FPS:s].mean() > 0.99]
    return Speaker(speaker_audio.astype(np.float32), speaker_exp.astype(np.float32), speaking, energy, brow,
                   pause_onsets=[s / FPS for s in counted],
                   pause_intensities=[float(energy[s - FPS:s].mean()) for s in counted], smiles=smiles,
                   voice={"energy": energy * (0.6 + 0.4 * syllables), "pitch": pitch})


def draw_attitude(rng: np.random.Generator) -> str:
    """The clip's listener attitude, from the attitude stream."""
    return ATTITUDE_NAMES[int(rng.integers(len(ATTITUDE_NAMES)))]


def _delayed(signal: np.ndarray, seconds: float) -> np.ndarray:
    """``signal`` shifted later by ``seconds`` (its first value held at the start)."""
    shift = int(round(seconds * FPS))
    return np.concatenate([np.full(shift, signal[0]), signal[:len(signal) - shift]])


def synthesize_listener(rng: np.random.Generator, world: SyntheticWorld, speaker: Speaker,
                        attitude: str) -> tuple[np.ndarray, dict]:
    """``(listener [T,56] float32, listener events)``, drawn from the listener stream only."""
    rules = ATTITUDES[attitude]
    frames = speaker.frames
    seconds = frames / FPS
    nods, shakes, brow_raises = [], [], []  # (start s, intensity)
    for onset, intensity in zip(speaker.pause_onsets, speaker.pause_intensities):
        choice = rng.random()
        if choice < rules.nod:
            nods.append((onset + rng.uniform(0.15, 0.6), intensity))
        elif choice < rules.nod + rules.shake:
            shakes.append((onset + rng.uniform(0.2, 0.6), intensity))
        elif choice < rules.nod + rules.shake + rules.brow_raise:
            brow_raises.append((onset + rng.uniform(0.2, 0.6), intensity))
    typical_energy = float(np.mean(speaker.pause_intensities)) if speaker.pause_intensities else 0.6
    for time in poisson_times(rng, seconds, rules.backchannel_interval):
        if speaker.speaking[min(frames - 1, int(time * FPS))]:
            nods.append((float(time), 0.5 * typical_energy))
    nods.sort()

    pitch_nods, yaw_shakes, nodding, shaking = (np.zeros(frames) for _ in range(4))
    blink_times = list(poisson_times(rng, seconds, 4.0))
    for start, intensity in nods:
        cycles, frequency = int(rng.integers(rules.nod_cycles[0], rules.nod_cycles[1] + 1)), rng.uniform(1.5, 2.5)
        amplitude = sem.NOD_AMPLITUDE_RAD * (0.3 + 0.7 * intensity) * rng.uniform(0.75, 1.0)
        pitch_nods += oscillation(frames, start, cycles, frequency, amplitude)
        nodding = np.maximum(nodding, (0.3 + 0.7 * intensity) * bump(frames, start, cycles / frequency, attack=0.1))
        if rng.random() < 0.5:
            blink_times.append(start)
    for start, intensity in shakes:
        cycles, frequency = int(rng.integers(2, 4)), rng.uniform(2.0, 3.0)
        amplitude = sem.SHAKE_AMPLITUDE_RAD * (0.4 + 0.6 * intensity) * rng.uniform(0.75, 1.0)
        yaw_shakes += oscillation(frames, start, cycles, frequency, amplitude, signed=True)
        shaking = np.maximum(shaking, (0.4 + 0.6 * intensity) * bump(frames, start, cycles / frequency, attack=0.1))

    brow = rules.tonic_brow + np.zeros(frames)
    for start, intensity in brow_raises:
        brow += (0.5 + 0.8 * intensity) * rng.uniform(0.7, 1.0) * bump(frames, start, rng.uniform(0.6, 1.4))
    attention = 1 / (1 + np.exp(-3 * smooth_noise(rng, frames, 1.5)))  # [T] in 0..1
    brow += rng.uniform(*rules.brow_follow_gain) * attention * _delayed(speaker.brow, rng.uniform(0.2, 0.5))

    smile, mirrored = np.zeros(frames), []
    for onset, amplitude, duration in speaker.smiles:
        if rng.random() < rules.mirror:
            start = onset + rng.uniform(0.2, 0.8)
            length = duration * rng.uniform(*rules.mirror_duration)
            smile = np.maximum(smile, amplitude * rng.uniform(*rules.mirror_gain) * bump(frames, start, length))
            mirrored.append(float(start))
    for start in poisson_times(rng, seconds, rules.spontaneous_smile_interval):
        smile = np.maximum(smile, rng.uniform(0.4, 0.9) * bump(frames, start, rng.uniform(1.0, 2.5)))
    smile += rules.tonic_smile - 0.3 * shaking  # lips pressed during a shake
    eye = blinks(rng, frames, blink_times)

    listener = np.zeros((frames, FLAME_DIM))
    listener[:, sem.SMILE] = smile
    listener[:, sem.BROW_RAISE] = brow
    listener[:, sem.EYE_CLOSE] = eye
    idle = [0.1 * smooth_noise(rng, frames, s) for s in (0.6, 1.2)]
    factors = np.stack([smile, brow, nodding, shaking, BLINK_MIXING_WEIGHT * eye, *idle], axis=1)
    listener[:, sem.SUBTLE_EXP] = factors @ world.listener_mixing
    listener[:, sem.HEAD_PITCH] = pitch_nods + 0.015 * smooth_noise(rng, frames, 1.0)
    listener[:, sem.HEAD_YAW] = yaw_shakes + 0.025 * smooth_noise(rng, frames, 1.2)
    listener[:, sem.HEAD_ROLL] = 0.015 * smooth_noise(rng, frames, 1.5) + 0.03 * smile
    listener[:, sem.JAW_OPEN] = np.clip(sem.JAW_REST_RAD + 0.05 * nodding + 0.01 * smooth_noise(rng, frames, 0.8),
                                        0, None)
    listener[:, sem.JAW_OPEN + 1:JAW.stop] = factors @ world.listener_jaw_mixing
    listener[:, EXP] += 0.02 * rng.standard_normal((frames, EXP.stop - EXP.start))

    events = {"listener_nods": [round(t, 3) for t, _ in nods], "listener_shakes": [round(t, 3) for t, _ in shakes],
              "listener_brow_raises": [round(t, 3) for t, _ in brow_raises],
              "listener_smiles": [round(t, 3) for t in mirrored]}
    return listener.astype(np.float32), events


def synthesize_clip(world: SyntheticWorld, frames: int, seed: int, clip_index: int, resample_seed: int = 0) -> dict:
    """Clip ``clip_index`` of corpus ``seed``: ``speaker_audio [T,768]``, ``speaker_exp [T,50]``,
    ``listener [T,56]``, ``attitude``, ``events`` and the ``voice`` curves of ``speaker.wav``."""
    streams = clip_generators(seed, clip_index, resample_seed)
    speaker = synthesize_speaker(streams["speaker"], world, frames)
    attitude = draw_attitude(streams["attitude"])
    listener, listener_events = synthesize_listener(streams["listener"], world, speaker, attitude)
    events = {"speaker_pause_onsets": [round(t, 3) for t in speaker.pause_onsets],
              "speaker_smile_onsets": [round(onset, 3) for onset, _, _ in speaker.smiles], **listener_events}
    return {"speaker_audio": speaker.speaker_audio, "speaker_exp": speaker.speaker_exp, "listener": listener,
            "attitude": attitude, "events": events, "voice": speaker.voice}


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
                           resample_seed: int = 0, wav: bool = False, progress: bool = False) -> Path:
    """Write a §3.1 corpus of ``clips`` clips of ``seconds`` each to ``out`` (replaced atomically);
    ``resample_seed`` redraws only the listeners (module docstring)."""
    if clips < 3:
        raise UsageError(f"--clips must be at least 3 (one each for train, val and test), got {clips}")
    frames = int(round(seconds * FPS))
    if frames < 2 * FPS:
        raise UsageError(f"--seconds must be at least 2, got {seconds}")
    for name, value in (("--seed", seed), ("--resample_seed", resample_seed)):
        if value < 0:
            raise UsageError(f"{name} must be a non-negative integer, got {value}")
    world = SyntheticWorld()
    clip_ids = [f"clip_{index:04d}" for index in range(clips)]
    indices = range(clips)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="synthetic dyadic corpus", unit="clip")
    with atomic_output(out, directory=True) as tmp:
        write_corpus_meta(tmp, attitudes=list(ATTITUDE_NAMES))
        for index in indices:
            clip = synthesize_clip(world, frames, seed, index, resample_seed)
            clip_dir = tmp / "clips" / clip_ids[index]
            clip_dir.mkdir(parents=True)
            for name in ("speaker_audio", "speaker_exp", "listener"):
                np.save(clip_dir / f"{name}.npy", clip[name])
            save_json(clip_dir / "events.json", clip["events"])
            save_json(clip_dir / "labels.json", {"attitude": clip["attitude"]})
            if wav:
                _write_wav(clip_dir / "speaker.wav", clip["voice"]["energy"], clip["voice"]["pitch"])
        (tmp / "splits").mkdir()
        for split, ids in split_clip_ids(clip_ids).items():
            (tmp / "splits" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return Path(out)


@cli_main("data_utils.synthetic_dyadic")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("data_utils.synthetic_dyadic", __doc__)
    parser.add_argument("--out", required=True, help="corpus folder to write (replaced when complete)")
    parser.add_argument("--clips", type=int, default=200, help="number of clips (80/10/10 train/val/test)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each clip in seconds")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--resample_seed", type=int, default=0,
                        help="redraw only the listeners (0: the corpus itself; another value: a resample, the oracle)")
    parser.add_argument("--wav", action="store_true", help="also write a synthetic speaker.wav per clip")
    args = parser.parse_args(argv)
    check_output_path("--out", args.out, directory=True)
    path = write_synthetic_corpus(args.out, args.clips, args.seconds, args.seed, resample_seed=args.resample_seed,
                                  wav=args.wav, progress=True)
    print(f"wrote {args.clips} clips of {args.seconds:g} s to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
