"""Speaker audio -> wav2vec 2.0 features at the project's 25 fps (DESIGN.md §2: float32 ``[T,768]``).

    python -m data_utils.wav2vec --wav speaker.wav --model <wav2vec2 dir or hub id> --out feats.npy \
        [--num_frames T] [--layer -1] [--device auto] [--chunk_seconds 30] [--context_seconds 5] [--causal 2 [--no_look_ahead]]

    from data_utils.wav2vec import extract_wav2vec_features
    feats = extract_wav2vec_features("speaker.wav", "<wav2vec2 dir>", device="cpu")   # float32 [T,768]

How it works:
* Any media file is decoded to mono 16 kHz by ffmpeg (``data_utils.media.read_audio``);
  :func:`read_speaker_audio` also says what was converted (rate, channels) for a log.
* The waveform is normalised once over the whole file (zero mean, unit variance) when the model's
  ``Wav2Vec2FeatureExtractor`` asks for it (``do_normalize``), so chunks see the same input scale.
* ``Wav2Vec2Model`` (a local ``save_pretrained`` directory, or a hub id when online) gives hidden states at
  50 Hz: frame ``j`` sees samples ``[320 j, 320 j + 400)`` for the base architecture (stride and receptive
  field are computed from the model's conv stack). ``layer=-1`` is the last transformer layer
  (``last_hidden_state``); other values index ``hidden_states`` (0 = the projected CNN features).
* Long files are run in chunks of ``chunk_seconds`` with ``context_seconds`` of extra audio on both sides;
  only the centre frames of each chunk are kept, on the global 20 ms grid, so the result has exactly the
  frames of a whole-file pass and differs from it only through the attention and group-norm context.
* 50 Hz -> 25 fps: video frame ``k`` (centre ``(k + 0.5) / 25`` s) is the linear interpolation of the two
  wav2vec frames around that time (frame ``j`` is centred at ``(320 j + 200) / 16000`` s). This is the
  time-exact form of averaging pairs of frames, and it yields exactly ``num_frames`` frames, so features
  line up with ``T`` video frames even when the audio is a little longer or shorter than the video.
* ``--causal SECONDS`` writes instead what the live path computes (``data_utils.wav2vec_stream``): each
  8-frame chunk from a window that ends 5 ms after it (at its end with ``--no_look_ahead``, as
  ``synthesize_listener.py --no_look_ahead`` hears it), with SECONDS of left context. Whole-file features
  see the future; a brain trained on causal ones sees at training what it will hear live.
"""
from __future__ import annotations

import copy
import math
import re
import sys
from pathlib import Path

import numpy as np
import torch

from data_utils.media import read_audio
from utils.atomic import save_npy
from utils.cli import cli_main, cli_parser
from utils.errors import InputError
from utils.flame import AUDIO_DIM, FPS
from utils.media import MediaError, ffmpeg_header
from utils.runtime import configure_threads, resolve_device

SAMPLE_RATE = 16000  # wav2vec 2.0 is trained on 16 kHz audio


class Wav2VecError(InputError):
    """A wav2vec2 model that cannot be loaded or does not fit the contract."""


