"""wav2vec2 features at 25 fps from a tiny random model saved with ``save_pretrained`` (the real format)."""
import numpy as np
import pytest

from data_utils.media import write_wav
from data_utils.wav2vec import (SAMPLE_RATE, Wav2VecError, Wav2VecExtractor, extract_wav2vec_features, main,
                                read_speaker_audio)
from data_utils.wav2vec_stream import CausalWav2Vec
from fixtures import save_tiny_wav2vec, speech_like_audio, write_stereo_wav
from utils.media import MediaError
from utils.flame import AUDIO_DIM


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_wav2vec(tmp_path_factory.mktemp("w2v") / "tiny")


@pytest.fixture(scope="module")
def stereo_wav(tmp_path_factory):
    return write_stereo_wav(tmp_path_factory.mktemp("audio") / "speaker_44k.wav", seconds=4.0, sample_rate=44100)


def test_features_have_25fps_frame_count_and_are_deterministic(model_dir, stereo_wav):
    features = extract_wav2vec_features(stereo_wav, model_dir)
    assert features.dtype == np.float32 and features.shape == (4 * 25, AUDIO_DIM)
    assert np.isfinite(features).all() and features.std(axis=0).mean() > 0  # frames differ over time
    again = extract_wav2vec_features(stereo_wav, model_dir)
    np.testing.assert_array_equal(features, again)
    exact = extract_wav2vec_features(stereo_wav, model_dir, num_frames=90)
    assert exact.shape == (90, AUDIO_DIM)
    np.testing.assert_allclose(exact, features[:90], atol=1e-6)  # T only cuts, it does not stretch


def test_resampling_to_16k_matches_a_native_16k_file(model_dir, tmp_path):
    mono_16k = speech_like_audio(2.0, 16000, seed=4)
    write_wav(tmp_path / "native.wav", mono_16k, 16000)
    from scipy.signal import resample_poly
    write_wav(tmp_path / "at48k.wav", resample_poly(mono_16k, 3, 1), 48000)
    native = extract_wav2vec_features(tmp_path / "native.wav", model_dir)
    converted = extract_wav2vec_features(tmp_path / "at48k.wav", model_dir)
    assert native.shape == converted.shape == (50, AUDIO_DIM)
    cosine = (native * converted).sum(1) / np.linalg.norm(native, axis=1) / np.linalg.norm(converted, axis=1)
    assert cosine.min() > 0.99


def test_chunked_extraction_matches_whole_file(model_dir):
    audio = speech_like_audio(6.0, SAMPLE_RATE, seed=1)
    extractor = Wav2VecExtractor(model_dir, chunk_seconds=60)
    whole = extractor.features_50hz(audio)
    chunked = extractor.with_chunking(1.5, 1.0).features_50hz(audio)
    no_context = extractor.with_chunking(1.5, 0.01).features_50hz(audio)
    assert whole.shape == chunked.shape == no_context.shape
    error = np.linalg.norm(chunked - whole) / np.linalg.norm(whole)
    error_without_context = np.linalg.norm(no_context - whole) / np.linalg.norm(whole)
    assert 0 < error < 0.05  # the chunk path ran (not bit-identical) and stays close
    assert error < error_without_context  # the overlap is what keeps chunks close to whole-file extraction


def test_50hz_to_25fps_interpolates_at_frame_centres(model_dir):
    extractor = Wav2VecExtractor(model_dir)
    ramp = np.repeat(np.arange(100, dtype=np.float32)[:, None], AUDIO_DIM, axis=1)  # frame j holds j
    video = extractor.to_video_frames(ramp, 40)
    # video frame k is centred at (k+0.5)/25 s; wav2vec frame j at (320 j + 200)/16000 s -> j = 2k + 0.375
    np.testing.assert_allclose(video[:, 0], 2 * np.arange(40) + 0.375, atol=1e-5)


def test_refusals_name_the_problem(model_dir, tmp_path):
    with pytest.raises(Wav2VecError, match="cannot load"):
        Wav2VecExtractor(tmp_path / "no_such_model")
    with pytest.raises(Wav2VecError, match="layer 7"):
        Wav2VecExtractor(model_dir, layer=7)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEnot really audio")
    with pytest.raises(MediaError, match="broken.wav"):
        extract_wav2vec_features(broken, model_dir)
    write_wav(tmp_path / "tiny.wav", np.zeros(200, dtype=np.float32), 16000)
    with pytest.raises(Wav2VecError, match="shorter than one wav2vec frame"):
        extract_wav2vec_features(tmp_path / "tiny.wav", model_dir, num_frames=1)


def test_cli_writes_features_or_fails_without_output(model_dir, stereo_wav, tmp_path, capsys):
    out = tmp_path / "feats.npy"
    assert main(["--wav", str(stereo_wav), "--model", str(model_dir), "--out", str(out), "--device", "cpu",
                 "--num_frames", "80"]) == 0
    assert np.load(out).shape == (80, AUDIO_DIM)
    missing = tmp_path / "never.npy"
    assert main(["--wav", str(tmp_path / "absent.wav"), "--model", str(model_dir), "--out", str(missing)]) == 2
    assert "absent.wav" in capsys.readouterr().err and not missing.exists()


@pytest.mark.gpu
def test_cuda_features_match_cpu(model_dir, stereo_wav):
    cpu = extract_wav2vec_features(stereo_wav, model_dir, device="cpu")
    gpu = extract_wav2vec_features(stereo_wav, model_dir, device="cuda")
    assert gpu.shape == cpu.shape and gpu.dtype == np.float32
    # cuDNN may run the conv stack in TF32, so compare relatively rather than bit for bit
    assert np.linalg.norm(gpu - cpu) / np.linalg.norm(cpu) < 1e-2


