"""Live wav2vec 2.0 features: 16 kHz samples in as they arrive, 25 fps ``[n,768]`` out per 8-frame chunk.

    from data_utils.wav2vec import Wav2VecExtractor
    from data_utils.wav2vec_stream import CausalWav2Vec

    wav2vec = CausalWav2Vec(Wav2VecExtractor("<wav2vec2 dir>", device="cuda"), context_seconds=2.0,
                            look_ahead=True)     # False: each chunk 5 ms (a 10-ms audio block) sooner
    stream = wav2vec.stream()
    features = stream.push(samples)      # float [n] at 16 kHz -> float32 [m,768]; m a multiple of 8, may be 0
    features = stream.flush()            # the speaker stopped: the remaining (< 8) frames
    features = wav2vec.extract(samples, num_frames=T)   # a whole recording through the same path (offline)

What a chunk's frames depend on. Video frame ``k`` (centre ``(k + 0.5) / 25`` s) is the linear
interpolation of the two wav2vec frames around its centre, exactly as in whole-file extraction
(``Wav2VecExtractor.to_video_frames``). For the base conv stack (stride 320, receptive field 400
samples) the later of the two ends 80 samples (5 ms) after the video frame ends. Each chunk of frames
``[8c, 8c + 8)`` has a *cut*, the samples it is emitted after and the only ones it may read:

* ``look_ahead=True`` (default): ``5120 (c + 1) + 80``, so every frame is interpolated exactly: a 5 ms
  look-ahead, taken from the 40 ms of compute the live budget leaves after the chunk's own 320 ms. A live
  source delivering 10 ms blocks pays a whole extra block for it.
* ``look_ahead=False``: ``5120 (c + 1)``, the chunk's own end. A frame whose upper neighbour is not complete
  inside the cut (for the base stack the chunk's last frame, ``8c + 7``) takes the last complete wav2vec
  frame, its lower neighbour, instead of the interpolation (the position is clipped to it).

The chunk is computed by one forward pass of the model over a window that ends at the last wav2vec frame
complete inside the cut and starts ``context_seconds`` before the chunk (wav2vec frames stay on the global
20 ms grid), so

* nothing after the cut reaches the chunk: the frames emitted for a chunk never change when later audio
  changes (no attention, positional convolution or normalisation sees past the window), however much audio
  a push brings;
* the left context is bounded: memory and cost per chunk are constant over an hour-long session;
* the waveform is normalised (zero mean, unit variance, when the model's feature extractor asks for it)
  with the statistics of all audio up to the window's end, the causal form of whole-file normalisation.

The price is a deviation from whole-file extraction, which sees the future and the whole past;
docs/SYNTHESIS.md gives the measured size and what it does and does not say. Pushing the same samples in
any block sizes gives bit-identical features, so :meth:`CausalWav2Vec.extract` (one push) is the live path.
"""
from __future__ import annotations

import math

import numpy as np

from data_utils.wav2vec import SAMPLE_RATE, Wav2VecError, Wav2VecExtractor
from utils.errors import InputError
from utils.flame import AUDIO_DIM, FPS


def check_samples(samples, source: str = "audio samples") -> np.ndarray:
    """A mono waveform block ``[n]`` as float32; NaN/Inf or a wrong shape is refused naming ``source``."""
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise InputError(f"{source}: expected mono samples [n], got shape {list(samples.shape)} "
                         f"(mix channels down first)")
    if not np.issubdtype(samples.dtype, np.floating):
        raise InputError(f"{source}: expected float samples in [-1, 1], got {samples.dtype}")
    samples = samples.astype(np.float32, copy=False)
    bad = int((~np.isfinite(samples)).sum())
    if bad:
        raise InputError(f"{source}: {bad} NaN/Inf sample(s)")
    return samples


