"""The diversity–fidelity picture of a trained brain: FD exp / oracle against FRDiv / oracle over the sampler,
its number of network evaluations, guidance and eta, on a corpus with resamples (the oracle).

    python benchmarks/diversity_fidelity.py --data <corpus> --oracle R1 R2 R3 --checkpoint <brain.pth> \
        --out <dir> [--samples 10] [--device cuda --precision bf16 --cuda_graphs] [--batch_windows 512] [--workers 8] \
        [--max_clips N] [--max_seconds S] [--smoke]
    python benchmarks/diversity_fidelity.py --from_metrics E1/metrics.json [E2/metrics.json ...] --out <dir>

runs ``brain.evaluate`` once with one ``diffusion[...]`` row per grid point (``GRID``) plus the baselines, and
writes ``<dir>/evaluation/`` (the evaluation's own folder: metrics.json with ratio_to_oracle, metrics.md),
``<dir>/diversity_fidelity.png`` (every method with FD on a log scale; beside it the points within 3 x the
oracle's FD, numbered) and ``<dir>/diversity_fidelity.md`` (the grid as a table). The ideal point is
(1, 1): as diverse as real listeners and as close to the truth as a resampled one. ``--from_metrics`` draws
the same picture and table from evaluations already run (``brain.evaluate --oracle``): every method with
ratios to the oracle except the oracle rows, labelled ``method @ <evaluation folder>`` when several are given.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brain.evaluate import EvalConfig, evaluate  # noqa: E402
from utils.atomic import atomic_output, save_json  # noqa: E402
from utils.cli import cli_main  # noqa: E402
from utils.errors import InputError, UsageError  # noqa: E402

# (label, sweep entry) around the checkpoint's own sampling (the preset's: DPM-Solver++(2M) SDE, eta 1,
# guidance 3, 10 NFE — the "checkpoint default" point): other numbers of evaluations, less re-drawn noise,
# weaker and stronger guidance, the other sampler; entries without steps= keep the checkpoint's (the preset's
# 10 NFE is the checkpoint-default row itself, so not swept again).
GRID = [*((f"dpmpp_2m η=1, {n} NFE", f"sampler=dpmpp_2m,steps={n},eta=1") for n in (5, 15)),
        *((f"dpmpp_2m η={eta:g}", f"sampler=dpmpp_2m,eta={eta:g}") for eta in (0.0, 0.5)),
        *((f"dpmpp_2m η=1, guidance {g:g}", f"sampler=dpmpp_2m,eta=1,guidance={g:g}")
          for g in (1.0, 2.0, 4.0, 5.0)),
        ("ddim η=1", "sampler=ddim,eta=1")]
RATIOS = ("fd_exp", "pfd_exp", "frdiv", "sid_exp", "amp_ratio")


ZOOM_FD = 3.0  # the right panel: every point within 3 x the oracle's FD, where the sampling choices lie


def plot(path: Path, points: dict[str, dict]) -> None:
    """Left: every method, FD on a log scale (a baseline can sit 80 x above the oracle). Right: the points
    within ZOOM_FD of the oracle's FD, numbered, with the numbers' labels in a legend (they crowd otherwise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (whole, zoom) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1, 1.25]})
    close = [label for label, ratios in points.items() if ratios["fd_exp"] <= ZOOM_FD]
    colours = {label: plt.get_cmap("tab20")(index % 20) for index, label in enumerate(close)}
    for axis in (whole, zoom):
        axis.axvspan(0.85, 1.15, color="green", alpha=0.08)
        axis.axhline(1.3, color="grey", linestyle=":", linewidth=1)
        axis.scatter([1], [1], marker="*", s=150, color="black", zorder=3)
        axis.set_xlabel("FRDiv / oracle (diversity; 1 = real listeners)")
    whole.set_ylabel("FD exp / oracle (fidelity; 1 = a resampled listener)")
    for label, ratios in points.items():
        at = (ratios["frdiv"], max(ratios["fd_exp"], 1e-3))  # a log axis has no 0
        if label in colours:
            whole.scatter(*at, color=colours[label])
        else:
            whole.scatter(*at, marker="^", color="grey")
            whole.annotate(label, at, fontsize=7, xytext=(3, 3), textcoords="offset points")
    whole.set_yscale("log")
    whole.set_title("every method (log scale)", fontsize=10)
    for number, label in enumerate(close, start=1):
        ratios = points[label]
        zoom.scatter(ratios["frdiv"], ratios["fd_exp"], s=60, color=colours[label], label=f"{number}: {label}")
        zoom.annotate(str(number), (ratios["frdiv"], ratios["fd_exp"]), fontsize=8, xytext=(4, 2),
                      textcoords="offset points")
    zoom.set_xlim(0, 1.2)
    zoom.set_ylim(0.8, ZOOM_FD)
    if close:
        zoom.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    zoom.set_title(f"within {ZOOM_FD:g} x the oracle's FD", fontsize=10)
    figure.suptitle("diversity–fidelity (★ the oracle; shaded: FRDiv ±15%; dotted: FD 1.3 x)")
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=130)
    plt.close(figure)


