"""benchmarks/closest_calibrated.py: the GPU stages' rule for choosing a variant or a sampling row."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import closest_calibrated  # noqa: E402


def _metrics(rows: dict[str, tuple[float | None, float]]) -> dict:
    """A metrics.json of brain.evaluate --oracle: the oracle's seam 2, each row's (miss, seam over the oracle's)."""
    metrics = {"oracle": {"seam": 2.0, "calibration_miss": 0.0}}
    metrics.update({name: {"calibration_miss": miss, "seam": 2.0 * seam} for name, (miss, seam) in rows.items()})
    return metrics


def test_the_lowest_miss_among_smooth_seams_and_any_when_none_is_smooth():
    assert closest_calibrated.closest({"a": (0.9, 1.02), "b": (0.5, 1.20), "c": (0.7, 1.05)}) == "c"
    assert closest_calibrated.closest({"a": (0.9, 1.10), "b": (0.5, 1.20)}) == "b"  # none smooth: any
    assert closest_calibrated.closest({"a": (None, 1.0), "b": (3.0, 1.0)}) == "b"  # no miss: never chosen first
    assert closest_calibrated.closest({}) is None


def test_rows_name_the_chosen_sweep_entry_and_the_checkpoints_own_row_is_empty(tmp_path, capsys):
    rows = {"diffusion": (1.13, 1.04), "diffusion[guidance=4]": (0.97, 1.04),
            "diffusion[guidance=4,guidance_history=3]": (0.5, 1.2), "nearest": (0.1, 1.0)}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(_metrics(rows)))
    assert closest_calibrated.main(["rows", str(path)]) == 0
    assert capsys.readouterr().out == "guidance=4\n"  # not the rough row, not a baseline
    assert closest_calibrated.choose_row(_metrics({"diffusion": (1.0, 1.0), "diffusion[steps=5]": (2.0, 1.0)})) == ""


def test_variants_choose_by_the_same_rule_and_warn_when_their_steps_differ(tmp_path, capsys):
    for name, miss, seam, step in (("shipped", 1.1, 1.02, 4500), ("noown", 0.9, 1.03, 7500), ("rough", 0.2, 1.3, 4500)):
        folder = tmp_path / f"eval_{name}"
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps(_metrics({"diffusion": (miss, seam)})))
        (folder / "run.json").write_text(json.dumps({"checkpoint_step": step}))
    assert closest_calibrated.main(["variants", str(tmp_path), "shipped", "noown", "rough", "old", "unscored"]) == 0
    printed = capsys.readouterr()
    assert printed.out == "noown\n" and "different training steps (shipped 4500, noown 7500, rough 4500)" in printed.err
    assert closest_calibrated.choose_variant(tmp_path, ["unscored"]) == "shipped"
    assert closest_calibrated.main(["nonsense"]) == 2
