"""CPU thread count vs training speed on a shared machine: torch's default, the CLIs' choice, one thread.

Usage (repo root, CPU machine):
    PYTHONPATH=. python benchmarks/bench_threads.py                     # 100 steps, 3 repeats
    PYTHONPATH=. python benchmarks/bench_threads.py --steps 40 --repeats 1 --competitors 0   # a quick look

Trains the tiny brain (``configs/brain_tiny.yaml``) with ``train_diffusion.py`` as a user would, on a small
synthetic corpus, and reads its speed from the times at which ``scalars.csv`` gains the rows of step 20 and of
the last step (start-up and the first steps left out). Three thread settings, each with no other process and
with ``--competitors`` single-threaded busy processes running beside it (the situation of a shared machine):

* ``torch default``: ``OMP_NUM_THREADS`` = torch's own default count (every CPU), what the CLIs did before
  ``utils.runtime.configure_threads``;
* ``auto``: no ``OMP_NUM_THREADS``, so the CLI chooses (``configure_threads``; the count is read from its note);
* ``1 thread``: ``OMP_NUM_THREADS=1``.

Runs are interleaved (repeat r runs every setting once) so that other load on the machine spreads over all of
them. Prints one row per setting and competitor count: median steps/s over the repeats, the range, the threads
used, and the load average before the runs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRST_TIMED_STEP = 20
LOG_EVERY = 10


def make_corpus(folder: Path) -> Path:
    corpus = folder / "corpus"
    subprocess.run([sys.executable, "-m", "data_utils.synthetic_dyadic", "--out", str(corpus), "--clips", "20",
                    "--seconds", "12", "--seed", "0"], cwd=REPO_ROOT, check=True, capture_output=True,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))
    return corpus


def timed_training(corpus: Path, out: Path, steps: int, env: dict) -> tuple[float, str]:
    """Steps/s between step ``FIRST_TIMED_STEP`` and ``steps`` of one ``train_diffusion.py`` run, and its stderr."""
    scalars = out / "scalars.csv"
    command = [sys.executable, "train_diffusion.py", "--config", "configs/brain_tiny.yaml", "--data", str(corpus),
               "--out", str(out), f"train.max_steps={steps}", f"train.log_every={LOG_EVERY}",
               f"train.val_every={steps * 10}", f"train.checkpoint_every={steps * 10}", "train.device=cpu"]
    seen: dict[int, float] = {}
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        while process.poll() is None:
            if scalars.exists():
                for line in scalars.read_text().splitlines()[1:]:
                    step = int(line.split(",")[0])
                    seen.setdefault(step, time.monotonic())
            time.sleep(0.02)
        stderr.seek(0)
        messages = stderr.read()
    if process.returncode != 0:
        raise RuntimeError(f"training failed:\n{messages[-2000:]}")
    return (steps - FIRST_TIMED_STEP) / (seen[steps] - seen[FIRST_TIMED_STEP]), messages


def threads_used(setting: str, env: dict, messages: str, available: int) -> str:
    if setting != "auto":
        return env["OMP_NUM_THREADS"]
    notes = [line for line in messages.splitlines() if line.startswith("[threads]")]
    return notes[0].split()[3] if notes else str(available)  # no note: every CPU


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--competitors", type=int, nargs="+", default=[0, 1],
                        help="numbers of busy processes to run beside the training")
    args = parser.parse_args(argv)
    import torch

    default_threads = torch.get_num_threads()
    available = len(os.sched_getaffinity(0))
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    base["PYTHONPATH"] = str(REPO_ROOT)
    settings = {"torch default": dict(base, OMP_NUM_THREADS=str(default_threads)), "auto": base,
                "1 thread": dict(base, OMP_NUM_THREADS="1")}
    results: dict[tuple[str, int], list[float]] = {}
    used: dict[tuple[str, int], set[str]] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        corpus = make_corpus(Path(folder))
        for repeat in range(args.repeats):
            for competitors in args.competitors:
                busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(competitors)]
                try:
                    time.sleep(1.0 if busy else 0.0)  # let them occupy their cores
                    for name, env in settings.items():
                        out = Path(folder) / f"run_{repeat}_{competitors}_{name.replace(' ', '_')}"
                        speed, messages = timed_training(corpus, out, args.steps, env)
                        results.setdefault((name, competitors), []).append(speed)
                        used.setdefault((name, competitors), set()).add(threads_used(name, env, messages, available))
                        print(f"  repeat {repeat}, {competitors} busy, {name}: {speed:.2f} steps/s", flush=True)
                finally:
                    for process in busy:
                        process.kill()
                        process.wait()
    print(f"\ntorch {torch.__version__}, {available} usable CPUs, torch default {default_threads} threads, "
          f"load average before {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}, "
          f"{args.steps} steps (timed from step {FIRST_TIMED_STEP}), {args.repeats} repeats")
    print("| busy processes beside it | threads setting | threads used | steps/s (median) | range |")
    print("|---|---|---|---|---|")
    for (name, competitors), speeds in results.items():
        print(f"| {competitors} | {name} | {'/'.join(sorted(used[(name, competitors)]))} | "
              f"{statistics.median(speeds):.2f} | {min(speeds):.2f}–{max(speeds):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
