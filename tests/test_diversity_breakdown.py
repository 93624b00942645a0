"""benchmarks/diversity_breakdown.py: FRDiv and bias split by part and tempo, against hand computations."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import diversity_breakdown as bd  # noqa: E402
from brain.oracle import calibration_miss  # noqa: E402
from utils.errors import UsageError  # noqa: E402
from utils.flame import FPS  # noqa: E402

FRAMES = 200  # 8 s: 0.125-Hz resolution, so the test tones below fall on exact Fourier bins


def _tone(hz: float) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(FRAMES) / FPS)


def test_bands_are_orthogonal_sum_to_the_input_and_put_each_tempo_in_its_band():
    rng = np.random.default_rng(0)
    motion = rng.normal(size=(2, FRAMES, 56))
    bands = bd.split_bands(motion)
    np.testing.assert_allclose(bands["slow"] + bands["reaction"] + bands["fast"], motion, atol=1e-12)
    energies = [float((bands[b] ** 2).sum()) for b in ("slow", "reaction", "fast")]
    assert sum(energies) == pytest.approx(float((motion ** 2).sum()), rel=1e-10)  # Parseval: no cross terms
    for hz, band in ((0.25, "slow"), (1.5, "reaction"), (5.0, "fast")):
        split = bd.split_bands(_tone(hz)[:, None])
        np.testing.assert_allclose(split[band][:, 0], _tone(hz), atol=1e-9)


def _world():
    """Truth 0; the oracle's two listeners are the truth ± a 1.5-Hz nod on dim 0 (symmetric about it)."""
    truth = np.zeros((FRAMES, 56))
    nod = np.zeros((FRAMES, 56))
    nod[:, 0] = _tone(1.5)
    return [truth], np.stack([truth + nod, truth - nod])


def test_the_oracle_against_itself_and_a_shared_offset_shows_as_bias_in_the_slow_band_only():
    truths, oracle = _world()
    offset = np.zeros(56)
    offset[0] = 0.5  # the same for both samples: a committed, wrong posture
    result = bd.breakdown(truths, {"oracle": [oracle], "copy": [oracle.copy()], "offset": [oracle + offset]})
    # By hand: oracle FRDiv on exp/all = mean over the 2 ordered pairs of |2 nod|^2 / (T * 50) = 2 * mean(tone^2) / 50
    nod_power = float(np.mean(_tone(1.5) ** 2))  # 0.5
    assert result["oracle"]["exp/all"]["frdiv"] == pytest.approx(4 * nod_power / 50)
    assert result["oracle"]["exp/reaction"]["share"] == pytest.approx(1.0)
    for name in ("copy", "offset"):
        assert result[name]["exp/all"]["frdiv_ratio"] == pytest.approx(1.0)
    # V = FRDiv / 2 = 2 nod_power / 50 for both; the copy's MSE is nod_power / 50 (each sample one nod from the
    # truth), so its bias² = MSE - V - V (negative: a truth of 0 is no third draw of ± nod; the formula is the test)
    v = 2 * nod_power / 50
    assert result["copy"]["exp/all"]["bias_over_v"] == pytest.approx((nod_power / 50 - 2 * v) / v)
    shift = result["offset"]["exp/all"]["bias_over_v"] - result["copy"]["exp/all"]["bias_over_v"]
    assert shift == pytest.approx(0.25 / 50 / v)  # + offset² / V_truth
    assert result["offset"]["exp/slow"]["mse"] == pytest.approx(0.25 / 50)
    for cell in ("exp/reaction", "exp/fast", "rotation/all", "jaw/all"):
        assert result["offset"][cell]["bias_over_v"] == pytest.approx(result["copy"][cell]["bias_over_v"], nan_ok=True)


def test_moving_the_truth_with_every_sample_changes_nothing_and_the_truth_counts():
    truths, oracle = _world()
    offset = np.zeros(56)
    offset[0] = 0.5
    methods = {"oracle": [oracle], "offset": [oracle + offset]}
    shift = np.zeros((FRAMES, 56))
    shift[:, 0] = 0.2 + 0.3 * _tone(0.25)  # a posture and a slow sway, shared by truth, oracle and method
    shift[:, 51] = 0.1 * _tone(1.5)
    base = bd.breakdown(truths, methods)
    moved = bd.breakdown([truths[0] + shift], {name: [m[0] + shift] for name, m in methods.items()})
    for cell in ("exp/slow", "exp/reaction", "all/all"):
        assert moved["offset"][cell]["mse"] == pytest.approx(base["offset"][cell]["mse"])
        assert moved["offset"][cell]["bias_over_v"] == pytest.approx(base["offset"][cell]["bias_over_v"], nan_ok=True)
    # the truth alone moved away from the samples' offset: they are now further from it, no less diverse
    alone = bd.breakdown([truths[0] - shift], methods)
    assert alone["offset"]["exp/slow"]["mse"] > 1.5 * base["offset"]["exp/slow"]["mse"]
    assert alone["offset"]["all/all"]["frdiv"] == pytest.approx(base["offset"]["all/all"]["frdiv"])