class Wav2VecExtractor:
    """A loaded wav2vec2 model; call it on a waveform to get 25 fps features. Load once, use for many clips."""

    def __init__(self, model_dir: str | Path, device: str | torch.device = "cpu", *, layer: int = -1,
                 chunk_seconds: float = 30.0, context_seconds: float = 5.0):
        from transformers import AutoConfig, Wav2Vec2FeatureExtractor, Wav2Vec2Model

        self.model_dir = str(model_dir)
        self.device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
        try:
            # transformers loads any model's weights into a Wav2Vec2Model with only a warning (a BERT folder
            # gives a randomly initialised wav2vec2), so the folder's model type and weights are checked.
            model_type = AutoConfig.from_pretrained(self.model_dir).model_type
            if model_type == "wav2vec2":
                model, loading = Wav2Vec2Model.from_pretrained(self.model_dir, output_loading_info=True)
        except Exception as exc:  # transformers raises OSError/ValueError/HF errors for missing or offline ids
            where = "local directory" if Path(self.model_dir).is_dir() else "hub id (needs internet) or directory"
            raise Wav2VecError(f"{self.model_dir}: cannot load a Wav2Vec2Model from this {where} "
                               f"({type(exc).__name__}: {exc})") from exc
        if model_type != "wav2vec2":
            raise Wav2VecError(f"{self.model_dir}: holds a {model_type!r} model, not a Wav2Vec2 "
                               f"(config.json model_type must be 'wav2vec2')")
        # masked_spec_embed is used only for masking during pre-training; some releases leave it out.
        missing = [key for key in loading["missing_keys"] if key != "masked_spec_embed"]
        if missing:
            raise Wav2VecError(f"{self.model_dir}: the weights lack {len(missing)} of the model's tensors "
                               f"(e.g. {missing[0]}); not a complete Wav2Vec2 checkpoint")
        self.model = model.to(self.device).eval()
        try:
            self.feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(self.model_dir)
        except Exception:  # a bare model directory has no preprocessor_config.json: use the defaults
            self.feature_extractor = Wav2Vec2FeatureExtractor()
        config = self.model.config
        if config.hidden_size != AUDIO_DIM:
            raise Wav2VecError(f"{self.model_dir}: hidden size {config.hidden_size}, but the project's audio features "
                               f"are {AUDIO_DIM} wide; use a base-size wav2vec2 (e.g. facebook/wav2vec2-base-960h)")
        if self.feature_extractor.sampling_rate != SAMPLE_RATE:
            raise Wav2VecError(f"{self.model_dir}: expects {self.feature_extractor.sampling_rate} Hz audio, "
                               f"this extractor feeds {SAMPLE_RATE} Hz")
        num_layers = config.num_hidden_layers
        if not -num_layers - 1 <= layer <= num_layers:
            raise Wav2VecError(f"layer {layer} does not exist: the model has hidden states 0..{num_layers}")
        self.layer = layer
        # The conv feature encoder's total stride and receptive field, in samples (320 and 400 for base).
        self.stride = math.prod(config.conv_stride)
        self.receptive_field = 1 + sum((kernel - 1) * math.prod(config.conv_stride[:i])
                                       for i, kernel in enumerate(config.conv_kernel))
        self._set_chunking(chunk_seconds, context_seconds)

    def _set_chunking(self, chunk_seconds: float, context_seconds: float) -> None:
        self.chunk_samples = max(1, round(chunk_seconds * SAMPLE_RATE / self.stride)) * self.stride
        self.context_samples = math.ceil(context_seconds * SAMPLE_RATE / self.stride) * self.stride
        if self.context_samples < self.receptive_field - self.stride:
            raise Wav2VecError(f"context_seconds={context_seconds} is shorter than the model's receptive field")

    def with_chunking(self, chunk_seconds: float, context_seconds: float) -> "Wav2VecExtractor":
        """A copy that shares the loaded model but splits long files differently."""
        other = copy.copy(self)
        other._set_chunking(chunk_seconds, context_seconds)
        return other

    def num_frames_50hz(self, num_samples: int) -> int:
        """wav2vec frames of a whole-file pass over ``num_samples`` samples."""
        return max(0, (num_samples - self.receptive_field) // self.stride + 1)

    @torch.no_grad()
    def run_model(self, audio: np.ndarray) -> np.ndarray:
        """One forward pass over the waveform as given (no normalisation) -> hidden states ``[F,768]`` at 50 Hz."""
        inputs = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(self.device)
        if self.layer == -1:
            hidden = self.model(inputs).last_hidden_state
        else:
            hidden = self.model(inputs, output_hidden_states=True).hidden_states[self.layer]
        return hidden[0].float().cpu().numpy()  # [F,768]

    def features_50hz(self, audio: np.ndarray) -> np.ndarray:
        """Mono 16 kHz float waveform ``[N]`` -> hidden states ``[F,768]`` at 50 Hz (chunked when long)."""
        audio = np.asarray(audio, dtype=np.float32)
        total = self.num_frames_50hz(len(audio))
        if total == 0:
            raise Wav2VecError(f"audio of {len(audio)} samples is shorter than one wav2vec frame "
                               f"({self.receptive_field} samples)")
        if self.feature_extractor.do_normalize:
            audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        if len(audio) <= self.chunk_samples + 2 * self.context_samples:
            return self.run_model(audio)
        pieces = []
        for core_start in range(0, len(audio), self.chunk_samples):
            first = core_start // self.stride  # global index of the first frame this chunk contributes
            last = min(total, (core_start + self.chunk_samples) // self.stride)
            if first >= last:
                break
            start = max(0, core_start - self.context_samples)  # a multiple of the stride: frames stay on the grid
            stop = min(len(audio), core_start + self.chunk_samples + self.context_samples)
            hidden = self.run_model(audio[start:stop])
            offset = start // self.stride
            pieces.append(hidden[first - offset:last - offset])
        features = np.concatenate(pieces)
        assert len(features) == total, (len(features), total)
        return features

    def to_video_frames(self, features_50hz: np.ndarray, num_frames: int, fps: float = FPS) -> np.ndarray:
        """``[F,768]`` at 50 Hz -> ``[num_frames,768]``: linear interpolation at each video frame's centre time."""
        frame_period = self.stride / SAMPLE_RATE
        first_centre = self.receptive_field / 2 / SAMPLE_RATE
        position = ((np.arange(num_frames) + 0.5) / fps - first_centre) / frame_period
        position = np.clip(position, 0, len(features_50hz) - 1)
        lower = np.floor(position).astype(np.int64)
        upper = np.minimum(lower + 1, len(features_50hz) - 1)
        weight = (position - lower)[:, None].astype(np.float32)
        return ((1 - weight) * features_50hz[lower] + weight * features_50hz[upper]).astype(np.float32)

    def __call__(self, audio: np.ndarray, num_frames: int | None = None, fps: float = FPS) -> np.ndarray:
        """Mono 16 kHz waveform -> float32 ``[T,768]`` at ``fps``; ``T = num_frames`` or the audio's whole frames."""
        if num_frames is None:
            num_frames = int(len(audio) * fps // SAMPLE_RATE)
        if num_frames <= 0:
            raise Wav2VecError(f"audio of {len(audio) / SAMPLE_RATE:.3f} s holds no whole frame at {fps} fps")
        return self.to_video_frames(self.features_50hz(audio), num_frames, fps)


def save_random_wav2vec(directory: str | Path, seed: int = 0) -> Path:
    """A base-size Wav2Vec2 (``Wav2Vec2Config()`` defaults: 12 layers, 768 wide) with random weights, saved
    like a release. For benchmarks: no weights can be downloaded here, and random weights cost exactly
    what trained ones do (their features, of course, mean nothing)."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(seed)
    directory = Path(directory)
    Wav2Vec2Model(Wav2Vec2Config()).eval().save_pretrained(directory)
    Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=True).save_pretrained(directory)
    return directory


_AUDIO_STREAM = re.compile(r"Stream #[^\n]*?Audio:[^\n]*?(\d+) Hz, ([^,\n]+)")


def read_speaker_audio(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Any audio file -> mono float32 ``[N]`` at 16 kHz, and what was converted to get there (for the log:
    e.g. ``["resampled from 44100 Hz to 16000 Hz", "mixed stereo down to mono"]``).

    An unreadable file, one without audio, or NaN/Inf samples raise :class:`~utils.media.MediaError`.
    """
    stream = _AUDIO_STREAM.search(ffmpeg_header(path))
    if stream is None:
        raise MediaError(f"{path}: no readable audio stream")
    audio = read_audio(path, SAMPLE_RATE)
    rate, layout = int(stream.group(1)), stream.group(2).strip()
    conversions = []
    if rate != SAMPLE_RATE:
        conversions.append(f"resampled from {rate} Hz to {SAMPLE_RATE} Hz")
    if layout != "mono":
        conversions.append(f"mixed {layout} down to mono")
    return audio, conversions


def extract_wav2vec_features(wav_path: str | Path, model_dir: str | Path, device: str = "cpu", *,
                             num_frames: int | None = None, layer: int = -1, chunk_seconds: float = 30.0,
                             context_seconds: float = 5.0, causal_context_seconds: float | None = None,
                             look_ahead: bool = True) -> np.ndarray:
    """Audio file (any rate/format ffmpeg reads) -> float32 ``[T,768]`` at 25 fps.

    ``num_frames`` fixes ``T`` (the video's frame count); by default ``T = floor(duration * 25)``.
    ``causal_context_seconds`` gives instead exactly the features the live path computes
    (``data_utils.wav2vec_stream.CausalWav2Vec`` with that left context and ``look_ahead``), e.g. to train a
    brain on them.
    """
    audio = read_audio(wav_path, SAMPLE_RATE)  # before the model: a bad file is refused at once
    extractor = Wav2VecExtractor(model_dir, device, layer=layer, chunk_seconds=chunk_seconds,
                                 context_seconds=context_seconds)
    if causal_context_seconds is None:
        return extractor(audio, num_frames)
    from data_utils.wav2vec_stream import CausalWav2Vec  # it builds on this module

    return CausalWav2Vec(extractor, context_seconds=causal_context_seconds,
                         look_ahead=look_ahead).extract(audio, num_frames)


@cli_main("data_utils.wav2vec")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("data_utils.wav2vec", __doc__)
    parser.add_argument("--wav", required=True, help="speaker audio: wav or any file with an audio stream")
    parser.add_argument("--model", required=True, help="wav2vec2 directory (save_pretrained) or hub id when online")
    parser.add_argument("--out", required=True, help="output .npy, float32 [T,768] at 25 fps")
    parser.add_argument("--num_frames", type=int, default=None, help="T: match a video's frame count")
    parser.add_argument("--layer", type=int, default=-1, help="-1: last layer; k: hidden_states[k]")
    parser.add_argument("--device", default="auto", help="auto (GPU when available), cpu, cuda, cuda:1 ...")
    parser.add_argument("--chunk_seconds", type=float, default=30.0)
    parser.add_argument("--context_seconds", type=float, default=5.0)
    parser.add_argument("--causal", type=float, metavar="SECONDS",
                        help="the live path's causal features with this left context (synthesize_listener --stream)")
    parser.add_argument("--no_look_ahead", action="store_true",
                        help="with --causal: each chunk from audio up to its own end (synthesize_listener --no_look_ahead)")
    args = parser.parse_args(argv)
    if args.no_look_ahead and args.causal is None:
        parser.error("--no_look_ahead only applies to --causal features")
    configure_threads()
    features = extract_wav2vec_features(args.wav, args.model, device=args.device, num_frames=args.num_frames,
                                        layer=args.layer, chunk_seconds=args.chunk_seconds,
                                        context_seconds=args.context_seconds, causal_context_seconds=args.causal,
                                        look_ahead=not args.no_look_ahead)
    save_npy(args.out, features)
    print(f"wrote {args.out}: float32 {list(features.shape)} at {FPS} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
