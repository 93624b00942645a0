"""brain.evaluate --external: samples made elsewhere are scored like every other method."""
import json

import numpy as np
import pytest

from brain import evaluate as evaluate_cli
from brain.data import DyadicCorpus
from data_utils.synthetic_dyadic import write_synthetic_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_synthetic_corpus(tmp_path_factory.mktemp("external") / "corpus", clips=10, seconds=6, seed=0)


def _write_samples(folder, corpus, make):
    folder.mkdir()
    for clip_id in DyadicCorpus(corpus).split_ids("test"):
        listener = DyadicCorpus(corpus).load_clip(clip_id).listener
        np.save(folder / f"{clip_id}.npy", make(listener))


def test_external_samples_are_scored_like_the_others(corpus, tmp_path):
    _write_samples(tmp_path / "truth", corpus, lambda listener: np.stack([listener, listener]))  # K=2 copies
    _write_samples(tmp_path / "still", corpus, lambda listener: np.repeat(listener.mean(0, keepdims=True)[None],
                                                                          len(listener) + 5, axis=1))
    out = tmp_path / "eval"
    code = evaluate_cli.main(["--data", str(corpus), "--out", str(out), "--baselines", "mean", "--samples", "2",
                              "--external", f"copy={tmp_path / 'truth'}", f"still={tmp_path / 'still'}"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["copy"]["fd_exp"] == pytest.approx(0.0, abs=1e-6)  # the truth itself
    assert metrics["copy"]["mse_exp"] == pytest.approx(0.0, abs=1e-10)
    assert metrics["copy"]["frdiv"] == pytest.approx(0.0, abs=1e-10)  # two identical samples
    assert metrics["still"]["amp_ratio"] == pytest.approx(0.0, abs=1e-6)  # longer files are cut to the clip
    assert metrics["still"]["fd_exp"] > 0


def test_external_samples_missing_or_malformed_are_refused(corpus, tmp_path, capsys):
    _write_samples(tmp_path / "short", corpus, lambda listener: listener[None, :-1])
    code = evaluate_cli.main(["--data", str(corpus), "--out", str(tmp_path / "e1"), "--baselines", "none",
                              "--external", f"short={tmp_path / 'short'}"])
    assert code == 2 and "expected [K,T>=" in capsys.readouterr().err
    code = evaluate_cli.main(["--data", str(corpus), "--out", str(tmp_path / "e2"), "--baselines", "none",
                              "--external", f"absent={tmp_path / 'nothing'}"])
    assert code == 2 and "missing file" in capsys.readouterr().err
    assert not (tmp_path / "e1").exists() and not (tmp_path / "e2").exists()
