"""``synthesize_listener.py`` end to end with a tiny brain and body trained inside the test session.

One session-scoped fixture trains both (a few steps: speed and plumbing are under test here, not quality);
every test then runs the CLI as a user would, through ``main([...])`` or a subprocess.
"""
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import synthesize_listener
from brain.config import BrainConfig
from data_utils.synthetic_dyadic import write_synthetic_corpus
from utils.atomic import temporary_path
from utils.config import load_config
from utils.flame import FLAME_DIM, FPS
from utils.media import probe_video

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A corpus clip with speaker.wav, a tiny brain checkpoint and a tiny body model directory."""
    root = tmp_path_factory.mktemp("synthesis_models")
    import train_diffusion
    from data_utils.synthetic_subject import write_synthetic_subject
    from scene.training import BodyTrainingConfig, train as train_body

    write_synthetic_corpus(root / "corpus", clips=5, seconds=4, seed=0, wav=True)
    brain_cfg = load_config(BrainConfig, REPO_ROOT / "configs" / "brain_tiny.yaml",
                            [f"data={root / 'corpus'}", f"out={root / 'brain'}", "model.width=32",
                             "train.max_steps=10", "train.batch_size=16", "train.val_every=10",
                             "train.val_windows=8", "train.device=cpu"])
    train_diffusion.train(brain_cfg, progress=False)
    write_synthetic_subject(root / "subject", size=32, frames=12, seed=0)
    body_cfg = load_config(BodyTrainingConfig, REPO_ROOT / "configs" / "body_tiny.yaml",
                           [f"subject={root / 'subject'}", f"model_dir={root / 'body'}", "train.max_steps=2",
                            "train.val_every=2", "train.val_frames=2", "train.device=cpu",
                            "model.init.face_count=200", "model.init.mouth_count=20"])
    train_body(body_cfg, progress=False)
    clip = root / "corpus" / "clips" / "clip_0000"
    return {"brain": root / "brain" / "checkpoint.pth", "body": root / "body", "clip": clip,
            "frames": len(np.load(clip / "speaker_exp.npy"))}


def run_cli(models, output, *extra, audio=None, visual=None, brain=None, body=None):
    clip = models["clip"]
    argv = ["--audio", str(audio or clip / "speaker_audio.npy"), "--visual", str(visual or clip / "speaker_exp.npy"),
            "--body_checkpoint", str(body or models["body"]), "--brain_checkpoint", str(brain or models["brain"]),
            "--output", str(output), "--device", "cpu", "--no_progress", *map(str, extra)]
    return synthesize_listener.main(argv)


def test_video_has_every_frame_the_speaker_audio_motion_and_plot(tiny_models, tmp_path, capsys):
    assert run_cli(tiny_models, tmp_path / "out.mp4", "--seed", 3) == 0
    num_frames = tiny_models["frames"]
    info = probe_video(tmp_path / "out.mp4")
    assert (info.num_frames, info.fps, info.video_codec, info.pixel_format) == (num_frames, FPS, "h264", "yuv420p")
    assert info.duration_s == pytest.approx(num_frames / FPS, abs=0.05)
    assert info.has_audio  # speaker.wav beside the features is picked up
    assert np.load(tmp_path / "out.npy").shape == (num_frames, FLAME_DIM)
    assert (tmp_path / "out.png").stat().st_size > 0
    assert "with the speaker's audio" in capsys.readouterr().out


def test_same_seed_same_motion_other_seed_other_motion(tiny_models, tmp_path):
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        assert run_cli(tiny_models, tmp_path / f"{name}.mp4", "--seed", seed, "--steps", 3) == 0
    a, b, c = (np.load(tmp_path / f"{name}.npy") for name in "abc")
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3


def test_samples_each_get_a_video_and_a_grid(tiny_models, tmp_path):
    wav = tmp_path / "other.wav"
    (tmp_path / "other.wav").write_bytes((tiny_models["clip"] / "speaker.wav").read_bytes())
    assert run_cli(tiny_models, tmp_path / "k.mp4", "--num_samples", 2, "--steps", 3, "--wav", wav) == 0
    single = probe_video(tmp_path / "k_s0.mp4")
    grid = probe_video(tmp_path / "k_grid.mp4")
    assert (grid.width, grid.height) == (2 * single.width, single.height)
    assert probe_video(tmp_path / "k_s1.mp4").num_frames == grid.num_frames == tiny_models["frames"]
    assert grid.has_audio and single.has_audio
    motion = np.load(tmp_path / "k.npy")
    assert motion.shape == (2, tiny_models["frames"], FLAME_DIM) and np.abs(motion[0] - motion[1]).mean() > 1e-3
    assert not (tmp_path / "k.mp4").exists()


def test_streaming_matches_offline_frame_for_frame_of_motion(tiny_models, tmp_path, capsys):
    assert run_cli(tiny_models, tmp_path / "offline.mp4", "--seed", 2, "--steps", 3) == 0
    assert run_cli(tiny_models, tmp_path / "live.mp4", "--seed", 2, "--steps", 3, "--stream") == 0
    report = capsys.readouterr().out
    assert "first audio sample of a chunk -> its frames ready" in report and "sustained" in report
    offline, live = np.load(tmp_path / "offline.npy"), np.load(tmp_path / "live.npy")
    assert probe_video(tmp_path / "live.mp4").num_frames == len(live) == len(offline) == tiny_models["frames"]
    # the policy's offline loop is the streaming loop, so a seed gives the same motion: no extra seams
    np.testing.assert_allclose(live, offline, atol=1e-5)
    # and the motion is continuous across chunk boundaries: no jump larger than the clip's typical steps
    steps = np.abs(np.diff(live, axis=0)).max(axis=1)  # [T-1]
    boundary = steps[7::8]  # frame 8k-1 -> 8k
    assert boundary.max() <= 3 * np.percentile(steps, 95)


def bad_array(tmp_path, name, shape, nan=False):
    array = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    if nan:
        array[2, 3] = np.nan
    np.save(tmp_path / name, array)
    return tmp_path / name


@pytest.mark.parametrize("case, message", [
    ("length", "same length"),
    ("audio_width", r"expected shape \[T,768\]"),
    ("visual_width", r"expected shape \[T,50\]"),
    ("nan", "NaN"),
    ("body_as_brain", "is a body checkpoint, but a brain checkpoint was expected"),
    ("brain_as_body", "is a brain checkpoint, but a body checkpoint was expected"),
    ("missing_audio", "no such file"),
    ("missing_body", "no such file or directory"),
    ("bad_wav", "no readable audio stream"),
    ("not_mp4", r"must be an \.mp4"),
    ("stream_samples", "one live listener"),
    ("cuda_without_gpu", "CUDA is not available"),
    ("look_ahead_without_wav2vec", "--no_look_ahead only applies"),
])
def test_bad_input_fails_cleanly_naming_the_problem(tiny_models, tmp_path, capsys, case, message):
    frames = tiny_models["frames"]
    out_dir = tmp_path / "out"
    kwargs, extra, output = {}, [], out_dir / "x.mp4"
    if case == "length":
        kwargs["audio"] = bad_array(tmp_path, "a.npy", (frames - 3, 768))
    elif case == "audio_width":
        kwargs["audio"] = bad_array(tmp_path, "a.npy", (frames, 512))
    elif case == "visual_width":
        kwargs["visual"] = bad_array(tmp_path, "v.npy", (frames, 56))
    elif case == "nan":
        kwargs["visual"] = bad_array(tmp_path, "v.npy", (frames, 50), nan=True)
    elif case == "body_as_brain":
        kwargs["brain"] = tiny_models["body"] / "body.pth"
    elif case == "brain_as_body":
        kwargs["body"] = tiny_models["brain"]
    elif case == "missing_audio":
        kwargs["audio"] = tmp_path / "nowhere.npy"
    elif case == "missing_body":
        kwargs["body"] = tmp_path / "no_body"
    elif case == "bad_wav":
        (tmp_path / "broken.wav").write_bytes(b"RIFF nonsense")
        extra = ["--wav", tmp_path / "broken.wav"]
    elif case == "not_mp4":
        output = out_dir / "x.avi"
    elif case == "stream_samples":
        extra = ["--stream", "--num_samples", 2]
    elif case == "cuda_without_gpu":
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        extra = ["--device", "cuda"]
    elif case == "look_ahead_without_wav2vec":
        extra = ["--no_look_ahead"]
    assert run_cli(tiny_models, output, *extra, **kwargs) == 2
    error = capsys.readouterr().err
    assert "error" in error and re.search(message, error), error
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_command_line_exits_non_zero_and_writes_nothing(tiny_models, tmp_path):
    clip = tiny_models["clip"]
    bad = bad_array(tmp_path, "v.npy", (tiny_models["frames"] + 1, 50))
    result = subprocess.run([sys.executable, str(REPO_ROOT / "synthesize_listener.py"), "--audio",
                             str(clip / "speaker_audio.npy"), "--visual", str(bad), "--body_checkpoint",
                             str(tiny_models["body"]), "--brain_checkpoint", str(tiny_models["brain"]),
                             "--output", str(tmp_path / "o.mp4")], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 2 and str(bad) in result.stderr
    assert list(tmp_path.glob("o*")) == []


@pytest.fixture(scope="module")
def tiny_wav2vec(tmp_path_factory):
    from fixtures import save_tiny_wav2vec

    return save_tiny_wav2vec(tmp_path_factory.mktemp("wav2vec") / "tiny")


def wav_argv(models, wav2vec, output, *extra, wav=None, visual=True):
    clip = models["clip"]
    argv = ["--wav", str(wav or clip / "speaker.wav"), "--wav2vec", str(wav2vec), "--body_checkpoint",
            str(models["body"]), "--brain_checkpoint", str(models["brain"]), "--output", str(output),
            "--device", "cpu", "--steps", "2", "--no_progress", *map(str, extra)]
    return argv + (["--visual", str(clip / "speaker_exp.npy")] if visual else [])


def test_live_session_from_the_voice_emits_every_frame_with_the_audio(tiny_models, tiny_wav2vec, tmp_path, capsys):
    from fixtures import write_stereo_wav

    wav = write_stereo_wav(tmp_path / "speaker_44k.wav", seconds=2.0, sample_rate=44100)
    assert synthesize_listener.main(wav_argv(tiny_models, tiny_wav2vec, tmp_path / "live.mp4", "--stream",
                                             wav=wav, visual=False)) == 0
    out = capsys.readouterr().out
    assert "resampled from 44100 Hz to 16000 Hz" in out and "mixed stereo down to mono" in out
    assert "audio only" in out
    for stage in ("features (audio -> 25 fps)", "brain", "render", "encode", "first audio sample of a chunk"):
        assert re.search(rf"\| {re.escape(stage)}[^|]* \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", out), stage
    info = probe_video(tmp_path / "live.mp4")
    assert info.num_frames == 50 and info.has_audio and info.duration_s == pytest.approx(2.0, abs=0.05)
    motion = np.load(tmp_path / "live.npy")
    assert motion.shape == (50, FLAME_DIM) and np.isfinite(motion).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.mp4", "live.npy", "live.png", "speaker_44k.wav"]


def test_offline_from_the_voice_is_the_live_path_and_never_looks_ahead(tiny_models, tiny_wav2vec, tmp_path):
    """The offline --wav --wav2vec path runs the causal extractor, so a seed's motion equals the live
    session's, and audio changed after a chunk changes neither that chunk's features nor its motion."""
    from brain.policy import ListenerPolicy
    from data_utils.media import read_audio
    from data_utils.wav2vec import Wav2VecExtractor
    from data_utils.wav2vec_stream import CausalWav2Vec
    from synthesis.pipeline import sample_motion

    clip = tiny_models["clip"]
    assert synthesize_listener.main(wav_argv(tiny_models, tiny_wav2vec, tmp_path / "offline.mp4")) == 0
    assert synthesize_listener.main(wav_argv(tiny_models, tiny_wav2vec, tmp_path / "live.mp4", "--stream")) == 0
    offline, live = np.load(tmp_path / "offline.npy"), np.load(tmp_path / "live.npy")
    assert offline.shape == (tiny_models["frames"], FLAME_DIM)
    np.testing.assert_allclose(live, offline, atol=1e-5)
    # the same speaker with different audio from 2.0 s on, through the same causal features and brain
    samples = read_audio(clip / "speaker.wav")
    changed = samples.copy()
    changed[32000:] = np.random.default_rng(0).normal(scale=0.3, size=len(samples) - 32000)
    policy = ListenerPolicy.from_checkpoint(tiny_models["brain"])
    exp = np.load(clip / "speaker_exp.npy")
    whole, causal = Wav2VecExtractor(tiny_wav2vec), CausalWav2Vec(Wav2VecExtractor(tiny_wav2vec))

    def motion(features):
        return sample_motion(policy, features, exp, num_samples=1, seed=0, steps=2, progress=False)[0]

    np.testing.assert_allclose(motion(causal.extract(samples, len(exp))), offline, atol=1e-5)  # the CLI's numbers
    # --no_look_ahead: the extractor that emits each chunk at its own end, and only that one
    assert synthesize_listener.main(wav_argv(tiny_models, tiny_wav2vec, tmp_path / "early.mp4", "--no_look_ahead")) == 0
    early = np.load(tmp_path / "early.npy")
    no_look_ahead = CausalWav2Vec(Wav2VecExtractor(tiny_wav2vec), look_ahead=False)
    np.testing.assert_allclose(motion(no_look_ahead.extract(samples, len(exp))), early, atol=1e-5)
    assert np.abs(early - offline).max() > 0
    unchanged_frames = 40  # chunks 0..4 need audio up to 5120 * 5 + 80 samples < 32000
    # bit for bit (the same inputs give the same numbers on one CPU); the tiny brain is nearly deaf, so
    # "changed" below means any difference at all
    original, other = (motion(causal.extract(audio, len(exp))) for audio in (samples, changed))
    np.testing.assert_array_equal(other[:unchanged_frames], original[:unchanged_frames])
    assert np.abs(other[48:] - original[48:]).max() > 0  # the change did reach the later motion
    # the control: whole-file features let the change reach back into the first chunks' motion
    original, other = (motion(whole(audio, len(exp))) for audio in (samples, changed))
    assert np.abs(other[:unchanged_frames] - original[:unchanged_frames]).max() > 0


def nan_wav(path):
    from scipy.io import wavfile

    audio = np.zeros(16000, np.float32)
    audio[100] = np.nan
    wavfile.write(path, 16000, audio)
    return path


@pytest.mark.parametrize("case, message", [
    ("nan_wav", "NaN/Inf"),
    ("unreadable_wav", "no readable audio stream"),
    ("missing_model", "--wav2vec .*no such file or directory"),
    ("not_wav2vec", "holds a 'bert' model, not a Wav2Vec2"),
    ("both_audio_sources", "either --audio features or --wav2vec"),
    ("exp_guidance_without_visual", "--guidance_speaker_exp needs the speaker's expression"),
])
def test_bad_voice_input_fails_cleanly(tiny_models, tiny_wav2vec, tmp_path, capsys, case, message):
    out_dir = tmp_path / "out"
    wav, wav2vec, extra, visual = None, tiny_wav2vec, ["--stream"], True
    if case == "nan_wav":
        wav = nan_wav(tmp_path / "nan.wav")
    elif case == "unreadable_wav":
        wav = tmp_path / "broken.wav"
        wav.write_bytes(b"RIFF0000WAVEnot really audio")
    elif case == "missing_model":
        wav2vec = tmp_path / "no_model"
    elif case == "not_wav2vec":
        from transformers import BertConfig, BertModel

        wav2vec = tmp_path / "bert"
        BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32)).save_pretrained(wav2vec)
    elif case == "both_audio_sources":
        extra += ["--audio", tiny_models["clip"] / "speaker_audio.npy"]
    elif case == "exp_guidance_without_visual":
        extra, visual = ["--guidance_speaker_exp", 2.0], False
    argv = wav_argv(tiny_models, wav2vec, out_dir / "x.mp4", *extra, wav=wav, visual=visual)
    assert synthesize_listener.main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bars of the test's own setup
    assert error.startswith("synthesize_listener.py: error:") and re.search(message, error), error
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def cli_process(models, output, *extra):
    clip = models["clip"]
    command = [sys.executable, str(REPO_ROOT / "synthesize_listener.py"), "--audio", str(clip / "speaker_audio.npy"),
               "--visual", str(clip / "speaker_exp.npy"), "--body_checkpoint", str(models["body"]),
               "--brain_checkpoint", str(models["brain"]), "--output", str(output), "--device", "cpu",
               "--no_progress", *map(str, extra)]
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_temporaries(folder, process, timeout_s=120):
    """Block until ``process`` has temporaries in ``folder`` (it is mid-write); return them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        temporaries = sorted(folder.glob(f"*.tmp-*-{process.pid}-*")) if folder.is_dir() else []
        if temporaries:
            return temporaries
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("the run never started writing")


