"""The causal wav2vec 2.0 extractor of the live path: its deviation from whole-file extraction and its cost.

Usage (repo root):
    PYTHONPATH=. python benchmarks/bench_wav2vec_stream.py --device cuda            # base size, 60 s of audio
    PYTHONPATH=. python benchmarks/bench_wav2vec_stream.py --device cpu --seconds 12 --contexts 0 1 2
    PYTHONPATH=. python benchmarks/bench_wav2vec_stream.py --device cuda --look_ahead off     # one mode only

The model is a base-size Wav2Vec2 (``transformers.Wav2Vec2Config()`` defaults: 12 layers, 768 wide, group
norm conv stack) with **random weights**, saved to a temporary folder, unless ``--model`` names a local
one: no weights can be downloaded here, and a random model costs exactly what a trained one does. Its
deviation is indicative only: a trained model's attention and positional convolution may lean on right
context more or less than random ones do. The audio is a synthetic corpus speaker's ``speaker.wav``
(``data_utils.synthetic_dyadic --wav``: voiced from the speaker's energy and pitch, with pauses).

Both look-ahead modes of ``CausalWav2Vec`` are measured (``--look_ahead both``, the default; ``on`` or
``off`` for one): with it (each chunk waits 5 ms past its end, exact interpolation) and without (the
chunk's own end, its last frame on the last complete wav2vec frame). Prints two tables: per look-ahead
mode and left context, the relative error (``|streamed - whole| / |whole|``, over all frames, the voiced
ones and the pauses) and per-frame cosine (mean, min) against whole-file extraction, and the relative
error by position in the 8-frame chunk (the last frames have the least right context); then, per mode,
the time per chunk (p50 / p95 / max ms) of ``Wav2VecStream.push`` when the audio arrives in 10 ms blocks,
which is the features stage of the live latency budget (40 ms for features + brain + render on an
H100/H200).
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from data_utils.synthetic_dyadic import write_synthetic_corpus  # noqa: E402
from data_utils.wav2vec import SAMPLE_RATE, Wav2VecExtractor, read_speaker_audio, save_random_wav2vec  # noqa: E402
from data_utils.wav2vec_stream import CausalWav2Vec  # noqa: E402
from synthesis.session import AUDIO_BLOCK_SECONDS, percentiles_ms  # noqa: E402
from utils.runtime import resolve_device  # noqa: E402


LOOK_AHEAD_MODES = {"both": [True, False], "on": [True], "off": [False]}


def look_ahead_label(look_ahead: bool) -> str:
    return "on (5 ms)" if look_ahead else "off"


def deviation_rows(extractor: Wav2VecExtractor, audio: np.ndarray, contexts: list[float],
                   look_aheads: list[bool]) -> list[dict]:
    """One row per look-ahead mode and left context: the causal features against whole-file extraction."""
    whole = extractor(audio)  # [T,768]
    frame_samples = SAMPLE_RATE // 25
    rms = np.sqrt((audio[:len(whole) * frame_samples].reshape(len(whole), frame_samples) ** 2).mean(axis=1))
    voiced = rms > 0.01 * rms.max()  # frames within 40 dB of the loudest; the rest are pauses

    def relative(streamed, frames):
        return np.linalg.norm(streamed[frames] - whole[frames]) / np.linalg.norm(whole[frames])

    rows = []
    for look_ahead in look_aheads:
        for context in contexts:
            streamed = CausalWav2Vec(extractor, context_seconds=context, look_ahead=look_ahead).extract(audio)
            per_frame = np.linalg.norm(streamed - whole, axis=1) / np.linalg.norm(whole, axis=1)
            cosine = (streamed * whole).sum(1) / np.linalg.norm(streamed, axis=1) / np.linalg.norm(whole, axis=1)
            rows.append({"look_ahead": look_ahead, "context": context, "relative": relative(streamed, slice(None)),
                         "voiced": relative(streamed, voiced), "pauses": relative(streamed, ~voiced),
                         "cos_mean": cosine.mean(), "cos_min": cosine.min(),
                         "by_position": [per_frame[i::8].mean() for i in range(8)], "voiced_share": voiced.mean()})
    return rows


def chunk_cost_ms(extractor: Wav2VecExtractor, audio: np.ndarray, context: float, look_ahead: bool,
                  device) -> dict[str, float]:
    """Time of each push that computed a chunk, audio fed in live-sized blocks (synchronised on CUDA)."""
    stream = CausalWav2Vec(extractor, context_seconds=context, look_ahead=look_ahead).stream()
    block = round(AUDIO_BLOCK_SECONDS * SAMPLE_RATE)
    seconds = []
    for start in range(0, len(audio), block):
        began = time.perf_counter()
        features = stream.push(audio[start:start + block])  # returns host numpy: already synchronised
        if len(features):
            seconds.append(time.perf_counter() - began)
    return {**percentiles_ms(np.array(seconds[3:])), "chunks": len(seconds) - 3}  # first chunks: warm-up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a local wav2vec2 folder (default: base size, random weights)")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length for the cost run")
    parser.add_argument("--deviation_seconds", type=float, default=12.0, help="audio length for the deviation")
    parser.add_argument("--contexts", type=float, nargs="+", default=[0.0, 1.0, 2.0], help="left contexts, s")
    parser.add_argument("--cost_context", type=float, default=2.0, help="left context of the cost run, s")
    parser.add_argument("--look_ahead", choices=sorted(LOOK_AHEAD_MODES), default="both",
                        help="CausalWav2Vec's look-ahead modes to measure: on (5 ms), off, or both")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    look_aheads = LOOK_AHEAD_MODES[args.look_ahead]
    with tempfile.TemporaryDirectory() as temporary:
        model_dir = args.model or save_random_wav2vec(Path(temporary) / "wav2vec2_base_random")
        extractor = Wav2VecExtractor(model_dir, device)
        name = "random-weight base" if args.model is None else str(args.model)
        layers, width = extractor.model.config.num_hidden_layers, extractor.model.config.hidden_size
        corpus = write_synthetic_corpus(Path(temporary) / "corpus", clips=3, seed=1, wav=True,
                                        seconds=max(args.seconds, args.deviation_seconds))
        audio, _ = read_speaker_audio(corpus / "clips" / "clip_0000" / "speaker.wav")
        deviation = deviation_rows(extractor, audio[:round(args.deviation_seconds * SAMPLE_RATE)], args.contexts,
                                   look_aheads)
        costs = [chunk_cost_ms(extractor, audio[:round(args.seconds * SAMPLE_RATE)], args.cost_context, look_ahead,
                               device) for look_ahead in look_aheads]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device_name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}; model: {name} "
          f"wav2vec2 ({layers} layers, {width} wide)")
    print(f"\ndeviation from whole-file extraction ({args.deviation_seconds:g} s of a synthetic speaker, "
          f"{100 * deviation[0]['voiced_share']:.0f}% of frames voiced, the rest pauses)")
    print("| look-ahead | left context s | relative error | voiced frames | pauses | cosine mean | cosine min | "
          "relative error by frame in chunk 0..7 |")
    print("|---|---|---|---|---|---|---|---|")
    for row in deviation:
        positions = " ".join(f"{value:.3f}" for value in row["by_position"])
        print(f"| {look_ahead_label(row['look_ahead'])} | {row['context']:g} | {row['relative']:.3f} | "
              f"{row['voiced']:.3f} | {row['pauses']:.3f} | {row['cos_mean']:.4f} | {row['cos_min']:.4f} | "
              f"{positions} |")
    print(f"\ncost per 8-frame chunk, {args.cost_context:g} s left context, audio in "
          f"{1000 * AUDIO_BLOCK_SECONDS:.0f} ms blocks ({costs[0]['chunks']} chunks)")
    print("| look-ahead | p50 ms | p95 ms | max ms |\n|---|---|---|---|")
    for look_ahead, cost in zip(look_aheads, costs):
        print(f"| {look_ahead_label(look_ahead)} | {cost['p50']:.1f} | {cost['p95']:.1f} | {cost['max']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
