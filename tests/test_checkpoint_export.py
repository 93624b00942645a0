"""``python -m utils.checkpoint export``: slim checkpoints for synthesis sample and render exactly like the
training checkpoints they come from, without the state only a resume needs."""
import numpy as np
import pytest
import torch

import train_diffusion
from brain.config import BrainConfig
from brain.data import DyadicCorpus
from brain.policy import ListenerPolicy
from data_utils.synthetic_dyadic import write_synthetic_corpus
from data_utils.synthetic_subject import write_synthetic_subject
from scene.body import load_body
from scene.training import BodyTrainingConfig, train as train_body
from utils import checkpoint as checkpoint_cli
from utils.checkpoint import CheckpointError, load_checkpoint
from utils.config import load_config


@pytest.fixture(scope="module")
def brain_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_brain")
    corpus = write_synthetic_corpus(root / "corpus", clips=4, seconds=6, seed=0)
    # Six steps: enough for the EMA to differ from the raw weights (the test tells them apart).
    cfg = load_config(BrainConfig, "configs/brain_tiny.yaml",
                      [f"data={corpus}", f"out={root / 'run'}", "model.width=32", "model.history_frames=12",
                       "train.batch_size=16", "train.max_steps=6", "train.val_windows=16"])
    return train_diffusion.train(cfg, progress=False), corpus


@pytest.fixture(scope="module")
def body_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_body")
    subject = write_synthetic_subject(root / "subject", frames=44, size=32, seed=0, supersample=1, workers=1)
    cfg = load_config(BodyTrainingConfig, "configs/body_tiny.yaml",
                      [f"subject={subject}", f"model_dir={root / 'model'}", "model.init.face_count=300",
                       "model.init.mouth_count=20", "train.max_steps=3", "train.val_frames=2", "train.batch_size=2"])
    return train_body(cfg, progress=False) / "body.pth", subject


def test_slim_brain_checkpoint_samples_like_the_training_one(brain_checkpoint, tmp_path, capsys):
    checkpoint, corpus = brain_checkpoint
    assert checkpoint_cli.main(["export", str(checkpoint), str(tmp_path / "slim.pth")]) == 0
    assert "slim brain checkpoint of step 6" in capsys.readouterr().out
    full, slim = load_checkpoint(checkpoint, kind="brain"), load_checkpoint(tmp_path / "slim.pth", kind="brain")
    assert set(slim) == set(full) - {"optimizer", "ema"}
    assert {k: slim[k] for k in ("config", "step")} == {k: full[k] for k in ("config", "step")}
    for name, tensor in full["ema"].items():  # the EMA is what sampling uses; it becomes the model
        assert torch.equal(slim["model"][name], tensor), name
    assert (tmp_path / "slim.pth").stat().st_size < 0.5 * checkpoint.stat().st_size

    clip = DyadicCorpus(corpus).load_clip(DyadicCorpus(corpus).split_ids("test")[0])
    audio, exp = clip.speaker_audio[:40], clip.speaker_exp[:40]
    expected = ListenerPolicy.from_checkpoint(checkpoint).generate(audio, exp, num_samples=2, seed=1)
    np.testing.assert_array_equal(ListenerPolicy.from_checkpoint(tmp_path / "slim.pth").generate(
        audio, exp, num_samples=2, seed=1), expected)
    raw = ListenerPolicy.from_checkpoint(checkpoint, use_ema=False).generate(audio, exp, num_samples=2, seed=1)
    assert np.abs(raw - expected).max() > 1e-4  # exporting the raw weights instead would be caught


