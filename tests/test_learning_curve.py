"""benchmarks/learning_curve.py: the scored step copies of each variant, read back into one table in step order."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import learning_curve  # noqa: E402


def _scored(work: Path, variant: str, step: int, fd: float, frdiv: float, seam: float, slow: float | None):
    """What brain.evaluate --oracle (and, with ``slow``, diversity_breakdown.py) writes for one kept copy."""
    folder = work / f"curve_{variant}" / str(step)
    folder.mkdir(parents=True)
    ratios = {"fd_exp": fd, "pfd_exp": fd * 0.9, "mse_exp": 1.1, "frdiv": frdiv, "sid_exp": 0.9, "amp_ratio": 0.8}
    metrics = {"oracle": {"seam": 2.0}, "diffusion": {"ratio_to_oracle": ratios, "calibration_miss": fd - 1,
                                                       "seam": 2.0 * seam}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if slow is not None:
        bands = {"all/slow": {"frdiv_ratio": slow}, "all/reaction": {"frdiv_ratio": 0.7},
                 "all/fast": {"frdiv_ratio": 0.9}}
        (folder / "breakdown.json").write_text(json.dumps({"diffusion": bands}))


def _rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| variant")]


def test_the_table_lists_each_variants_steps_in_numeric_order_with_their_own_figures(tmp_path, capsys):
    _scored(tmp_path, "shipped", 10500, fd=1.5, frdiv=0.61, seam=1.02, slow=0.45)
    _scored(tmp_path, "shipped", 1500, fd=2.5, frdiv=0.41, seam=1.04, slow=None)  # scored, not yet split by band
    _scored(tmp_path, "noown", 4500, fd=2.2, frdiv=0.53, seam=1.00, slow=0.38)
    (tmp_path / "curve_shipped" / "3000").mkdir()  # a scoring still running: no metrics.json yet
    plot = tmp_path / "curve.png"
    assert learning_curve.main([str(tmp_path), "shipped", "noown", "--plot", str(plot)]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [row[:2] for row in rows] == [["shipped", "1,500"], ["shipped", "10,500"], ["noown", "4,500"]]
    header = ["variant", "step", "FD exp", "P-FD exp", "MSE exp", "FRDiv", "SID exp", "amplitude",
              "calibration miss", "seam", "FRDiv slow", "FRDiv reaction", "FRDiv fast"]
    late = dict(zip(header, rows[1]))
    assert (late["FD exp"], late["P-FD exp"], late["FRDiv"], late["calibration miss"]) == ("1.5", "1.35", "0.61", "0.5")
    assert (late["seam"], late["FRDiv slow"], late["FRDiv reaction"]) == ("1.02", "0.45", "0.7")
    assert dict(zip(header, rows[0]))["FRDiv slow"] == "–"
    assert plot.stat().st_size > 0


def test_a_variant_without_scored_steps_or_with_a_foreign_metrics_file_is_refused(tmp_path, capsys):
    assert learning_curve.main([str(tmp_path), "shipped"]) == 2
    assert "curve_shipped: no scored step" in capsys.readouterr().err
    (tmp_path / "curve_wide" / "500").mkdir(parents=True)
    (tmp_path / "curve_wide" / "500" / "metrics.json").write_text(json.dumps({"diffusion": {"fd_exp": 1.0}}))
    assert learning_curve.main([str(tmp_path), "wide"]) == 2
    err = capsys.readouterr().err
    assert "curve_wide/500/metrics.json: not an evaluation against the oracle" in err

