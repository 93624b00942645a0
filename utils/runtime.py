"""Seeds, devices and CPU threads, resolved in one place."""
from __future__ import annotations

import math
import os
import random
import sys

import numpy as np
import torch

from utils.errors import UsageError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # a user's own choice, read by torch at start-up


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


def configure_threads() -> int:
    """Choose torch's CPU thread count for a command-line run and return the count in use.

    A count the user chose is kept: ``OMP_NUM_THREADS`` (or ``MKL_NUM_THREADS``) in the environment, which torch
    reads at start-up. Otherwise: the CPUs this process may run on (``os.sched_getaffinity``, capped by a cgroup
    CPU quota) less the share other processes keep busy (the larger of the 1-minute load average and the
    processes runnable right now, scaled from the whole machine's CPUs to ours), rounded, at least 1. torch's
    default uses every CPU, and on a shared machine each parallel op then waits for the thread whose core another
    process holds: on the shared 2-core development machine the tiny brain trained 8-9x slower with 2 threads
    than with the count chosen here (docs/BENCHMARKS.md, CPU). A reduced count is said on stderr, and the count
    is exported as ``OMP_NUM_THREADS`` for the processes this one starts.
    """
    if any(os.environ.get(name) for name in THREAD_VARIABLES):
        return torch.get_num_threads()
    available = usable_cpus()
    busy = other_load() * available / max(os.cpu_count() or available, available)
    threads = max(1, min(available, int(math.floor(available - busy + 0.5))))
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # processes started from here on (pools, subprocesses) follow
    if threads < available:
        print(f"[threads] torch uses {threads} of {available} CPUs (others keep {busy:.1f} busy; "
              f"set OMP_NUM_THREADS to choose)", file=sys.stderr)
    return threads


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (containers)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return count


def other_load() -> float:
    """CPUs other processes keep busy, machine-wide: max(1-minute load average, runnable now - this process)."""
    try:
        fields = open("/proc/loadavg").read().split()
        return max(float(fields[0]), int(fields[3].split("/")[0]) - 1)
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
