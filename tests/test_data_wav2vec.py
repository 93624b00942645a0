"""wav2vec2 features at 25 fps from a tiny random model saved with ``save_pretrained`` (the real format)."""
from types import SimpleNamespace

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


CHUNK_SAMPLES = 5120  # one 8-frame chunk: 8 x 640 samples


@pytest.mark.parametrize("look_ahead, look_ahead_samples", [(True, 80), (False, 0)])
def test_a_chunk_is_emitted_the_sample_its_cut_arrives(extractor, look_ahead, look_ahead_samples):
    audio = speech_like_audio(1.0, SAMPLE_RATE, seed=4)
    live = CausalWav2Vec(extractor, context_seconds=1.0, look_ahead=look_ahead)
    for chunk in range(2):
        cut = CHUNK_SAMPLES * (chunk + 1) + look_ahead_samples
        assert live.samples_needed(8 * (chunk + 1)) == cut
        stream = live.stream()
        assert len(stream.push(audio[:cut - 1])) == 8 * chunk  # one sample short: not yet
        assert len(stream.push(audio[cut - 1:cut])) == 8


@pytest.mark.parametrize("look_ahead", [True, False])
def test_no_audio_after_a_chunks_cut_reaches_it_however_it_is_pushed(extractor, look_ahead):
    audio = speech_like_audio(3.0, SAMPLE_RATE, seed=5)
    other = speech_like_audio(3.0, SAMPLE_RATE, seed=6)
    live = CausalWav2Vec(extractor, context_seconds=1.0, look_ahead=look_ahead)
    before = live.extract(audio)  # one push: every chunk's window could reach the whole file
    for chunk in range(len(audio) // CHUNK_SAMPLES):
        stop = 8 * (chunk + 1)
        changed = audio.copy()
        changed[live.samples_needed(stop):] = other[live.samples_needed(stop):]
        after = live.extract(changed)
        np.testing.assert_array_equal(before[:stop], after[:stop])
        assert np.abs(before[stop] - after[stop]).max() > 0  # the change does reach the next frame


@pytest.mark.parametrize("look_ahead", [True, False])
def test_block_sizes_do_not_change_the_features(extractor, look_ahead):
    audio = speech_like_audio(3.0, SAMPLE_RATE, seed=7)
    live = CausalWav2Vec(extractor, context_seconds=1.0, look_ahead=look_ahead)
    one_push = live.extract(audio, num_frames=80)
    rng = np.random.default_rng(0)
    # 10 ms blocks end exactly on every cut without look-ahead; random ones overshoot it by up to 3000 samples
    for sizes in ([160] * 300, rng.integers(1, 3000, 100)):
        stream, edges = live.stream(), np.minimum(np.cumsum([0, *sizes]), len(audio))
        blocks = [stream.push(audio[start:end]) for start, end in zip(edges[:-1], edges[1:])]
        np.testing.assert_array_equal(np.concatenate([*blocks, stream.flush(80)]), one_push)


class FrameLocalWav2Vec:
    """A stand-in wav2vec2 with the base conv geometry whose frame ``j`` is a copy of its own samples
    ``[320 j, 320 j + 400)`` (tiled to 768; no attention, no normalisation): a frame does not depend on the
    window it is computed in, so the two cuts' features can be compared bit for bit."""

    stride, receptive_field = 320, 400
    feature_extractor = SimpleNamespace(do_normalize=False)
    num_frames_50hz = Wav2VecExtractor.num_frames_50hz

    def run_model(self, audio):
        frames = np.lib.stride_tricks.sliding_window_view(audio, self.receptive_field)[::self.stride]  # [F,400]
        return np.tile(frames, (1, 2))[:, :AUDIO_DIM]


def test_without_look_ahead_only_each_chunks_last_frame_changes_to_its_lower_neighbour():
    model, audio = FrameLocalWav2Vec(), speech_like_audio(3.0, SAMPLE_RATE, seed=8)  # 75 frames, 9 chunks
    exact = CausalWav2Vec(model, context_seconds=1.0, look_ahead=True).extract(audio)
    sooner = CausalWav2Vec(model, context_seconds=1.0, look_ahead=False).extract(audio)
    # frame 8c+7 sits at wav2vec position 16c+14.375; its upper neighbour 16c+15 ends 80 samples past the cut
    # 5120 (c+1). Frames 72..74 come from flush, whose cut is the audio's end in both modes.
    differs = np.flatnonzero(np.abs(exact - sooner).max(axis=1) > 0)
    np.testing.assert_array_equal(differs, 8 * np.arange(9) + 7)
    hidden = model.run_model(audio)  # [F,768], the same frames every window holds
    np.testing.assert_array_equal(sooner[differs], hidden[16 * np.arange(9) + 14])


def test_without_look_ahead_the_last_frame_is_the_windows_last_complete_wav2vec_frame(extractor, monkeypatch):
    audio = speech_like_audio(1.0, SAMPLE_RATE, seed=9)  # 3 whole chunks, then 1 frame from flush
    run_model, windows = extractor.run_model, []

    def recording_run_model(window):
        windows.append(run_model(window))  # [wav2vec frames of the window, 768]
        return windows[-1]

    monkeypatch.setattr(extractor, "run_model", recording_run_model)
    CausalWav2Vec(extractor, context_seconds=0, look_ahead=True).extract(audio)
    assert [len(hidden) for hidden in windows[:3]] == [16, 16, 16]  # no left context: frames 16c .. 16c+15
    windows.clear()
    features = CausalWav2Vec(extractor, context_seconds=0, look_ahead=False).extract(audio)
    assert [len(hidden) for hidden in windows[:3]] == [15, 15, 15]  # 16c .. 16c+14, complete inside the cut
    for chunk, hidden in enumerate(windows[:3]):
        np.testing.assert_array_equal(features[8 * chunk + 7], hidden[-1])


@pytest.mark.parametrize("look_ahead", [True, False])
@pytest.mark.parametrize("context_seconds", [0.0, 2.0])
def test_a_video_longer_than_audio_ending_just_past_a_chunk(extractor, look_ahead, context_seconds):
    # The push emits all 72 whole frames (9 chunks); the audio ends 200 samples later, so flush's 8 padded
    # frames all take wav2vec frame 143, the last complete one, and its window starts one wav2vec frame
    # earlier than frame 72's own position (144.375) would put it: the stream must not have pruned that far.
    audio = speech_like_audio(3.0, SAMPLE_RATE, seed=10)[:CHUNK_SAMPLES * 9 + 200]
    live = CausalWav2Vec(extractor, context_seconds=context_seconds, look_ahead=look_ahead)
    padded = live.extract(audio, num_frames=80)
    np.testing.assert_array_equal(padded[:72], live.extract(audio))
    np.testing.assert_array_equal(padded[72:], np.repeat(padded[72:73], 8, axis=0))


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
    assert main(["--wav", str(stereo_wav), "--model", str(model_dir), "--out", str(tmp_path / "e.npy"),
                 "--device", "cpu", "--causal", "1.5", "--no_look_ahead"]) == 0
    early = CausalWav2Vec(Wav2VecExtractor(model_dir), context_seconds=1.5, look_ahead=False).extract(audio)
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), early)
    assert not np.array_equal(early, expected)
