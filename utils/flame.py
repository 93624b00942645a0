"""The listener/FLAME vector layout and the project-wide time and feature conventions (DESIGN.md §2).

A listener frame is 56 float32 values: ``[exp 0:50 | global_rot 50:53 | jaw 53:56]`` — EMOCA's
``expcode`` followed by its ``posecode`` (``[global 3 | jaw 3]``), rotations as axis-angle in radians.
Every other module names these slices through this file, never as bare numbers.
"""
from __future__ import annotations

import numpy as np

FPS = 25  # frames per second everywhere inside the project

AUDIO_DIM = 768  # wav2vec 2.0 hidden states per frame
SPEAKER_EXP_DIM = 50  # EMOCA expcode per frame

EXP_DIM = 50
GLOBAL_ROT_DIM = 3
JAW_DIM = 3
FLAME_DIM = EXP_DIM + GLOBAL_ROT_DIM + JAW_DIM  # 56

EXP = slice(0, EXP_DIM)
GLOBAL_ROT = slice(EXP_DIM, EXP_DIM + GLOBAL_ROT_DIM)
JAW = slice(EXP_DIM + GLOBAL_ROT_DIM, FLAME_DIM)
POSE = slice(EXP_DIM, FLAME_DIM)  # global_rot followed by jaw: EMOCA's posecode

# Expression and jaw drive the body's deformation network; global rotation is applied rigidly.
DEFORMATION_DIM = EXP_DIM + JAW_DIM


def split_flame(flame):
    """``[..., 56]`` -> dict of ``exp [...,50]``, ``global_rot [...,3]``, ``jaw [...,3]`` (views)."""
    if flame.shape[-1] != FLAME_DIM:
        raise ValueError(f"expected a FLAME vector of width {FLAME_DIM}, got shape {tuple(flame.shape)}")
    return {"exp": flame[..., EXP], "global_rot": flame[..., GLOBAL_ROT], "jaw": flame[..., JAW]}


def join_flame(exp, global_rot, jaw):
    """Inverse of :func:`split_flame` for numpy arrays or torch tensors with matching leading shapes."""
    return _concat_last([exp, global_rot, jaw])


def deformation_code(flame):
    """``[..., 56]`` -> ``[..., 53]``: expression followed by jaw, the body's deformation input."""
    parts = split_flame(flame)
    return _concat_last([parts["exp"], parts["jaw"]])


def _concat_last(parts):
    """Concatenate numpy arrays (as float32) or torch tensors along the last axis."""
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=-1).astype(np.float32, copy=False)
    import torch

    return torch.cat(parts, dim=-1)