def test_a_half_precision_export_is_half_the_size_and_samples_close_to_the_full_one(brain_checkpoint, tmp_path,
                                                                                     capsys):
    checkpoint, corpus = brain_checkpoint
    assert checkpoint_cli.main(["export", str(checkpoint), str(tmp_path / "slim.pth")]) == 0
    assert checkpoint_cli.main(["export", "--half", str(checkpoint), str(tmp_path / "half.pth")]) == 0
    assert "in fp16" in capsys.readouterr().out
    slim, half = load_checkpoint(tmp_path / "slim.pth", kind="brain"), load_checkpoint(tmp_path / "half.pth", kind="brain")
    assert set(half) == set(slim) and half["config"] == slim["config"]
    for name, tensor in slim["normalizer"].items():  # statistics stay exact: only the weights are rounded
        assert torch.equal(half["normalizer"][name], tensor), name
    for name, tensor in slim["model"].items():
        assert half["model"][name].dtype == (torch.float16 if tensor.is_floating_point() else tensor.dtype), name
        torch.testing.assert_close(half["model"][name].float(), tensor.float(), rtol=1e-3, atol=1e-4)
    assert (tmp_path / "half.pth").stat().st_size < 0.6 * (tmp_path / "slim.pth").stat().st_size

    clip = DyadicCorpus(corpus).load_clip(DyadicCorpus(corpus).split_ids("test")[0])
    audio, exp = clip.speaker_audio[:40], clip.speaker_exp[:40]
    full = ListenerPolicy.from_checkpoint(tmp_path / "slim.pth").generate(audio, exp, num_samples=2, seed=1)
    rounded = ListenerPolicy.from_checkpoint(tmp_path / "half.pth").generate(audio, exp, num_samples=2, seed=1)
    assert 0 < np.abs(rounded - full).max() < 0.05 * np.abs(full).max()


def test_slim_brain_checkpoint_cannot_be_resumed(brain_checkpoint, tmp_path):
    checkpoint, corpus = brain_checkpoint
    checkpoint_cli.export_slim(checkpoint, tmp_path / "run" / "checkpoint.pth")
    cfg = load_config(BrainConfig, "configs/brain_tiny.yaml",
                      [f"data={corpus}", f"out={tmp_path / 'run'}", "model.width=32", "model.history_frames=12",
                       "train.batch_size=16", "train.max_steps=8", "train.val_windows=16"])
    with pytest.raises(CheckpointError, match="slim checkpoint .* cannot be resumed"):
        train_diffusion.train(cfg, resume=True, progress=False)


def test_slim_body_checkpoint_renders_like_the_training_one(body_checkpoint, tmp_path):
    checkpoint, subject = body_checkpoint
    assert checkpoint_cli.main(["export", str(checkpoint), str(tmp_path / "slim.pth")]) == 0
    full, slim = load_checkpoint(checkpoint, kind="body"), load_checkpoint(tmp_path / "slim.pth", kind="body")
    assert "train_state" in full and set(slim) == set(full) - {"train_state"}
    assert (tmp_path / "slim.pth").stat().st_size < checkpoint.stat().st_size
    flame = torch.from_numpy(np.load(subject / "flame.npy")[:3])
    expected = load_body(checkpoint)(flame, backend="reference")["color"]
    torch.testing.assert_close(load_body(tmp_path / "slim.pth")(flame, backend="reference")["color"],
                               expected, rtol=0, atol=0)
    assert checkpoint_cli.main(["export", "--half", str(checkpoint), str(tmp_path / "half.pth")]) == 0
    half = load_checkpoint(tmp_path / "half.pth", kind="body")
    assert half["gaussians"]["face"]["means"].dtype == torch.float16
    assert torch.equal(half["mean_translation"], slim["mean_translation"])  # geometry outside the weights: exact
    rounded = load_body(tmp_path / "half.pth")(flame, backend="reference")["color"]
    assert 0 < (rounded - expected).abs().max() < 0.05


@pytest.mark.parametrize("make_input, message", [
    (lambda path: path.write_bytes(b"not a checkpoint"), "not a readable Diff-Listener checkpoint"),
    (lambda path: torch.save({"weights": torch.ones(2)}, path), "no 'kind' entry"),
    (lambda path: None, "no such checkpoint file"),
])
def test_export_refuses_what_is_not_a_checkpoint(tmp_path, capsys, make_input, message):
    make_input(tmp_path / "input.pth")
    assert checkpoint_cli.main(["export", str(tmp_path / "input.pth"), str(tmp_path / "slim.pth")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("utils.checkpoint: error: ") and "input.pth" in err and message in err
    assert err.count("\n") == 1 and not (tmp_path / "slim.pth").exists()


def test_export_refuses_to_overwrite_its_input(brain_checkpoint, capsys):
    checkpoint, _ = brain_checkpoint
    same_file = checkpoint.parent / ".." / checkpoint.parent.name / checkpoint.name  # another spelling of the input
    assert checkpoint_cli.main(["export", str(checkpoint), str(same_file)]) == 2
    assert "is the input checkpoint" in capsys.readouterr().err
    assert "optimizer" in load_checkpoint(checkpoint, kind="brain")
