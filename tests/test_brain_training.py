"""A tiny brain trained end to end on the synthetic corpus: it learns, keeps its amplitude, streams causally,
resumes exactly, and its CLIs refuse bad input without leaving output behind."""
import json

import numpy as np
import pytest
import torch

import train_diffusion
from brain import sample as sample_cli
from brain.config import BrainConfig
from brain.data import DyadicCorpus
from brain.policy import ListenerPolicy
from data_utils import synthetic_semantics as sem
from data_utils.synthetic_dyadic import write_synthetic_corpus
from utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from utils.config import load_config
from utils.flame import FPS
from utils.logger import read_scalars

pytestmark = pytest.mark.slow
TRAIN_STEPS = 400
# brain_tiny, lighter still: a shorter history and batch keep the whole file within its CPU budget.
TEST_OVERRIDES = ["model.history_frames=12", "train.batch_size=32", "train.val_every=200", "train.log_every=50"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("brain_train") / "corpus", clips=10, seconds=24, seed=0)


def _config(corpus, out, *overrides):
    return load_config(BrainConfig, "configs/brain_tiny.yaml",
                       TEST_OVERRIDES + [f"data={corpus}", f"out={out}", *overrides])


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("brain_run")
    checkpoint = train_diffusion.train(_config(corpus, out, f"train.max_steps={TRAIN_STEPS}"), progress=False)
    return checkpoint, ListenerPolicy.from_checkpoint(checkpoint)


def _speaker(corpus, clip_id, frames):
    clip = DyadicCorpus(corpus).load_clip(clip_id)
    return clip.speaker_audio[:frames], clip.speaker_exp[:frames], clip.listener[:frames]


def test_training_lowers_validation_loss_below_a_trivial_predictor(trained):
    checkpoint, _ = trained
    scalars = read_scalars(checkpoint.parent / "scalars.csv")
    (first_step, initial), *_, (last_step, final) = scalars["val_x0"]
    mean_predictor = scalars["val_mean_predictor_x0"][-1][1]
    assert (first_step, last_step) == (0, TRAIN_STEPS)
    assert final < 0.3 * initial, f"val x0 loss {initial:.3f} -> {final:.3f}"
    assert final < 0.3 * mean_predictor, f"val x0 loss {final:.3f} vs predicting the mean {mean_predictor:.3f}"
    payload = load_checkpoint(checkpoint, kind="brain")
    assert payload["step"] == TRAIN_STEPS and {"model", "ema", "optimizer", "normalizer", "config"} <= set(payload)


@pytest.fixture(scope="module")
def generated(trained, corpus):
    """Two samples for each of three training clips' first 16 s, with the clips' truth and latent events."""
    _, policy = trained
    result = []
    for clip_id in DyadicCorpus(corpus).split_ids("train")[:3]:
        audio, exp, listener = _speaker(corpus, clip_id, 400)
        samples = policy.generate(audio, exp, num_samples=2, seed=0, steps=15)  # [2,400,56]
        events = json.loads((corpus / "clips" / clip_id / "events.json").read_text())
        result.append((samples, listener, events))
    return result


def test_samples_keep_the_amplitude_of_real_motion(generated):
    """No amplitude collapse at 15 DDIM steps: per-dimension std stays near the ground truth's."""
    samples = np.concatenate([s.reshape(-1, 56) for s, _, _ in generated])
    truth = np.concatenate([t for _, t, _ in generated])
    ratio = samples.std(0) / truth.std(0)
    assert 0.67 < np.median(ratio) < 1.5, f"median std ratio {np.median(ratio):.2f}"
    outside = np.nonzero((ratio < 0.5) | (ratio > 2.0))[0]
    # A 400-step CPU model still under-moves the rarest, smallest dim (jaw opening, ~0.4): allow 2 of 56.
    assert len(outside) <= 2, f"dims outside a factor 2 of the true std: {dict(zip(outside, ratio[outside].round(2)))}"
    assert (ratio > 1 / 3).all() and (ratio < 3).all(), ratio.round(2)


def test_samples_react_to_the_speaker(generated):
    """Not copy-through: generated listeners smile after the speaker smiles (the tiny CPU model learns
    mirroring; sparse nods and blinks need the GPU preset, see docs/BRAIN.md)."""
    gain, baseline = [], []
    for samples, _, events in generated:
        for motion in samples:
            smile = motion[:, sem.SMILE]
            onsets = [t for t in events["speaker_smile_onsets"] if t < len(motion) / FPS - 2.0]
            gain += [smile[int((t + 0.5) * FPS):int((t + 2.0) * FPS)].mean() for t in onsets]
            baseline.append(smile.mean())
    assert gain, "the test clips should contain speaker smiles"
    assert np.mean(gain) > np.mean(baseline) + 0.1, f"smile after speaker smiles {np.mean(gain):.3f}, " \
                                                    f"on average {np.mean(baseline):.3f}"


def test_seeds_reproduce_and_differ(trained, corpus):
    _, policy = trained
    audio, exp, _ = _speaker(corpus, "clip_0008", 60)
    first = policy.generate(audio, exp, num_samples=2, seed=5)
    again = policy.generate(audio, exp, num_samples=2, seed=5)
    other = policy.generate(audio, exp, num_samples=2, seed=6)
    assert first.shape == (2, 60, 56) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).mean() > 0.01 and np.abs(first[0] - first[1]).mean() > 0.01