class CausalWav2Vec:
    """A loaded wav2vec2 turned into a causal, chunked feature source (see the module docstring).

    ``model`` is a :class:`~data_utils.wav2vec.Wav2VecExtractor` (it may also serve whole-file extraction).
    ``look_ahead`` picks each chunk's cut: 5 ms past the chunk's end and exact interpolation, or the chunk's
    end with its last frame(s) on the last complete wav2vec frame. ``stream()`` starts one live stream;
    ``extract`` runs a whole recording through the same path.
    """

    sample_rate = SAMPLE_RATE
    fps = FPS

    def __init__(self, model: Wav2VecExtractor, *, chunk_frames: int = 8, context_seconds: float = 2.0,
                 look_ahead: bool = True):
        if chunk_frames < 1:
            raise InputError(f"chunk_frames must be at least 1, got {chunk_frames}")
        if context_seconds < 0:
            raise InputError(f"context_seconds must be >= 0, got {context_seconds}")
        self.model = model
        self.chunk_frames = chunk_frames
        self.context_seconds = context_seconds
        self.context_frames = math.ceil(context_seconds * SAMPLE_RATE / model.stride)  # wav2vec frames
        self.look_ahead = look_ahead

    def position(self, frames: np.ndarray) -> np.ndarray:
        """Video frame indices -> their centres in wav2vec frame units (frame ``j`` is centred at ``j``)."""
        centre_samples = (np.asarray(frames) + 0.5) / self.fps * SAMPLE_RATE
        return (centre_samples - self.model.receptive_field / 2) / self.model.stride

    def last_wav2vec_frame(self, frame: int) -> int:
        """The last wav2vec frame video frame ``frame``'s interpolation reads."""
        return max(0, math.ceil(float(self.position(frame))))

    def samples_needed(self, num_frames: int) -> int:
        """The cut of video frames ``[0, num_frames)``: the samples that must have arrived before they are
        emitted, and the only ones they may read.

        With look-ahead, the end of the last wav2vec frame their interpolation reads; without, the end of
        the last video frame itself.
        """
        if self.look_ahead:
            return self.model.stride * self.last_wav2vec_frame(num_frames - 1) + self.model.receptive_field
        return -(-num_frames * SAMPLE_RATE // self.fps)  # the fewest samples holding num_frames whole frames

    def frames_in(self, num_samples: int) -> int:
        """Whole video frames in ``num_samples`` samples (what a stream emits by default)."""
        return int(num_samples * self.fps // SAMPLE_RATE)

    def stream(self) -> "Wav2VecStream":
        return Wav2VecStream(self)

    def extract(self, samples: np.ndarray, num_frames: int | None = None) -> np.ndarray:
        """A whole mono 16 kHz recording -> float32 ``[T,768]``, frame for frame what a live stream emits.

        ``T = num_frames`` (a video's frame count; frames past the audio's end repeat its last feature, as
        whole-file extraction does) or the audio's whole frames.
        """
        stream = self.stream()
        features = np.concatenate([stream.push(samples), stream.flush(num_frames)])
        return features if num_frames is None else features[:num_frames]


class Wav2VecStream:
    """One live audio stream's state: received samples (the bounded tail still needed) and statistics."""

    def __init__(self, wav2vec: CausalWav2Vec):
        self.wav2vec = wav2vec
        self.buffer = np.zeros(0, np.float32)  # samples [buffer_start, received)
        self.buffer_start = 0
        self.received = 0  # samples pushed so far
        self.emitted = 0  # video frames emitted so far
        # Running normalisation statistics over samples [0, stats_end), in float64.
        self.stats_end = 0
        self.sum = 0.0
        self.sum_squares = 0.0
        self.closed = False

    def push(self, samples) -> np.ndarray:
        """Feed mono 16 kHz samples (any block size); returns the features of every chunk now complete."""
        if self.closed:
            raise RuntimeError("this wav2vec stream was flushed; start a new one")
        samples = check_samples(samples)
        self.buffer = np.concatenate([self.buffer, samples])
        self.received += len(samples)
        chunk, out = self.wav2vec.chunk_frames, [np.zeros((0, AUDIO_DIM), np.float32)]
        while (cut := self.wav2vec.samples_needed(self.emitted + chunk)) <= self.received:
            out.append(self._emit(self.emitted + chunk, cut))
        return np.concatenate(out)

    def flush(self, num_frames: int | None = None) -> np.ndarray:
        """The audio ended: emit frames up to ``num_frames`` in all (default: the audio's whole frames)."""
        if self.closed:
            raise RuntimeError("this wav2vec stream was already flushed")
        self.closed = True
        total = self.wav2vec.frames_in(self.received) if num_frames is None else num_frames
        if total <= self.emitted:
            return np.zeros((0, AUDIO_DIM), np.float32)
        if self.wav2vec.model.num_frames_50hz(self.received) == 0:
            raise Wav2VecError(f"audio of {self.received} samples is shorter than one wav2vec frame "
                               f"({self.wav2vec.model.receptive_field} samples)")
        return self._emit(total, cut=self.received)  # the audio's end is the last chunk's cut

    def _emit(self, stop: int, cut: int) -> np.ndarray:
        """Features of video frames ``[emitted, stop)`` from one window that reads only samples ``[0, cut)``."""
        wav2vec, model = self.wav2vec, self.wav2vec.model
        frames = np.arange(self.emitted, stop)
        position = wav2vec.position(frames)
        # wav2vec frames complete inside the cut (not inside everything received: the block sizes of the
        # pushes must not matter); a frame past the last of them takes that one, uninterpolated.
        available = model.num_frames_50hz(cut)
        position = np.clip(position, 0, available - 1)
        last = min(wav2vec.last_wav2vec_frame(stop - 1), available - 1)
        first = max(0, int(np.floor(position[0])) - wav2vec.context_frames)
        window_start, window_end = model.stride * first, model.stride * last + model.receptive_field
        if window_start < self.buffer_start:
            raise RuntimeError(f"window starts at sample {window_start}, pruned (kept from {self.buffer_start})")
        audio = self.buffer[window_start - self.buffer_start:window_end - self.buffer_start]
        hidden = model.run_model(self._normalized(audio, window_end))  # [last-first+1, 768] at 50 Hz
        if len(hidden) != last - first + 1:
            raise RuntimeError(f"wav2vec returned {len(hidden)} frames for a window of {last - first + 1}")
        lower = np.floor(position).astype(np.int64)
        upper = np.minimum(lower + 1, available - 1)
        weight = (position - lower)[:, None].astype(np.float32)
        features = (1 - weight) * hidden[lower - first] + weight * hidden[upper - first]  # [stop-emitted,768]
        self.emitted = stop
        # Keep only what the next window can read: it starts at this one's next frame, whose position its
        # cut (no earlier than this one) clips to no lower than this cut's last complete wav2vec frame.
        next_position = min(float(wav2vec.position(stop)), available - 1)
        next_first = max(0, int(np.floor(next_position)) - wav2vec.context_frames)
        keep_from = min(model.stride * next_first, self.stats_end)  # statistics read from stats_end on
        if keep_from > self.buffer_start:
            self.buffer = self.buffer[keep_from - self.buffer_start:]
            self.buffer_start = keep_from
        return features.astype(np.float32)

    def _normalized(self, window: np.ndarray, window_end: int) -> np.ndarray:
        """``window`` (ending at sample ``window_end``) scaled by the statistics of samples ``[0, window_end)``."""
        if window_end > self.stats_end:
            new = self.buffer[self.stats_end - self.buffer_start:window_end - self.buffer_start].astype(np.float64)
            self.sum += float(new.sum())
            self.sum_squares += float((new * new).sum())
            self.stats_end = window_end
        if not self.wav2vec.model.feature_extractor.do_normalize:
            return window
        mean = self.sum / self.stats_end
        variance = max(self.sum_squares / self.stats_end - mean * mean, 0.0)
        return ((window - mean) / np.sqrt(variance + 1e-7)).astype(np.float32)
