"""Where a method's missing diversity lives: FRDiv and bias against the oracle, by part of the face and by tempo.

Usage (repo root, CPU, seconds):
    python -m brain.evaluate --data <world> --split val --checkpoint <ckpt> --oracle R1 R2 R3 --save_samples \
        --out <eval_dir> ...
    PYTHONPATH=. python benchmarks/diversity_breakdown.py --data <world> --split val --saved_samples <eval_dir>/samples \
        [--json <file>] [--plot <file.png>]
    PYTHONPATH=. python benchmarks/diversity_breakdown.py --from_json shipped=<a>/breakdown.json wide=<b>/breakdown.json \
        --plot <file.png>                                         # earlier runs side by side

Reads every ``<method>/`` folder ``brain.evaluate --save_samples`` wrote (the ``oracle`` one is required: the
resampled listeners) and, for each method, splits two numbers by part (expression 0–49, head rotation 50–52,
jaw 53–55) and by tempo band (the sequence's Fourier components along time, each clip on its own):

    slow      below 0.4 Hz       (posture, sustained smiles, the rapport state: changes over seconds)
    reaction  0.4–3 Hz           (nods, shakes, smile onsets, brow raises)
    fast      above 3 Hz         (blinks' edges, per-frame noise)

* **FRDiv** per cell (REACT's S-MSE, ``brain.metrics.sample_diversity``), as a ratio to the oracle's, and each
  cell's share of the oracle's whole FRDiv, so a small ratio in a cell holding 2 % of the diversity can be
  told from one in a cell holding half of it. The bands are disjoint sets of frequencies, so by Parseval
  every squared distance, hence FRDiv, MSE and the shares, adds up exactly over the three bands.
* **Bias**: for independent draws from one conditional distribution, the mean squared distance of a sample
  to the truth is the sum of the two draws' variances, ``MSE = V_method + V_truth`` with ``V = FRDiv / 2``.
  What a method's MSE holds beyond that is the squared distance between its mean and the truth's
  distribution's mean, shared by all its samples of a clip:

      bias² = MSE − FRDiv_method / 2 − FRDiv_oracle / 2          reported as bias² / V_truth

  0 for the oracle up to estimation noise; a method that hedges (predicts the average) has a small FRDiv and
  no bias; one that commits, but to the wrong reaction for every sample alike, has a bias.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from brain.data import DyadicCorpus  # noqa: E402
from brain.metrics import sample_diversity  # noqa: E402
from brain.oracle import ORACLE, ratio_or_nan  # noqa: E402
from utils.atomic import atomic_output, save_json  # noqa: E402
from utils.cli import cli_main  # noqa: E402
from utils.errors import UsageError  # noqa: E402
from utils.flame import EXP, FLAME_DIM, FPS, GLOBAL_ROT, JAW  # noqa: E402

GROUPS = {"exp": EXP, "rotation": GLOBAL_ROT, "jaw": JAW, "all": slice(0, FLAME_DIM)}
BAND_EDGES_HZ = {"slow": (0.0, 0.4), "reaction": (0.4, 3.0), "fast": (3.0, np.inf)}  # [low, high) in Hz
BANDS = (*BAND_EDGES_HZ, "all")
EMPTY_CELL = 1e-9  # a cell holding less than this share of its part's oracle FRDiv gets no ratios (NaN)


def split_bands(motion: np.ndarray) -> dict[str, np.ndarray]:
    """``[...,T,D]`` -> the three tempo bands of :data:`BAND_EDGES_HZ` (orthogonal, summing to the input) and
    ``all`` (the input itself)."""
    motion = np.asarray(motion, dtype=np.float64)
    frames = motion.shape[-2]
    spectrum = np.fft.rfft(motion, axis=-2)
    frequencies = np.fft.rfftfreq(frames, d=1.0 / FPS)  # [F] Hz
    bands = {}
    for band, (low, high) in BAND_EDGES_HZ.items():
        keep = ((frequencies >= low) & (frequencies < high))[:, None]  # [F,1]
        bands[band] = np.fft.irfft(spectrum * keep, n=frames, axis=-2)
    bands["all"] = motion
    return bands


def breakdown(truths: list[np.ndarray], methods: dict[str, list[np.ndarray]]) -> dict[str, dict[str, dict]]:
    """``{method: {"<group>/<band>": {"frdiv", "mse", "frdiv_ratio", "share", "bias_over_v"}}}`` from the truth
    ``[T,56]`` and each method's samples ``[K,T,56]`` per clip; ``methods`` must hold :data:`ORACLE`."""
    if ORACLE not in methods:
        raise UsageError(f"the breakdown needs the {ORACLE!r} method's samples (brain.evaluate --oracle ... "
                         "--save_samples)")
    truth_bands = [split_bands(truth) for truth in truths]  # once per clip, not once per method
    raw: dict[str, dict[str, dict[str, float]]] = {}
    for name, samples in methods.items():
        cells: dict[str, dict[str, list[float]]] = {}
        for truth_band, motion in zip(truth_bands, samples):
            sample_bands = split_bands(motion)
            for band in BANDS:
                for group, dims in GROUPS.items():
                    cell = cells.setdefault(f"{group}/{band}", {"frdiv": [], "mse": []})
                    cell["frdiv"].append(sample_diversity(sample_bands[band][..., dims]))
                    difference = sample_bands[band][..., dims] - truth_band[band][None, :, dims]
                    cell["mse"].append(float((difference ** 2).mean()))
        raw[name] = {key: {stat: float(np.mean(values)) for stat, values in cell.items()}
                     for key, cell in cells.items()}
    oracle = raw[ORACLE]
    result = {}
    for name, cells in raw.items():
        result[name] = {}
        for key, cell in cells.items():
            reference, whole = oracle[key]["frdiv"], oracle[f"{key.split('/')[0]}/all"]["frdiv"]
            if reference <= EMPTY_CELL * whole:  # the oracle does not vary there: ratios are rounding noise
                reference = 0.0
            truth_variance = reference / 2
            bias = cell["mse"] - cell["frdiv"] / 2 - truth_variance
            result[name][key] = {**cell, "frdiv_ratio": ratio_or_nan(cell["frdiv"], reference),
                                 "share": ratio_or_nan(reference, whole),
                                 "bias_over_v": ratio_or_nan(bias, truth_variance)}
    return result