# --- the causal, chunked extractor of the live path (data_utils.wav2vec_stream) -----------------------------
# Tolerance documented in docs/SYNTHESIS.md for this tiny model (1 layer, positional conv of 16 frames):
# relative error ~0.10, per-frame cosine >= 0.97 against whole-file extraction with 2 s of left context.
STREAM_RELATIVE_ERROR = 0.15
STREAM_MIN_COSINE = 0.95


def relative_error(features, reference):
    return np.linalg.norm(features - reference) / np.linalg.norm(reference)


def cosine(features, reference):
    return (features * reference).sum(1) / np.linalg.norm(features, axis=1) / np.linalg.norm(reference, axis=1)


@pytest.fixture(scope="module")
def extractor(model_dir):
    return Wav2VecExtractor(model_dir)


def test_streamed_features_match_whole_file_extraction_within_the_documented_tolerance(extractor):
    audio = speech_like_audio(6.0, SAMPLE_RATE, seed=1)
    whole = extractor(audio)
    live = CausalWav2Vec(extractor, context_seconds=2.0)
    stream = live.stream()
    blocks = [stream.push(audio[i:i + 160]) for i in range(0, len(audio), 160)]  # 10 ms blocks
    streamed = np.concatenate([*blocks, stream.flush()])
    assert streamed.shape == whole.shape == (150, AUDIO_DIM) and streamed.dtype == np.float32
    assert {len(b) for b in blocks} == {0, 8}  # one 8-frame chunk at a time, as soon as it can be computed
    assert 0 < relative_error(streamed, whole) < STREAM_RELATIVE_ERROR
    assert cosine(streamed, whole).min() > STREAM_MIN_COSINE
    np.testing.assert_array_equal(live.extract(audio), streamed)  # the offline path is the same numbers
    # the left context is what keeps it close: none at all is worse
    no_context = CausalWav2Vec(extractor, context_seconds=0).extract(audio)
    assert relative_error(no_context, whole) > relative_error(streamed, whole)


def test_a_chunks_features_never_change_with_later_audio(extractor):
    audio = speech_like_audio(4.0, SAMPLE_RATE, seed=2)
    changed = audio.copy()
    change_at = 2 * SAMPLE_RATE  # 2.0 s = frame 50, inside chunk 6 (frames 48..55)
    changed[change_at:] = speech_like_audio(2.0, SAMPLE_RATE, seed=9)
    live = CausalWav2Vec(extractor, context_seconds=1.0)
    # chunk c needs samples up to 5120 (c + 1) + 80: chunks 0..4 end before 2.0 s, chunk 5 needs 30800 <= 32000
    assert live.samples_needed(48) == 5120 * 6 + 80 <= change_at < live.samples_needed(56)
    before, after = live.extract(audio), live.extract(changed)
    np.testing.assert_array_equal(before[:48], after[:48])
    assert np.abs(before[48:] - after[48:]).max(axis=1).min() > 0  # every later frame did change
    # the control: whole-file extraction lets the change reach back into the first 48 frames
    assert np.abs(extractor(audio)[:48] - extractor(changed)[:48]).max() > 1e-4


def test_stream_emits_the_asked_frame_count_and_refuses_bad_samples(extractor):
    live = CausalWav2Vec(extractor)
    audio = speech_like_audio(1.0, SAMPLE_RATE, seed=3)
    assert live.extract(audio).shape == (25, AUDIO_DIM) and live.frames_in(len(audio)) == 25
    padded = live.extract(audio, num_frames=30)  # a longer video: the last features repeat past the audio
    assert padded.shape == (30, AUDIO_DIM) and np.allclose(padded[-1], padded[-2])
    assert live.extract(audio, num_frames=10).shape == (10, AUDIO_DIM)
    stream = live.stream()
    bad = audio.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="1 NaN/Inf sample"):
        stream.push(bad)
    with pytest.raises(ValueError, match="mono"):
        stream.push(np.stack([audio, audio], axis=1))
    with pytest.raises(Wav2VecError, match="shorter than one wav2vec frame"):
        live.extract(np.zeros(200, np.float32), num_frames=1)


def test_refuses_a_folder_that_is_not_a_complete_wav2vec2(model_dir, tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=AUDIO_DIM, num_hidden_layers=1, num_attention_heads=4,
                         intermediate_size=32)).save_pretrained(tmp_path / "bert")
    with pytest.raises(Wav2VecError, match="holds a 'bert' model, not a Wav2Vec2"):
        Wav2VecExtractor(tmp_path / "bert")
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    (config_only / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(Wav2VecError, match="cannot load"):
        Wav2VecExtractor(config_only)


def test_reading_speaker_audio_says_what_was_converted(stereo_wav, tmp_path):
    audio, conversions = read_speaker_audio(stereo_wav)
    assert conversions == ["resampled from 44100 Hz to 16000 Hz", "mixed stereo down to mono"]
    assert audio.dtype == np.float32 and len(audio) == pytest.approx(4 * SAMPLE_RATE, abs=2)
    write_wav(tmp_path / "mono16k.wav", speech_like_audio(0.5, SAMPLE_RATE), SAMPLE_RATE)
    assert read_speaker_audio(tmp_path / "mono16k.wav")[1] == []


def test_cli_writes_the_live_paths_causal_features_when_asked(model_dir, stereo_wav, tmp_path):
    assert main(["--wav", str(stereo_wav), "--model", str(model_dir), "--out", str(tmp_path / "c.npy"),
                 "--device", "cpu", "--causal", "1.5"]) == 0
    audio, _ = read_speaker_audio(stereo_wav)
    expected = CausalWav2Vec(Wav2VecExtractor(model_dir), context_seconds=1.5).extract(audio)
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), expected)
