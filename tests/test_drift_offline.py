"""benchmarks/drift_offline.py: long rollouts of the brain alone scored bin by bin against the ground truth."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import drift_offline  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import train_diffusion
    from brain.config import BrainConfig
    from data_utils.synthetic_dyadic import write_synthetic_corpus
    from utils.config import load_config

    root = tmp_path_factory.mktemp("drift")
    cfg = load_config(BrainConfig, "configs/brain_tiny.yaml",
                      ["model.width=32", "model.layers=1", "train.max_steps=4", "train.batch_size=8",
                       "train.val_every=4", "train.val_windows=8", "train.device=cpu", "sample.steps=2"])
    cfg.data, cfg.out = str(write_synthetic_corpus(root / "corpus", clips=8, seconds=4, seed=0)), str(root / "brain")
    return train_diffusion.train(cfg, progress=False)


def test_every_sampling_entry_gets_a_table_per_listener_beside_the_ground_truths(checkpoint, tmp_path, capsys):
    assert drift_offline.main(["--checkpoint", str(checkpoint), "--seconds", "4", "--bin_seconds", "2",
                               "--gt_clips", "3", "--samples", "2", "--work", str(tmp_path), "--device", "cpu",
                               "--sampling", "", "guidance_history=2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("sampling as trained, listener") == 2
    assert printed.count("sampling guidance_history=2, listener") == 2
    assert printed.count("| ground truth (leave one out) |") == 4
    assert printed.count("\n| 0 |") == 4 and printed.count("\n| 1 |") == 4 and "\n| 2 |" not in printed
    assert "attitude asked: none" in printed and "(3 scored against)" in printed


def test_too_short_a_rollout_for_two_bins_is_refused(checkpoint, tmp_path):
    with pytest.raises(SystemExit) as refused:
        drift_offline.main(["--checkpoint", str(checkpoint), "--seconds", "3", "--bin_seconds", "2",
                            "--work", str(tmp_path), "--device", "cpu"])
    assert refused.value.code == 2


def test_an_asked_attitude_is_scored_against_its_own_ground_truth_only():
    """A neutral listener's per-minute spread is not a negative one's: mixing them misreads a good model."""
    from types import SimpleNamespace

    import bench_live

    clips = [SimpleNamespace(attitude=name, listener=np.full((4, 56), index, np.float32))
             for index, name in enumerate(["neutral", "negative", "neutral", "positive"])]
    assert [t[0, 0] for t in bench_live.truth_for(clips, "neutral")] == [0, 2]
    assert len(bench_live.truth_for(clips, None)) == 4
    with pytest.raises(ValueError, match="only 1 ground-truth clip\\(s\\) of attitude 'positive' among 4"):
        bench_live.truth_for(clips, "positive")
