"""benchmarks/rollout_energy_probe.py: the energy score and slow course by hand, and a fine-tuning run whose
energy term reaches the weights."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import train_diffusion
from brain.config import BrainConfig
from data_utils.synthetic_dyadic import write_synthetic_corpus
from utils.checkpoint import load_checkpoint
from utils.config import load_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import rollout_energy_probe as probe  # noqa: E402


def test_the_energy_score_and_the_slow_course_equal_a_hand_computation():
    samples = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    truth = torch.tensor([0.0, 0.0])
    accuracy = (1 + 1 + 2 ** 0.5) / 3
    spread = 2 * (2 ** 0.5 + 1 + 1) / 6  # the mean over the 6 ordered pairs of distinct samples
    assert float(probe.energy_score(samples, truth)) == pytest.approx((accuracy - 0.5 * spread) / 2 ** 0.5)
    assert float(probe.energy_score(truth.repeat(3, 1), truth)) == 0
    assert float(probe.energy_score(samples, truth, spread_term=False)) == pytest.approx(accuracy / 2 ** 0.5)

    frames = probe.SLOW_FRAMES + 2 * probe.SLOW_STRIDE
    motion = torch.zeros(2, frames, 56)
    motion[1, :, 3] = torch.arange(frames, dtype=torch.float32)  # a ramp: its moving average is the window's middle
    course = probe.slow_course(motion).view(2, 56, -1)
    assert course.shape[-1] == 3 and float(course[0].abs().max()) == 0
    middle = (probe.SLOW_FRAMES - 1) / 2
    np.testing.assert_allclose(course[1, 3].numpy(), [middle, middle + probe.SLOW_STRIDE, middle + 2 * probe.SLOW_STRIDE],
                               atol=1e-4)


def test_the_seam_excess_is_the_evaluations_seam_ratio_less_one():
    from brain.metrics import seam_ratio
    rng = np.random.default_rng(0)
    motion = np.cumsum(rng.normal(size=(2, 40, 56)), axis=1) * 0.1
    jumped = motion.copy()
    jumped[:, 8::8] += 0.5  # a step at every chunk join of 8 frames
    for case in (motion, jumped):
        expected = max(0.0, seam_ratio([case], 8) - 1)
        assert float(probe.seam_excess(torch.from_numpy(case), 8)) == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert float(probe.seam_excess(torch.from_numpy(jumped), 8)) > 0.1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout_energy")
    corpus = write_synthetic_corpus(root / "corpus", clips=4, seconds=6, seed=0)
    cfg = load_config(BrainConfig, "configs/brain_tiny.yaml", [
        f"data={corpus}", f"out={root / 'run'}", "model.width=32", "model.layers=1", "train.batch_size=16",
        "train.max_steps=4", "train.val_windows=16", "train.device=cpu"])
    return train_diffusion.train(cfg, progress=False), corpus


def test_fine_tuning_writes_a_loadable_brain_that_the_energy_term_moves(trained, tmp_path, capsys):
    checkpoint, corpus = trained
    outputs = {}
    for name, extra in (("0", ["--weight", "0"]), ("2", ["--weight", "2"]),
                        ("2_through", ["--weight", "2", "--through_history"])):
        out = tmp_path / f"tuned_{name}.pth"
        assert probe.main(["--checkpoint", str(checkpoint), "--data", str(corpus), "--out", str(out), "--steps", "2",
                           "--seconds", "3", "--samples", "2", "--evaluations", "2", "--lr", "1e-3", "--device",
                           "cpu", *extra]) == 0
        outputs[name] = load_checkpoint(out, kind="brain")
    original = load_checkpoint(checkpoint, kind="brain")
    assert {"optimizer", "ema"}.isdisjoint(outputs["2"]) and outputs["2"]["config"] == original["config"]
    assert outputs["2"]["step"] == original["step"]
    moved = [name for name, value in outputs["2"]["model"].items() if not torch.equal(value, original["ema"][name])]
    assert moved  # tuned from the EMA weights, what sampling uses
    assert any(not torch.equal(outputs["2"]["model"][name], outputs["0"]["model"][name]) for name in moved)
    # through the history the gradient has more paths: other weights than the truncated run's
    assert any(not torch.equal(outputs["2_through"]["model"][name], outputs["2"]["model"][name]) for name in moved)
    for seconds in ("1", "30"):  # shorter than the slow course's window; longer than every clip
        with pytest.raises(SystemExit) as refused:
            probe.main(["--checkpoint", str(checkpoint), "--data", str(corpus), "--out", str(tmp_path / "x.pth"),
                        "--seconds", seconds, "--device", "cpu"])
        assert refused.value.code == 2 and "a rollout must span" in capsys.readouterr().err
    assert not (tmp_path / "x.pth").exists()
