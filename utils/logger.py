"""Scalar logs for training runs: always a CSV (``<out>/scalars.csv``), TensorBoard when installed."""
from __future__ import annotations

import csv
import os
from pathlib import Path


class ScalarLogger:
    """``log(step, loss=..., lr=...)`` appends rows to ``scalars.csv`` as ``step,name,value``.

    The long format keeps one file valid while different scalars are logged at different intervals,
    and it is appended to (not rewritten) when a run resumes.
    """

    def __init__(self, out_dir: str | os.PathLike, *, tensorboard: bool = True):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.out_dir / "scalars.csv"
        new_file = not self.csv_path.exists()
        self._file = open(self.csv_path, "a", newline="")
        self._writer = csv.writer(self._file)
        if new_file:
            self._writer.writerow(["step", "name", "value"])
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
            except Exception:  # tensorboard is an optional extra
                self._tb = None

    def log(self, step: int, **scalars: float) -> None:
        for name, value in scalars.items():
            value = float(value)
            self._writer.writerow([step, name, f"{value:.6g}"])
            if self._tb is not None:
                self._tb.add_scalar(name, value, step)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_scalars(csv_path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """``scalars.csv`` -> ``{name: [(step, value), ...]}``."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            series.setdefault(row["name"], []).append((int(row["step"]), float(row["value"])))
    return series