def test_checkpoint_round_trip_gives_identical_samples(trained, corpus, tmp_path):
    checkpoint, policy = trained
    payload = load_checkpoint(checkpoint, kind="brain")
    save_checkpoint({k: v for k, v in payload.items() if k not in ("kind", "format_version")}, tmp_path / "copy.pth",
                    kind="brain")
    audio, exp, _ = _speaker(corpus, "clip_0009", 40)
    np.testing.assert_array_equal(ListenerPolicy.from_checkpoint(tmp_path / "copy.pth").generate(audio, exp, seed=1),
                                  policy.generate(audio, exp, seed=1))
    save_checkpoint({"config": {}}, tmp_path / "body.pth", kind="body")
    with pytest.raises(CheckpointError, match="is a body checkpoint, but a brain checkpoint was expected"):
        ListenerPolicy.from_checkpoint(tmp_path / "body.pth")


def test_streaming_matches_offline_and_has_no_seams(trained, corpus):
    _, policy = trained
    audio, exp, truth = _speaker(corpus, "clip_0008", 203)  # not a multiple of 8: flush emits the tail
    offline = policy.generate(audio, exp, num_samples=1, seed=3)
    stream = policy.stream(num_samples=1, seed=3)
    pieces, edges = [], [0, 5, 13, 14, 50, 120, 203]  # ragged chunks, one of a single frame
    for start, stop in zip(edges[:-1], edges[1:]):
        pieces.append(stream.push(audio[start:stop], exp[start:stop]))
        assert pieces[-1].shape[1] % 8 == 0
    pieces.append(stream.flush())
    streamed = np.concatenate(pieces, axis=1)
    assert streamed.shape == offline.shape == (1, 203, 56)
    np.testing.assert_allclose(streamed, offline, atol=1e-5)
    # Chunk joins are no rougher than the motion inside chunks.
    jerk = np.abs(np.diff(offline[0], n=2, axis=0)) / truth.std(0)  # jerk[i] is centred on frame i+1
    at_join = (np.arange(len(jerk)) + 1) % 8 == 0
    assert jerk[at_join].mean() < 1.5 * jerk[~at_join].mean()
    with pytest.raises(RuntimeError, match="flushed"):
        stream.push(audio[:8], exp[:8])


def test_streaming_never_looks_ahead(trained, corpus):
    _, policy = trained
    audio, exp, _ = _speaker(corpus, "clip_0008", 96)
    changed_audio, changed_exp = audio.copy(), exp.copy()
    changed_audio[40:] = np.random.default_rng(0).standard_normal(changed_audio[40:].shape)
    changed_exp[40:] *= -3
    first, second = policy.stream(seed=2), policy.stream(seed=2)
    out_first = np.concatenate([first.push(audio[i:i + 8], exp[i:i + 8]) for i in range(0, 96, 8)], axis=1)
    out_second = np.concatenate([second.push(changed_audio[i:i + 8], changed_exp[i:i + 8])
                                 for i in range(0, 96, 8)], axis=1)
    np.testing.assert_array_equal(out_first[:, :40], out_second[:, :40])
    assert np.abs(out_first[:, 48:] - out_second[:, 48:]).mean() > 1e-3  # ...and does react to the speaker


def test_resume_continues_exactly(corpus, tmp_path):
    short = ["model.width=32", "train.max_steps=20", "train.val_every=10", "train.checkpoint_every=10",
             "train.log_every=5"]
    whole = train_diffusion.train(_config(corpus, tmp_path / "whole", *short), progress=False)
    interrupted = _config(corpus, tmp_path / "resumed", *short[:-4], "train.max_steps=10", *short[2:])
    train_diffusion.train(interrupted, progress=False)
    resumed = train_diffusion.train(_config(corpus, tmp_path / "resumed", *short), resume=True, progress=False)
    final_whole, final_resumed = load_checkpoint(whole, kind="brain"), load_checkpoint(resumed, kind="brain")
    assert final_resumed["step"] == 20
    for name, tensor in final_whole["ema"].items():
        torch.testing.assert_close(final_resumed["ema"][name], tensor, msg=name)
    losses = dict(read_scalars(resumed.parent / "scalars.csv")["loss"])
    assert sorted(losses) == [5, 10, 15, 20]  # one log, continuing the step count
    assert losses == pytest.approx(dict(read_scalars(whole.parent / "scalars.csv")["loss"]), rel=1e-4)


def test_train_cli_refuses_a_broken_corpus(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = train_diffusion.main(["--config", "configs/brain_tiny.yaml", "--data", str(tmp_path / "empty"),
                                 "--out", str(tmp_path / "run")])
    assert code == 2 and "missing meta.json" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.pth").exists()


def test_sample_cli_writes_motion_and_refuses_bad_input(trained, corpus, tmp_path, capsys):
    checkpoint, _ = trained
    audio, exp, _ = _speaker(corpus, "clip_0009", 30)
    np.save(tmp_path / "a.npy", audio)
    np.save(tmp_path / "v.npy", exp)
    np.save(tmp_path / "v_short.npy", exp[:29])
    common = ["--checkpoint", str(checkpoint), "--audio", str(tmp_path / "a.npy")]
    assert sample_cli.main(common + ["--visual", str(tmp_path / "v.npy"), "--out", str(tmp_path / "m.npy"),
                                     "--num_samples", "2", "--steps", "5", "--plot", str(tmp_path / "m.png")]) == 0
    motion = np.load(tmp_path / "m.npy")
    assert motion.shape == (2, 30, 56) and motion.dtype == np.float32 and (tmp_path / "m.png").is_file()
    assert sample_cli.main(common + ["--visual", str(tmp_path / "v_short.npy"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "has 30 frames but" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()
    assert sample_cli.main(common + ["--visual", str(tmp_path / "v.npy"), "--out", str(tmp_path / "x.npy"),
                                     "--steps", "500"]) == 2
    assert "steps must be in 1..50" in capsys.readouterr().err and not (tmp_path / "x.npy").exists()
