"""The brain's learning curve against the oracle: one row per variant and kept training step.

Usage (repo root, CPU, seconds; what `bash benchmarks/gpu_stage_brain.sh curve` runs on the scored copies):
    PYTHONPATH=. python benchmarks/learning_curve.py <work> <variant> [<variant> ...] [--plot <file.png>]

Reads ``<work>/curve_<variant>/<step>/metrics.json`` (``brain.evaluate ... --oracle`` of the slim copy that
``train.keep_every`` kept at that step) and, when present, the ``breakdown.json`` beside it
(``benchmarks/diversity_breakdown.py``), and prints a Markdown table of the diffusion row's ratios to the
oracle: FD exp, P-FD exp, MSE exp, FRDiv, SID exp, amplitude, the calibration miss, the seam ratio, and FRDiv
per tempo band (slow < 0.4 Hz, reaction 0.4–3 Hz, fast > 3 Hz). With ``--plot``: FD exp and FRDiv over the
step, each variant a line, the targets shaded.

Why it exists: a variant trained for a fixed wall-clock time reaches a different step than another, and the
seventh session found diversity rising with the step (docs/RESULTS.md), so two variants are only compared
on this curve, or at one step.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from utils.atomic import atomic_output  # noqa: E402
from utils.cli import cli_main, cli_parser  # noqa: E402
from utils.errors import UsageError  # noqa: E402

RATIO_COLUMNS = (("FD exp", "fd_exp"), ("P-FD exp", "pfd_exp"), ("MSE exp", "mse_exp"), ("FRDiv", "frdiv"),
                 ("SID exp", "sid_exp"), ("amplitude", "amp_ratio"))
BANDS = ("slow", "reaction", "fast")
METHOD = "diffusion"


def read_curve(work: Path, variant: str) -> list[dict]:
    """The scored steps of ``variant``, in step order: ``{"step", "ratios", "miss", "seam", "bands"}``."""
    folder = work / f"curve_{variant}"
    steps = sorted(int(path.name) for path in folder.glob("*") if path.name.isdigit()
                   and (path / "metrics.json").is_file()) if folder.is_dir() else []
    if not steps:
        raise UsageError(f"{folder}: no scored step (expected <step>/metrics.json folders)")
    rows = []
    for step in steps:
        path = folder / str(step) / "metrics.json"
        try:
            metrics = json.loads(path.read_text())
            row = metrics[METHOD]
            ratios, seam = row["ratio_to_oracle"], row["seam"] / metrics["oracle"]["seam"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}: not an evaluation against the oracle ({type(exc).__name__}: {exc})") from exc
        breakdown_path = path.parent / "breakdown.json"
        bands = {}
        if breakdown_path.is_file():
            breakdown = json.loads(breakdown_path.read_text()).get(METHOD, {})
            bands = {band: breakdown.get(f"all/{band}", {}).get("frdiv_ratio") for band in BANDS}
        rows.append({"step": step, "ratios": ratios, "miss": row.get("calibration_miss"), "seam": seam,
                     "bands": bands})
    return rows


def _cell(value) -> str:
    return "–" if value is None or value != value else f"{value:.3g}"


def format_table(curves: dict[str, list[dict]]) -> str:
    header = (["variant", "step"] + [name for name, _ in RATIO_COLUMNS] + ["calibration miss", "seam"]
              + [f"FRDiv {band}" for band in BANDS])
    lines = ["Ratios to the oracle on the validation clips (FD, P-FD, MSE: the oracle is the floor; FRDiv, SID, "
             "amplitude: 1 is the truth; seam: over the oracle's).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    for variant, rows in curves.items():
        for row in rows:
            cells = ([variant, f"{row['step']:,}"] + [_cell(row["ratios"].get(key)) for _, key in RATIO_COLUMNS]
                     + [_cell(row["miss"]), _cell(row["seam"])] + [_cell(row["bands"].get(band)) for band in BANDS])
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(path: str, curves: dict[str, list[dict]]) -> None:
    """FD exp / oracle (left; target ≤ 1.3) and FRDiv / oracle (right; target 0.85–1.15) over the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for variant, rows in curves.items():
        steps = [row["step"] for row in rows]
        for axis, key in zip(axes, ("fd_exp", "frdiv")):
            axis.plot(steps, [row["ratios"].get(key, np.nan) for row in rows], marker="o", label=variant)
    axes[0].axhspan(1.0, 1.3, color="green", alpha=0.1)  # the oracle is the floor
    axes[1].axhspan(0.85, 1.15, color="green", alpha=0.1)
    for axis, title in zip(axes, ("FD exp / oracle's (target ≤ 1.3)", "FRDiv / oracle's (target 0.85–1.15)")):
        axis.set_title(title)
        axis.set_xlabel("training step")
        axis.axhline(1.0, color="black", linewidth=0.8)
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)


@cli_main("benchmarks/learning_curve.py")
def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("benchmarks/learning_curve.py", __doc__, epilog=True)
    parser.add_argument("work", help="the brain stage's work folder (holds curve_<variant>/<step>/)")
    parser.add_argument("variants", nargs="+", help="variant names (curve_<name> folders)")
    parser.add_argument("--plot", help="PNG of FD exp and FRDiv over the step")
    args = parser.parse_args(argv)
    curves = {variant: read_curve(Path(args.work), variant) for variant in args.variants}
    print(format_table(curves), end="")
    if args.plot:
        plot(args.plot, curves)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