def test_a_hedging_method_has_no_diversity_and_the_oracle_is_required():
    truths, oracle = _world()
    average = np.zeros_like(oracle)
    result = bd.breakdown(truths, {"oracle": [oracle], "mean": [average]})
    assert result["mean"]["exp/reaction"]["frdiv_ratio"] == 0.0
    with pytest.raises(UsageError, match="oracle"):
        bd.breakdown(truths, {"mean": [average]})


def test_calibration_miss_sums_the_log_distances_outside_the_targets():
    met = {"fd_exp": 1.2, "pfd_exp": 1.0, "frdiv": 0.9, "sid_exp": 1.0, "amp_ratio": 1.05}
    assert calibration_miss(met) == 0.0
    assert calibration_miss({**met, "frdiv": 0.54}) == pytest.approx(math.log(0.85 / 0.54))
    assert calibration_miss({**met, "frdiv": 0.54, "fd_exp": 1.41}) == pytest.approx(
        math.log(0.85 / 0.54) + math.log(1.41 / 1.3))
    assert calibration_miss({**met, "amp_ratio": 1.21}) == pytest.approx(math.log(1.21 / 1.1))
    assert calibration_miss({**met, "frdiv": 0.0}) == math.inf  # the static mean: no spread at all
    assert math.isnan(calibration_miss({**met, "sid_exp": float("nan")}))


def test_the_command_reads_saved_samples_writes_table_json_and_plot_and_refuses_a_missing_oracle(tmp_path, capsys):
    from data_utils.synthetic_dyadic import write_synthetic_corpus
    from brain.data import DyadicCorpus

    corpus = tmp_path / "world"
    write_synthetic_corpus(corpus, clips=10, seconds=3, seed=0)
    clip_ids = DyadicCorpus(str(corpus)).split_ids("test")
    rng = np.random.default_rng(0)
    for method, count in (("oracle", 3), ("diffusion", 2)):
        (tmp_path / "samples" / method).mkdir(parents=True)
        for clip_id in clip_ids:
            np.save(tmp_path / "samples" / method / f"{clip_id}.npy", rng.normal(size=(count, 75, 56)).astype(np.float32))
    args = ["--data", str(corpus), "--split", "test", "--saved_samples", str(tmp_path / "samples")]
    assert bd.main([*args, "--json", str(tmp_path / "b.json"), "--plot", str(tmp_path / "b.png")]) == 0
    assert "| all/slow |" in capsys.readouterr().out
    assert (tmp_path / "b.png").stat().st_size > 0 and (tmp_path / "b.json").is_file()
    for clip_id in clip_ids:
        (tmp_path / "samples" / "oracle" / f"{clip_id}.npy").unlink()
    (tmp_path / "samples" / "oracle").rmdir()
    assert bd.main(args) == 2
    assert "no oracle/ folder" in capsys.readouterr().err


def test_saved_breakdowns_are_drawn_side_by_side_and_other_clips_are_refused(tmp_path, capsys):
    truths, oracle = _world()
    first = bd.breakdown(truths, {"oracle": [oracle], "diffusion": [oracle * 0.5], "mean": [oracle * 0]})
    other = bd.breakdown(truths, {"oracle": [oracle * 2], "diffusion": [oracle]})  # another oracle: other clips
    from utils.atomic import save_json
    save_json(tmp_path / "a.json", first)  # as --json writes it: empty cells' NaN become null
    (tmp_path / "b.json").write_text(json.dumps(other))
    merged = bd.merge_saved([f"run1={tmp_path / 'a.json'}"], only=["diffusion"])
    assert set(merged) == {"oracle", "run1:diffusion"}
    assert merged["run1:diffusion"]["exp/reaction"]["frdiv_ratio"] == pytest.approx(0.25)  # half the spread
    with pytest.raises(UsageError, match="oracle differs"):
        bd.merge_saved([f"run1={tmp_path / 'a.json'}", f"run2={tmp_path / 'b.json'}"])
    assert bd.main(["--from_json", f"run1={tmp_path / 'a.json'}", "--plot", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 0 and "run1:mean" in capsys.readouterr().out
    assert bd.main(["--from_json", "nofile"]) == 2