def evaluate_grid(args, out: Path) -> dict[str, dict]:
    """Run brain.evaluate over GRID (plus the checkpoint's default and the baselines): label -> ratios."""
    grid = GRID[1:3] if args.smoke else GRID
    cfg = EvalConfig(data=args.data, out=str(out / "evaluation"), checkpoint=args.checkpoint, oracle=args.oracle,
                     samples=args.samples, max_clips=args.max_clips, max_seconds=args.max_seconds,
                     device=args.device, precision=args.precision, cuda_graphs=args.cuda_graphs,
                     batch_windows=args.batch_windows,
                     baselines=args.baselines, shuffled_speaker=True, workers=args.workers,
                     sweep=[entry for _, entry in grid], plot_clips=1)
    results = evaluate(cfg)
    points = {label: results[f"diffusion[{entry}]"]["ratio_to_oracle"] for label, entry in grid}
    points["checkpoint default"] = results["diffusion"]["ratio_to_oracle"]
    for name in ("diffusion[shuffled]", *args.baselines.split(",")):
        if name in results:
            points[name] = results[name]["ratio_to_oracle"]
    return points


def measured_points(paths: list[Path]) -> dict[str, dict]:
    """label -> ratios of every non-oracle method in the given metrics.json files."""
    points = {}
    for path in paths:
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable metrics.json ({exc})") from exc
        rows = {name: row["ratio_to_oracle"] for name, row in results.items()
                if isinstance(row, dict) and "ratio_to_oracle" in row and name not in ("ground_truth", "oracle")
                and not name.startswith("oracle[")}
        if not rows:
            raise InputError(f"{path}: no method has ratio_to_oracle (run brain.evaluate with --oracle)")
        for name, ratios in rows.items():
            points[name if len(paths) == 1 else f"{name} @ {path.parent.name}"] = ratios
    return points


@cli_main("benchmarks/diversity_fidelity.py")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data")
    parser.add_argument("--oracle", nargs="+")
    parser.add_argument("--checkpoint")
    parser.add_argument("--from_metrics", nargs="+", type=Path, help="metrics.json of brain.evaluate --oracle runs")
    parser.add_argument("--out", required=True)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--max_clips", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--cuda_graphs", action="store_true")
    parser.add_argument("--batch_windows", type=int, default=EvalConfig.batch_windows,
                        help="brain.evaluate --batch_windows")
    parser.add_argument("--max_seconds", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=1, help="processes scoring the rows")
    parser.add_argument("--baselines", default="mean,random,nearest,mirror")
    parser.add_argument("--smoke", action="store_true", help="two grid points only (a check that it runs)")
    args = parser.parse_args(argv)
    if not (args.from_metrics or (args.data and args.oracle and args.checkpoint)):
        raise UsageError("give --data, --oracle and --checkpoint (evaluate the grid), or --from_metrics")
    out = Path(args.out)
    if args.from_metrics:
        points = measured_points(args.from_metrics)  # read (and refused) before anything is written
        out.mkdir(parents=True, exist_ok=True)
    else:
        out.mkdir(parents=True, exist_ok=True)
        points = evaluate_grid(args, out)
    plot(out / "diversity_fidelity.png", points)
    lines = ["| sampling | " + " | ".join(f"{m} / oracle" for m in RATIOS) + " |", "|---|" + "---:|" * len(RATIOS)]
    lines += [f"| {label} | " + " | ".join(f"{ratios.get(m, float('nan')):.3f}" for m in RATIOS) + " |"
              for label, ratios in points.items()]
    table = "\n".join(lines) + "\n"
    (out / "diversity_fidelity.md").write_text(table)
    save_json(out / "diversity_fidelity.json", points)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
