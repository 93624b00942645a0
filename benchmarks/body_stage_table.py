"""The body's GPU-stage figures in one table: quality, training time and memory, render speed.

    PYTHONPATH=. python benchmarks/body_stage_table.py --model M --eval E --bench B.json [--out table.md]

Reads ``M/summary.json`` (training: steps, wall time, peak RSS and PSS of the trainer, which starts no worker
processes), ``E/metrics.json`` (``python -m scene.evaluate`` on all validation frames) and the JSON of
``benchmarks/bench_body.py --json``, and prints a markdown table (also written to ``--out``) against the
targets of issue 14 / DESIGN.md §7.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def fmt(value, digits: int = 2, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def table(summary: dict, metrics: dict, bench: dict) -> list[str]:
    final = summary["final"]
    speed = {(row["batch"], row["path"]): row["fps"] for row in bench["rows"]}
    peak_rss = max(row["ram_peak_gb"] for row in summary["history"])
    peak_pss = max(row["ram_pss_gb"] for row in summary["history"])
    psnr = lambda value: fmt(value, unit=" dB")  # noqa: E731
    lines = ["| figure | measured | target |", "|---|---|---|",
             f"| val PSNR (all {metrics['frames']} val frames, scene.evaluate) | {psnr(metrics['psnr'])} | >= 36 dB |",
             f"| val SSIM | {fmt(metrics['ssim'], 4)} | |",
             f"| worst-decile PSNR | {psnr(metrics['psnr_worst_decile'])} | >= 32 dB |",
             f"| mouth PSNR (mouth-mask pixels pooled) | {psnr(metrics.get('mouth_psnr'))} | >= 30 dB |",
             f"| mean-training-frame baseline PSNR | {psnr(summary['baseline_mean_frame']['psnr'])} | |",
             f"| training wall time (data loading included) | {summary['wall_s'] / 60:.2f} min, {summary['steps']} "
             f"steps, stopped by {summary['stopped_by']} | <= 5 min |",
             f"| trainer RAM, peak RSS / PSS (no worker processes) | {peak_rss:.2f} / {peak_pss:.2f} GB | <= 4 GB |",
             f"| GPU memory, peak allocated | {fmt(final.get('gpu_peak_gb'), unit=' GB')} | |",
             f"| Gaussians (face + mouth) | {summary['gaussians']['face']} + {summary['gaussians']['mouth']} | |"]
    for batch in sorted({row["batch"] for row in bench["rows"]}):
        target = {1: ">= 1000 fps", 16: ">= 2000 fps"}.get(batch, "")
        lines.append(f"| render fps, batch {batch}: fast path / old two-pass | "
                     f"{fmt(speed.get((batch, 'fast')), 0)} / {fmt(speed.get((batch, 'two-pass')), 0)} | {target} |")
    lines.append(f"| render device | {bench['device']} | |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="trained body model directory")
    parser.add_argument("--eval", required=True, help="the scene.evaluate --out folder")
    parser.add_argument("--bench", required=True, help="bench_body.py --json output")
    parser.add_argument("--out", help="also write the table here")
    args = parser.parse_args(argv)
    lines = table(json.loads((Path(args.model) / "summary.json").read_text()),
                  json.loads((Path(args.eval) / "metrics.json").read_text()),
                  json.loads(Path(args.bench).read_text()))
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
