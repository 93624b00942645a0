"""Test data for the reaction controls: the synthetic corpus, labelled, with behaviour that depends on the label.

``label_corpus(root)`` labels clip i with ``ATTITUDES[i % 3]`` and rewrites its listener so that the label
is visible in the motion:

* positive: a warm smile (+0.5 on the smile dim) and nods 1.6 times as deep;
* neutral: every dim's motion around the clip mean halved (a calm listener);
* negative: a frown (smile −0.5, brows −0.3) and head shakes (2.5 Hz, 0.06 rad yaw) for 1.2 s every ~5 s.

So a model that ignores the label cannot match the data, and one that follows it must differ by label. Then,
independently of the attitude, clip i's motion around its mean is scaled by ``VIGOR[(i // 3) % 3]``: listeners
of one attitude differ in how much they move, which is what the intensity condition has to pick up.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brain.data import write_clip_labels, write_corpus_meta
from data_utils import synthetic_semantics as sem
from utils.flame import FPS

ATTITUDES = ["positive", "neutral", "negative"]
VIGOR = (1.0, 0.6, 1.6)


def label_listener(listener: np.ndarray, attitude: str, vigor: float, rng: np.random.Generator) -> np.ndarray:
    """``listener [T,56]`` rewritten to show ``attitude``, its motion scaled by ``vigor`` (module docstring)."""
    listener = listener.astype(np.float64).copy()
    if attitude == "positive":
        listener[:, sem.SMILE] += 0.5
        pitch = listener[:, sem.HEAD_PITCH]
        listener[:, sem.HEAD_PITCH] = pitch.mean() + 1.6 * (pitch - pitch.mean())
    elif attitude == "neutral":
        listener = listener.mean(0) + 0.5 * (listener - listener.mean(0))
    else:
        listener[:, sem.SMILE] -= 0.5
        listener[:, sem.BROW_RAISE] -= 0.3
        t = np.arange(len(listener)) / FPS
        for start in np.arange(rng.uniform(0, 3), t[-1], 5.0):
            inside = (t >= start) & (t < start + 1.2)
            listener[inside, sem.HEAD_YAW] += 0.06 * np.sin(2 * np.pi * 2.5 * (t[inside] - start))
    listener = listener.mean(0) + vigor * (listener - listener.mean(0))
    return listener.astype(np.float32)


def label_corpus(root: str | Path) -> Path:
    """Label every clip of the synthetic corpus at ``root`` in place; returns ``root``."""
    root = Path(root)
    write_corpus_meta(root, attitudes=ATTITUDES)
    for index, clip_dir in enumerate(sorted((root / "clips").iterdir())):
        attitude = ATTITUDES[index % len(ATTITUDES)]
        listener = np.load(clip_dir / "listener.npy")
        vigor = VIGOR[(index // len(ATTITUDES)) % len(VIGOR)]
        np.save(clip_dir / "listener.npy", label_listener(listener, attitude, vigor, np.random.default_rng(index)))
        write_clip_labels(clip_dir, attitude)
    return root


def attitude_of(root: str | Path, clip_id: str) -> str:
    return json.loads((Path(root) / "clips" / clip_id / "labels.json").read_text())["attitude"]
