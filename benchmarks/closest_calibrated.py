"""The GPU stages' choice rule: the candidate closest to calibrated against the oracle, among the seam-smooth ones.

    python benchmarks/closest_calibrated.py variants <work> <name> ...   # a variant: <work>/eval_<name>/metrics.json
    python benchmarks/closest_calibrated.py rows <metrics.json>          # a sampling row of one evaluation

The rule (benchmarks/gpu_stage_brain.sh `score` and `calibrate`): the lowest ``calibration_miss``
(brain.oracle: the log distance outside the issue's targets, summed) among the candidates whose chunk seams are
within 5 % of the oracle's — any candidate, if none is. ``variants`` prints the chosen variant (``shipped``
when none was scored) and warns on stderr when their checkpoints are of different training steps (the seventh
session: such a choice compares equal wall-clock time, and an equal-steps control reversed it). ``rows`` prints
the chosen ``diffusion[...]`` row's sweep entry, or an empty line for the checkpoint's own ``diffusion`` row.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

SMOOTH_SEAM = 1.05  # a candidate's chunk seam over the oracle's at most this


def closest(candidates: dict[str, tuple[float | None, float]]) -> str | None:
    """``{name: (calibration miss, seam over the oracle's)}`` -> the rule's choice (None when empty)."""
    misses = {name: float("inf") if miss is None else miss for name, (miss, _) in candidates.items()}
    smooth = {name: misses[name] for name, (_, seam) in candidates.items() if seam <= SMOOTH_SEAM}
    pool = smooth or misses
    return min(pool, key=pool.get) if pool else None


def score(metrics: dict, method: str) -> tuple[float | None, float]:
    """``(calibration miss, seam over the oracle's)`` of one method of a ``brain.evaluate --oracle`` metrics.json."""
    return metrics[method]["calibration_miss"], metrics[method]["seam"] / metrics["oracle"]["seam"]


def choose_variant(work: Path, names: list[str]) -> str:
    candidates, steps = {}, {}
    for name in names:
        path = work / f"eval_{name}" / "metrics.json"
        if path.is_file():
            candidates[name] = score(json.loads(path.read_text()), "diffusion")
            steps[name] = json.loads((path.parent / "run.json").read_text()).get("checkpoint_step")
    if len(set(steps.values())) > 1:
        print("warning: the variants' checkpoints are of different training steps ("
              + ", ".join(f"{name} {step}" for name, step in steps.items())
              + "): this choice compares equal wall-clock time, not equal training", file=sys.stderr)
    return closest(candidates) or "shipped"


def choose_row(metrics: dict) -> str:
    rows = {name: score(metrics, name) for name in metrics if name == "diffusion" or name.startswith("diffusion[")}
    best = closest(rows)
    return best[len("diffusion["):-1] if best and best.startswith("diffusion[") else ""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 2 and args[0] == "variants":
        print(choose_variant(Path(args[1]), [name for name in args[2:] if name != "old"]))
    elif len(args) == 2 and args[0] == "rows":
        print(choose_row(json.loads(Path(args[1]).read_text())))
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
