"""The oracle of `brain.evaluate --oracle`: its rows equal a hand computation, and non-resamples are refused."""
import json
import shutil

import numpy as np
import pytest
import scipy.linalg

from brain import evaluate
from brain.data import CorpusError, DyadicCorpus
from brain.oracle import load_resampled_listeners
from data_utils.synthetic_dyadic import ATTITUDE_NAMES, write_synthetic_corpus
from utils.flame import EXP, POSE

CLIPS, SECONDS = 10, 3  # the train split (8 clips) is evaluated: the test split holds one clip only


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("oracle")
    corpus = write_synthetic_corpus(root / "corpus", clips=CLIPS, seconds=SECONDS, seed=5)
    resamples = [write_synthetic_corpus(root / f"resample{j}", clips=CLIPS, seconds=SECONDS, seed=5, resample_seed=j)
                 for j in (1, 2)]
    return corpus, resamples


def _frechet(a, b):
    """FID-style Fréchet distance with scipy's matrix square root, independent of brain.metrics."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_oracle_rows_and_ratios_equal_a_hand_computation(corpora, tmp_path):
    corpus, resamples = corpora
    out = tmp_path / "eval"
    code = evaluate.main(["--data", str(corpus), "--split", "train", "--baselines", "mean", "--out", str(out),
                          "--oracle", *map(str, resamples), "--plot_clips", "0", "--device", "cpu"])
    assert code == 0
    results = json.loads((out / "metrics.json").read_text())
    assert list(results) == ["ground_truth", "oracle", "oracle[shuffled]", "mean"]

    reader = DyadicCorpus(corpus)
    ids = reader.split_ids("train")
    truths = [reader.load_clip(i).listener.astype(np.float64) for i in ids]
    redrawn = [[DyadicCorpus(r).load_clip(i).listener.astype(np.float64) for r in resamples] for i in ids]
    mean_frame = np.concatenate(truths).mean(0)

    def fd(truth, motions, part):
        return np.mean([_frechet(truth[:, part], m[:, part]) for m in motions])

    oracle_fd = np.mean([fd(t, r, EXP) for t, r in zip(truths, redrawn)])
    shuffled_fd = np.mean([fd(t, redrawn[(c + 1) % len(ids)], EXP) for c, t in enumerate(truths)])
    oracle_mse_pose = np.mean([np.mean([((m - t)[:, POSE] ** 2).mean() for m in r]) for t, r in zip(truths, redrawn)])
    oracle_frdiv = np.mean([((r[0] - r[1]) ** 2).mean() for r in redrawn])  # two samples: one pair, both orders
    # A still frame: covariance term = trace of the clip's own covariance.
    mean_fd = np.mean([((t[:, EXP].mean(0) - mean_frame[EXP]) ** 2).sum() + np.trace(np.cov(t[:, EXP], rowvar=False))
                       for t in truths])
    assert results["oracle"]["fd_exp"] == pytest.approx(oracle_fd, rel=1e-5)
    assert results["oracle[shuffled]"]["fd_exp"] == pytest.approx(shuffled_fd, rel=1e-5)
    assert results["oracle"]["mse_pose"] == pytest.approx(oracle_mse_pose, rel=1e-5)
    assert results["oracle"]["frdiv"] == pytest.approx(oracle_frdiv, rel=1e-5)
    assert results["mean"]["fd_exp"] == pytest.approx(mean_fd, rel=1e-4)

    ratios = results["mean"]["ratio_to_oracle"]
    assert ratios["fd_exp"] == pytest.approx(mean_fd / oracle_fd, rel=1e-4)
    assert ratios["frdiv"] == pytest.approx(0.0, abs=1e-9)  # a still frame has no spread; SID of one cluster is 0
    assert results["oracle"]["ratio_to_oracle"]["pfd_exp"] == pytest.approx(1.0)
    assert results["oracle[shuffled]"]["ratio_to_oracle"]["fd_exp"] == pytest.approx(shuffled_fd / oracle_fd, rel=1e-5)
    assert set(ratios) == {"fd_exp", "fd_pose", "pfd_exp", "pfd_pose", "mse_exp", "mse_pose", "frdiv", "sid_exp",
                           "sid_pose", "amp_ratio"}
    table = (out / "metrics.md").read_text()
    assert "## Ratio to the oracle (2 resampled listeners per clip)" in table
    assert f"| mean | {mean_fd / oracle_fd:.3g} |" in table


def _refusal(corpus, resamples):
    clips = DyadicCorpus(corpus).load_split("test")
    with pytest.raises(CorpusError) as error:
        load_resampled_listeners([str(r) for r in resamples], str(corpus), "test", clips)
    return str(error.value)


def test_refuses_what_is_not_a_resample_of_the_evaluated_corpus(corpora, tmp_path, capsys):
    corpus, resamples = corpora
    other_seed = write_synthetic_corpus(tmp_path / "other_seed", clips=CLIPS, seconds=SECONDS, seed=6, resample_seed=1)
    message = _refusal(corpus, [other_seed])
    assert "clip_0009, speaker_audio.npy differs" in message and str(other_seed) in message
    more_clips = write_synthetic_corpus(tmp_path / "more", clips=CLIPS + 10, seconds=SECONDS, seed=5, resample_seed=1)
    assert "test split lists other clips" in _refusal(corpus, [more_clips])
    assert "equals the evaluated corpus's" in _refusal(corpus, [corpus])
    assert "holds the same listeners as" in _refusal(corpus, [resamples[0], resamples[1], resamples[0]])

    lacking = tmp_path / "lacking"
    shutil.copytree(resamples[0], lacking)
    shutil.rmtree(lacking / "clips" / "clip_0009")
    assert "clip clip_0009: missing folder" in _refusal(corpus, [lacking])
    relabelled = tmp_path / "relabelled"
    shutil.copytree(resamples[0], relabelled)
    labels = relabelled / "clips" / "clip_0009" / "labels.json"
    other = next(name for name in ATTITUDE_NAMES if name not in labels.read_text())  # valid, but not the clip's
    labels.write_text(json.dumps({"attitude": other}) + "\n")
    assert "labels.json differs" in _refusal(corpus, [relabelled])

    out = tmp_path / "eval"
    code = evaluate.main(["--data", str(corpus), "--baselines", "mean", "--out", str(out), "--oracle", str(other_seed)])
    assert code != 0 and "speaker_audio.npy differs" in capsys.readouterr().err
    assert not out.exists()
