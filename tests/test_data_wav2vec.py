"""wav2vec2 features at 25 fps from a tiny random model saved with ``save_pretrained`` (the real format)."""
import numpy as np
import pytest

from fixtures import save_tiny_wav2vec, speech_like_audio, write_stereo_wav
from data_utils.media import write_wav
from utils.media import MediaError
from data_utils.wav2vec import SAMPLE_RATE, Wav2VecError, Wav2VecExtractor, extract_wav2vec_features, main
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
