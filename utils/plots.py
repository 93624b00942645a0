"""Pictures of motion: FLAME curves over time and per-dimension spread. Researchers would rather look.

All functions write a PNG atomically and use matplotlib's headless Agg backend.
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from utils.atomic import atomic_output  # noqa: E402
from utils.flame import EXP_DIM, FPS, GLOBAL_ROT, JAW  # noqa: E402

# The curves a reader checks first: three leading expression components, head pitch (nods), yaw
# (shakes/turns), roll, and jaw opening.
DEFAULT_CURVES = (
    ("exp 0", 0), ("exp 1", 1), ("exp 2", 2),
    ("pitch (nod)", GLOBAL_ROT.start), ("yaw", GLOBAL_ROT.start + 1), ("roll", GLOBAL_ROT.start + 2),
    ("jaw open", JAW.start),
)


def plot_motion_curves(path: str | os.PathLike, motions: dict[str, np.ndarray], *, fps: int = FPS,
                       title: str = "", speaker_exp: np.ndarray | None = None,
                       curves=DEFAULT_CURVES) -> None:
    """One subplot per FLAME dimension in ``curves``, one line per entry of ``motions`` (``[T,56]`` each).

    ``speaker_exp`` (``[T,50]``), when given, adds a top panel with the speaker's first expression
    components so reactions can be read against their cause.
    """
    rows = len(curves) + (speaker_exp is not None)
    fig, axes = plt.subplots(rows, 1, figsize=(11, 1.5 * rows + 0.6), sharex=True, squeeze=False)
    axes = axes[:, 0]
    if speaker_exp is not None:
        t = np.arange(len(speaker_exp)) / fps
        for k in range(min(3, speaker_exp.shape[1])):
            axes[0].plot(t, speaker_exp[:, k], lw=0.8, label=f"speaker exp {k}")
        axes[0].set_ylabel("speaker", fontsize=8)
        axes[0].legend(fontsize=6, loc="upper right", ncol=3)
        axes = axes[1:]
    for ax, (name, dim) in zip(axes, curves):
        for label, motion in motions.items():
            t = np.arange(len(motion)) / fps
            ax.plot(t, motion[:, dim], lw=0.9, label=label, alpha=0.85)
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6, loc="upper right", ncol=min(4, len(motions)))
    axes[-1].set_xlabel("seconds")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_std_bars(path: str | os.PathLike, stds: dict[str, np.ndarray], *, title: str = "") -> None:
    """Per-dimension standard deviation (``[56]`` per entry) as grouped bars: spots amplitude collapse."""
    fig, ax = plt.subplots(figsize=(13, 3.2))
    width = 0.8 / max(1, len(stds))
    for i, (label, std) in enumerate(stds.items()):
        ax.bar(np.arange(len(std)) + i * width, std, width=width, label=label)
    ax.axvline(EXP_DIM - 0.5, color="k", lw=0.6, ls="--")
    ax.set_xlabel("FLAME dimension (exp 0-49 | global rot 50-52 | jaw 53-55)")
    ax.set_ylabel("std")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
