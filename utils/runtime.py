"""Seeds and devices, resolved in one place."""
from __future__ import annotations

import random

import numpy as np
import torch

from utils.errors import UsageError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name: str | None = None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when available, else CPU; an explicit ``cuda`` without a GPU is an error."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:  # torch's message for a malformed name
        raise UsageError(f"--device {name}: not a device name (cpu, cuda, cuda:1, auto)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name} was asked for, but CUDA is not available on this machine")
    return device