def test_killed_runs_leave_nothing_behind(tiny_models, tmp_path):
    """SIGKILL mid-write leaves temporaries that the next run removes; SIGTERM cleans up like Ctrl-C;
    a live writer's temporary for the same output is left alone."""
    out_dir = tmp_path / "out"
    output = out_dir / "clip.mp4"
    killed = cli_process(tiny_models, output, "--stream", "--realtime")
    left = wait_for_temporaries(out_dir, killed)
    killed.kill()
    killed.wait()
    assert all(path.exists() for path in left)  # nothing in a SIGKILLed process can clean up
    live_temp = temporary_path(output)  # another live writer (this process) is writing the same output
    live_temp.write_text("mid-write")
    terminated = cli_process(tiny_models, output, "--stream", "--realtime")
    wait_for_temporaries(out_dir, terminated)
    assert not any(path.exists() for path in left)  # the second run removed the dead run's temporaries
    terminated.send_signal(signal.SIGTERM)
    _, stderr = terminated.communicate(timeout=60)
    assert terminated.returncode == 143 and "interrupted" in stderr and "no output written" in stderr
    assert sorted(out_dir.iterdir()) == [live_temp]  # its own temporaries gone, the live writer's kept


@pytest.mark.gpu
def test_cuda_offline_and_streaming(tiny_models, tmp_path, capsys):
    for name, extra in [("offline", ["--num_samples", 2]), ("live", ["--stream"])]:
        assert run_cli(tiny_models, tmp_path / f"{name}.mp4", "--device", "cuda", "--steps", 3, *extra) == 0
    assert probe_video(tmp_path / "offline_grid.mp4").num_frames == tiny_models["frames"]
    assert probe_video(tmp_path / "live.mp4").num_frames == tiny_models["frames"]
    assert np.isfinite(np.load(tmp_path / "live.npy")).all()
    assert "sustained" in capsys.readouterr().out