def format_table(result: dict[str, dict[str, dict]]) -> str:
    """One markdown row per group/band cell: the oracle's share of the diversity, then per method its FRDiv
    ratio to the oracle and its bias² / V_truth."""
    names = [name for name in result if name != ORACLE]
    header = "| cell | share of the oracle's FRDiv | " + " | ".join(f"{n} FRDiv / oracle | {n} bias² / V" for n in names)
    lines = [header + " |", "|---|---:|" + "---:|---:|" * len(names)]
    for key, cell in result[ORACLE].items():
        values = " | ".join(f"{_cell(result[n][key]['frdiv_ratio'])} | {_cell(result[n][key]['bias_over_v'])}"
                            for n in names)
        lines.append(f"| {key} | {_cell(cell['share'])} | {values} |")
    return "\n".join(lines)


def _cell(value) -> str:
    """A table number; "–" where it is undefined (NaN here, null once saved as JSON)."""
    return "–" if value is None or value != value else f"{value:.3g}"


def plot(path: str, result: dict[str, dict[str, dict]]) -> None:
    """Per tempo band (all 56 dims): each method's FRDiv over the oracle's (left, the target band shaded) and
    its shared bias² over the truth's variance (right); under each band the share of the oracle's FRDiv in it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in result if name != ORACLE]
    bands = list(BANDS)
    figure, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    width = 0.8 / max(1, len(names))
    for index, name in enumerate(names):
        offsets = np.arange(len(bands)) + (index - (len(names) - 1) / 2) * width
        for axis, stat in zip(axes, ("frdiv_ratio", "bias_over_v")):
            values = [result[name][f"all/{band}"][stat] for band in bands]
            axis.bar(offsets, [np.nan if value is None else value for value in values], width, label=name)
    labels = [f"{band}\nshare {_cell(result[ORACLE][f'all/{band}']['share'])}" for band in bands]
    for axis, title in zip(axes, ("FRDiv / oracle's (1 = as diverse as real listeners)",
                                  "shared bias² / truth's variance (0 = unbiased)")):
        axis.set_xticks(np.arange(len(bands)), labels)
        axis.set_title(title)
        axis.axhline(1.0 if axis is axes[0] else 0.0, color="black", linewidth=0.8)
    axes[0].axhspan(0.85, 1.15, color="green", alpha=0.1)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)


def load(data: str, split: str, samples_dir: str) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """The truths and every saved method's samples, for the clips of ``split`` the oracle folder holds (an
    evaluation with ``--max_clips`` saved the first N), truths cut to the saved length."""
    root = Path(samples_dir)
    if not (root / ORACLE).is_dir():
        raise UsageError(f"{root}: no {ORACLE}/ folder (run brain.evaluate with --oracle and --save_samples)")
    corpus = DyadicCorpus(data)
    clip_ids = [clip_id for clip_id in corpus.split_ids(split) if (root / ORACLE / f"{clip_id}.npy").is_file()]
    if not clip_ids:
        raise UsageError(f"{root / ORACLE}: holds none of {data}'s {split} clips")
    methods = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        methods[folder.name] = []
        for clip_id in clip_ids:
            path = folder / f"{clip_id}.npy"
            if not path.is_file():
                raise UsageError(f"{path}: missing (every method folder must hold the oracle's clips)")
            methods[folder.name].append(np.load(path).astype(np.float64))
    truths = []
    for clip_id, motion in zip(clip_ids, methods[ORACLE]):
        truth = np.asarray(corpus.load_clip(clip_id).listener, dtype=np.float64)[:motion.shape[1]]
        if len(truth) != motion.shape[1]:
            raise UsageError(f"{root / ORACLE / clip_id}.npy has {motion.shape[1]} frames, the clip {len(truth)}")
        truths.append(truth)
    return truths, methods


def merge_saved(entries: list[str], only: list[str] | None = None) -> dict[str, dict[str, dict]]:
    """``["shipped=a.json", "wide=b.json"]`` -> one result: the first file's oracle, every other method of each
    file (those in ``only`` when given) as ``<name>:<method>`` (the runs must share their clips: their oracles
    must agree)."""
    merged: dict[str, dict[str, dict]] = {}
    for entry in entries:
        name, _, path = entry.partition("=")
        if not name or not path:
            raise UsageError(f"--from_json {entry!r}: expected NAME=FILE")
        try:
            saved = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--from_json {path}: unreadable ({exc})") from exc
        if ORACLE not in saved:
            raise UsageError(f"--from_json {path}: holds no {ORACLE!r} method (not a diversity_breakdown --json file)")
        reference = merged.setdefault(ORACLE, saved[ORACLE])["all/all"]["frdiv"]
        if not np.isclose(saved[ORACLE]["all/all"]["frdiv"], reference, rtol=1e-6):
            raise UsageError(f"--from_json {path}: its oracle differs from the first file's (other clips?)")
        merged.update({f"{name}:{method}": cells for method, cells in saved.items()
                       if method != ORACLE and (not only or method in only)})
    return merged


@cli_main("benchmarks/diversity_breakdown.py")
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the evaluated corpus")
    parser.add_argument("--split", default="test")
    parser.add_argument("--saved_samples", help="<eval_dir>/samples of brain.evaluate --save_samples")
    parser.add_argument("--from_json", nargs="+", metavar="NAME=FILE",
                        help="instead: redraw earlier runs' --json files, each method named NAME:<method>")
    parser.add_argument("--only", nargs="+", metavar="METHOD", help="with --from_json: keep these methods of each")
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--plot", help="also draw FRDiv and bias per tempo band into this .png")
    args = parser.parse_args(argv)
    if args.from_json:
        result = merge_saved(args.from_json, args.only)
    elif args.data and args.saved_samples:
        truths, methods = load(args.data, args.split, args.saved_samples)
        result = breakdown(truths, methods)
        print(f"## Diversity and bias by part and tempo ({len(truths)} {args.split} clips, "
              f"{', '.join(f'{n}: K={len(m[0])}' for n, m in methods.items())})\n")
    else:
        raise UsageError("give --data and --saved_samples, or --from_json NAME=FILE ...")
    print(format_table(result))
    if args.json:
        save_json(args.json, result)
    if args.plot:
        plot(args.plot, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
