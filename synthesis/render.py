"""Listener motion -> frames through a frozen body: the one place synthesis calls ``BodyModel.render_frames``."""
from __future__ import annotations

import numpy as np
import torch

from utils.flame import FLAME_DIM


def body_device(body) -> torch.device:
    """The device the body renders on (``BodyModel.device`` when it has one, else its first parameter's)."""
    device = getattr(body, "device", None)
    if device is not None:
        return torch.device(device)
    parameters = getattr(body, "parameters", None)
    if parameters is not None:
        for parameter in parameters():
            return parameter.device
    return torch.device("cpu")


@torch.no_grad()
def render_motion(body, listener_motion: np.ndarray) -> np.ndarray:
    """``[N,56]`` FLAME frames -> uint8 ``[N,H,W,3]`` numpy frames (one batch; the caller picks N)."""
    if listener_motion.ndim != 2 or listener_motion.shape[1] != FLAME_DIM:
        raise ValueError(f"expected listener motion [N,{FLAME_DIM}], got {list(listener_motion.shape)}")
    if len(listener_motion) == 0:
        return np.zeros((0, body.height, body.width, 3), dtype=np.uint8)
    flame = torch.from_numpy(np.ascontiguousarray(listener_motion, dtype=np.float32)).to(body_device(body))
    frames = body.render_frames(flame)  # uint8 [N,H,W,3] on the body's device
    return frames.cpu().numpy()
