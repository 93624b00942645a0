"""Scalar logs for training runs: always a CSV (``<out>/scalars.csv``), TensorBoard when installed."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from utils.atomic import atomic_output

HEADER = ["step", "name", "value"]


class ScalarLogger:
    """``log(step, loss=..., lr=...)`` appends rows to ``scalars.csv`` as ``step,name,value``.

    The long format keeps one file valid while different scalars are logged at different intervals.
    ``resume_step`` says where the run starts: ``None`` for a new run (an old ``scalars.csv`` in the folder
    is replaced), else the step of the checkpoint it continues from. A run that crashed between
    checkpoints had logged steps past that one, and the resumed run logs them again, so those rows are
    dropped first: every step appears once, as an uninterrupted run would have written it.
    """

    def __init__(self, out_dir: str | os.PathLike, *, resume_step: int | None, tensorboard: bool = True):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.out_dir / "scalars.csv"
        kept = [] if resume_step is None else _rows_up_to(self.csv_path, resume_step)
        with atomic_output(self.csv_path) as tmp:
            with open(tmp, "w", newline="") as handle:
                csv.writer(handle).writerows([HEADER, *kept])
        self._file = open(self.csv_path, "a", newline="")
        self._writer = csv.writer(self._file)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step: TensorBoard hides the earlier events at or after it, like the CSV above.
                purge_step = 0 if resume_step is None else resume_step + 1
                self._tb = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=purge_step)
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


def _rows_up_to(csv_path: Path, last_step: int) -> list[list[str]]:
    """The rows of an existing ``scalars.csv`` logged at steps ``<= last_step`` (none when there is no file).

    A kill while a row was being written leaves it cut short; that row has fewer than three fields and is
    skipped (its step may itself be cut, ``15`` read as ``1``). Every row up to the checkpoint's step was
    complete before that checkpoint was saved.
    """
    if not csv_path.is_file():
        return []
    with open(csv_path, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return [row for row in rows if len(row) == len(HEADER) and all(row) and int(row[0]) <= last_step]


def read_scalars(csv_path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """``scalars.csv`` -> ``{name: [(step, value), ...]}``."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            series.setdefault(row["name"], []).append((int(row["step"]), float(row["value"])))
    return series