@pytest.mark.gpu
def test_cuda_live_from_the_voice_matches_offline(tiny_models, tiny_wav2vec, tmp_path):
    for name, extra in [("offline", []), ("live", ["--stream", "--realtime"])]:
        argv = wav_argv(tiny_models, tiny_wav2vec, tmp_path / f"{name}.mp4", *extra)
        assert synthesize_listener.main(argv + ["--device", "cuda"]) == 0  # the last --device counts
    assert probe_video(tmp_path / "live.mp4").num_frames == tiny_models["frames"]
    # the same computations on one GPU; cuDNN need not be bit-reproducible, so: close
    np.testing.assert_allclose(np.load(tmp_path / "live.npy"), np.load(tmp_path / "offline.npy"), atol=1e-3)


def test_attitude_is_checked_against_the_brain_before_anything_is_rendered(tiny_models, tmp_path, capsys):
    from brain.policy import ListenerPolicy

    policy = ListenerPolicy.from_checkpoint(tiny_models["brain"])
    assert policy.attitudes, "the tiny brain is trained on the labelled synthetic world"
    out_dir = tmp_path / "out"
    assert run_cli(tiny_models, out_dir / "x.mp4", "--attitude", "sceptical") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("synthesize_listener.py: error:") and "sceptical" in error
    assert all(name in error for name in policy.attitudes), error  # the valid names, listed
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
    assert run_cli(tiny_models, out_dir / "y.mp4", "--attitude", policy.attitudes[0], "--intensity", 1.5,
                   "--steps", 2, "--stream") == 0
